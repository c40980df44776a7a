"""Layer attribution by composition: ``at_layer(method, layer)``."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

# Methods whose implementation can attribute to a layer's activation (they take `_layer`).
_LAYER_METHODS = ("saliency", "gradient_x_input", "integrated_gradients")


def at_layer(method: Callable[..., jax.Array], layer: str) -> Callable[..., jax.Array]:
    """Return ``method`` attributing to the activation of ``layer`` instead of the input.

    * ``at_layer(saliency, layer)``: the gradient with respect to the layer's activation
      (its absolute value by default; ``abs=False`` for the signed layer gradient).
    * ``at_layer(gradient_x_input, layer)``: gradient times activation (Captum's
      ``LayerGradientXActivation``).
    * ``at_layer(integrated_gradients, layer)``: integrated gradients along the path between the
      layer's activations for the baseline input and for the input (Captum's
      ``LayerIntegratedGradients``); the network runs on the input with the layer's value
      replaced, so paths that bypass the layer see the input.

    The returned method takes the same arguments as ``method`` and returns attributions shaped
    like the layer's activation ``(N, ...)``. The layer path is checked when called (an unknown
    path raises ``ValueError`` listing the known ones).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.attribution import gradient_x_input
      >>> from visjax.zoo import digits_cnn
      >>> at_layer(gradient_x_input, "conv2")(digits_cnn("nnx"), jnp.ones((1, 8, 8, 1)), 3).shape
      (1, 8, 8, 32)
    """
    name = getattr(method, "__name__", repr(method))
    if name not in _LAYER_METHODS or "_layer" not in (getattr(method, "__kwdefaults__", {}) or {}):
        raise ValueError(
            f"`method` {name!r} cannot attribute to a layer; supported: {_LAYER_METHODS}"
        )
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a layer path string, got {type(layer).__name__}")

    @functools.wraps(method)
    def layer_method(model, x, target, **kwargs):
        return method(model, x, target, _layer=layer, **kwargs)

    layer_method.__name__ = f"{name}_at_{layer.replace('.', '_')}"
    return layer_method
