"""Guided backprop and deconvnet against Captum on the same digits CNN weights."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from tests.peers import rel_err
from visjax.attribution.modified import deconvnet, guided_backprop
from visjax.zoo import digits_cnn

pytestmark = pytest.mark.peers
RTOL = 1e-4  # max |visjax - captum| / max |captum|, float32 on both sides


@pytest.fixture(scope="module")
def setup(peer_cnn):
    return peer_cnn[:4]


def captum(name, torch_model, x, t):
    import torch

    attr = bridge.import_peer("captum.attr")
    method = getattr(attr, name)(torch_model)
    xt = bridge.to_torch_input(x).requires_grad_(True)
    with warnings.catch_warnings():
        # Captum announces the ReLU hooks it sets with a UserWarning on every call.
        warnings.filterwarnings("ignore", "Setting backward hooks on ReLU", UserWarning)
        out = method.attribute(xt, target=torch.as_tensor(np.asarray(t, np.int64)))
    return bridge.from_torch(out.detach())


@pytest.mark.parametrize(
    ("ours", "theirs"), [(guided_backprop, "GuidedBackprop"), (deconvnet, "Deconvolution")]
)
@pytest.mark.parametrize("form", ["function", "nnx", "linen"])
def test_matches_captum(setup, ours, theirs, form):
    model, tm, x, t = setup
    model = digits_cnn(form, model.params)
    got = ours(model, jnp.asarray(x), jnp.asarray(t))
    want = captum(theirs, tm, x, t)
    assert np.abs(want).max() > 0
    assert rel_err(got, want) < RTOL


def test_differs_from_saliency_on_the_trained_cnn(setup):
    model, tm, x, t = setup
    saliency = captum("Saliency", tm, x, t)  # |gradient|
    guided = guided_backprop(model, jnp.asarray(x), jnp.asarray(t))
    assert rel_err(jnp.abs(guided), saliency) > 1e-2
