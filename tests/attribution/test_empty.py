"""Empty batches (N = 0): every attribution method returns an empty result of its documented
shape without compiling its program."""

import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.test_conformance import CASES, SLOW_CONFORMANCE, _vit
from visjax import attribution as va
from visjax.zoo import digits_cnn

METHODS = [c for c in CASES if not c.name.startswith("Model.")]


@pytest.fixture(scope="module")
def model():
    return digits_cnn("nnx", seed=3)


@pytest.mark.parametrize("case", METHODS + SLOW_CONFORMANCE, ids=lambda c: c.name)
def test_empty_batch(case, model, caplog):
    x = jnp.zeros((0, 8, 8, 1))
    t = jnp.zeros((0,), jnp.int32)
    if case.name.startswith("attention."):
        _vit()  # the tiny ViT the attention cases run on: its initialisation compiles
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        out = case.fn(model, x, t)
    assert out.shape == case.shape(x.shape)
    # Only eager single operations (argument checks) may compile, never a method's program.
    compiled = re.findall(r"Compiling jit\((\w+)\)", caplog.text)
    # (jax.numpy's eager reductions are named `_reduce_*`: single operations, allowed.)
    methods = [n for n in compiled if n.startswith("_") and not n.startswith("_reduce_")]
    assert not methods, compiled


def test_empty_batch_int_target_and_checks(model):
    x = jnp.zeros((0, 8, 8, 1))
    assert va.integrated_gradients(model, x, 3).shape == (0, 8, 8, 1)
    with pytest.raises(ValueError, match="n_steps"):
        va.integrated_gradients(model, x, 3, n_steps=0)
    with pytest.raises(ValueError, match="target"):
        va.saliency(model, x, np.zeros((2,), np.int32))


def test_empty_batch_without_target(model):
    assert va.eigen_cam(model, jnp.zeros((0, 8, 8, 1)), layer="conv2").shape == (0, 8, 8)
