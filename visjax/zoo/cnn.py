"""The digits CNN as an NNX module, a Linen module and a plain function, with identical weights.

``conv1`` (3x3, 16 channels, SAME) -> ReLU -> ``conv2`` (3x3, 32, SAME) -> ReLU -> global average
pool -> ``fc`` (10 logits): 5,130 parameters. All three forms share one parameter tree,
``{"conv1": {"kernel", "bias"}, "conv2": {...}, "fc": {...}}`` (Flax's layout: conv kernels
``(3, 3, in, out)``, dense kernel ``(in, out)``), and name the same three layers; each layer's
activation is its output before the ReLU.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from visjax.model import Model, as_model, tag

INPUT_SHAPE = (8, 8, 1)
NUM_CLASSES = 10
Form = Literal["nnx", "linen", "function"]


def init_params(key: jax.Array) -> dict[str, Any]:
    """Fresh parameters in Flax's default initialisation (LeCun normal kernels, zero biases)."""
    k1, k2, k3 = jax.random.split(key, 3)
    init = jax.nn.initializers.lecun_normal()
    return {
        "conv1": {"kernel": init(k1, (3, 3, 1, 16)), "bias": jnp.zeros(16)},
        "conv2": {"kernel": init(k2, (3, 3, 16, 32)), "bias": jnp.zeros(32)},
        "fc": {"kernel": init(k3, (32, NUM_CLASSES)), "bias": jnp.zeros(NUM_CLASSES)},
    }


def _conv(x, p):
    y = jax.lax.conv_general_dilated(
        x, p["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["bias"]


def apply(params: dict[str, Any], x: jax.Array) -> jax.Array:
    """The digits CNN as a plain function of ``params`` and a batch ``x`` ``(N, 8, 8, 1)``."""
    h = jax.nn.relu(tag(_conv(x, params["conv1"]), "conv1"))
    h = jax.nn.relu(tag(_conv(h, params["conv2"]), "conv2"))
    h = h.mean(axis=(1, 2))
    return tag(h @ params["fc"]["kernel"] + params["fc"]["bias"], "fc")


@functools.cache
def _nnx_class():
    class DigitsCNN(nnx.Module):
        """The digits CNN as a Flax NNX module."""

        def __init__(self, *, rngs: nnx.Rngs):
            self.conv1 = nnx.Conv(1, 16, (3, 3), padding="SAME", rngs=rngs)
            self.conv2 = nnx.Conv(16, 32, (3, 3), padding="SAME", rngs=rngs)
            self.fc = nnx.Linear(32, NUM_CLASSES, rngs=rngs)

        def __call__(self, x):
            h = jax.nn.relu(self.conv1(x))
            h = jax.nn.relu(self.conv2(h))
            return self.fc(h.mean(axis=(1, 2)))

    return DigitsCNN


@functools.cache
def _linen_class():
    class DigitsCNNLinen(nn.Module):
        """The digits CNN as a Flax Linen module."""

        @nn.compact
        def __call__(self, x):
            h = jax.nn.relu(nn.Conv(16, (3, 3), padding="SAME", name="conv1")(x))
            h = jax.nn.relu(nn.Conv(32, (3, 3), padding="SAME", name="conv2")(h))
            return nn.Dense(NUM_CLASSES, name="fc")(h.mean(axis=(1, 2)))

    return DigitsCNNLinen


def nnx_module(params: dict[str, Any]):
    """A Flax NNX ``DigitsCNN`` holding ``params``."""
    module = _nnx_class()(rngs=nnx.Rngs(0))
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(module, state)
    return module


@functools.cache
def linen_module():
    """A Flax Linen ``DigitsCNNLinen`` (its variables are ``{"params": params}``).

    One shared instance, so models built from it share compiled code.
    """
    return _linen_class()()


def digits_cnn(form: Form = "nnx", params: dict[str, Any] | None = None, *, seed: int = 0) -> Model:
    """The digits CNN as a visjax :class:`~visjax.Model` in the chosen ``form``.

    Args:
      form: ``"nnx"``, ``"linen"`` or ``"function"``; the three give identical outputs.
      params: the parameter tree (as :func:`init_params` returns); fresh ones from ``seed`` if None.
      seed: seed for fresh parameters.

    Example:
      >>> m = digits_cnn("function")
      >>> m.layers
      ('conv1', 'conv2', 'fc')
    """
    if params is None:
        params = init_params(jax.random.key(seed))
    if form == "nnx":
        return as_model(nnx_module(params), input_shape=INPUT_SHAPE)
    if form == "linen":
        return as_model(linen_module(), {"params": params}, input_shape=INPUT_SHAPE)
    if form == "function":
        return as_model(apply, params, input_shape=INPUT_SHAPE)
    raise ValueError(f"`form` must be 'nnx', 'linen' or 'function', got {form!r}")
