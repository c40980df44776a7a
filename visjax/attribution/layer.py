"""Layer attribution by composition: ``at_layer(method, layer)``.

A method that can attribute to a layer says so itself: it carries a *layer builder*
(:func:`layer_builder` sets it), ``build(layer) -> method_at_layer``, made from the same
per-example core the method runs at the input. :func:`at_layer` unwraps ``functools.partial``
(merging its arguments), asks the method's builder for the layer version and applies the
partial's arguments to it. A visjax method that cannot attribute to a layer carries the reason
instead (:func:`no_layer`); any other callable has no core visjax knows and is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

from visjax.attribution._target import empty_batch

_ATTR = "_visjax_layer"

Method = Callable[..., jax.Array]


def layer_builder(build: Callable[[str], Method]) -> Callable[[Method], Method]:
    """Decorator: ``method`` attributes to a layer as ``build(layer)`` (see :func:`at_layer`)."""

    def mark(method: Method) -> Method:
        setattr(method, _ATTR, build)
        return method

    return mark


def no_layer(method: Method, reason: str) -> Method:
    """Mark a visjax ``method`` as unable to attribute to a layer, with the reason :func:`at_layer`
    gives."""
    setattr(method, _ATTR, reason)
    return method


def unwrap(method: Any) -> tuple[Any, tuple, dict]:
    """``(function, args, keywords)`` of ``method``, every ``functools.partial`` level merged."""
    args: tuple = ()
    keywords: dict = {}
    while isinstance(method, functools.partial):
        args = (*method.args, *args)
        keywords = {**method.keywords, **keywords}
        method = method.func
    return method, args, keywords


def _name(method: Any) -> str:
    return getattr(method, "__name__", None) or repr(method)


def at_layer(method: Method, layer: str) -> Method:
    """Return ``method`` attributing to the activation of ``layer`` instead of the input.

    ``method`` is a visjax attribution method or a ``functools.partial`` of one (its arguments
    are kept: ``at_layer(partial(integrated_gradients, n_steps=8), "conv1")``):

    * ``saliency``: the gradient with respect to the layer's activation (its absolute value by
      default; ``absolute=False`` for the signed layer gradient; Captum's ``LayerGradient``-style
      saliency);
    * ``gradient_x_input``: gradient times activation (Captum's ``LayerGradientXActivation``);
    * ``integrated_gradients``: integrated gradients along the path between the layer's
      activations for the baseline input and for the input (Captum's
      ``LayerIntegratedGradients``);
    * ``expected_gradients`` / ``gradient_shap``: the same path, between the layer's activations
      for a random reference and for the (noisy) input;
    * ``guided_backprop``, ``deconvnet``: the modified gradient with respect to the layer's
      activation;
    * ``deeplift``, ``deeplift_shap``: DeepLIFT's modified gradient in the layer's value times the
      difference of the layer's activations for the input and the reference (Captum's
      ``LayerDeepLift``, ``LayerDeepLiftShap``);
    * ``noise_tunnel(m, ...)``: the same noise tunnel around ``at_layer(m, layer)`` (noise is
      added to the input).

    The network runs on the input with the layer's value replaced, so paths that bypass the layer
    (skip connections) see the input. The returned method takes the same arguments as ``method``
    and returns attributions shaped like the layer's activation ``(N, ...)``. The layer path is
    checked when called (an unknown path raises ``ValueError`` listing the known ones).

    Raises:
      TypeError: ``method`` is not a visjax method (a user's function has no per-example core
        visjax can re-target), or ``layer`` is not a string.
      ValueError: a visjax method that cannot attribute to a layer (the message says why), such
        as blur IG (its path is a blur of the input image).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.attribution import gradient_x_input
      >>> from visjax.zoo import digits_cnn
      >>> at_layer(gradient_x_input, "conv2")(digits_cnn("nnx"), jnp.ones((1, 8, 8, 1)), 3).shape
      (1, 8, 8, 32)
    """
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a layer path string, got {type(layer).__name__}")
    fn, args, keywords = unwrap(method)
    name = _name(fn)
    build = getattr(fn, _ATTR, None)
    if build is None:
        raise TypeError(
            f"`method` {name!r} is not a visjax attribution method (or a functools.partial of "
            "one): it has no per-example core visjax knows, so visjax cannot re-target it to a "
            "layer's activation"
        )
    if isinstance(build, str):
        raise ValueError(f"`method` {name!r} cannot attribute to a layer: {build}")
    built = build(layer)

    @empty_batch
    @functools.wraps(fn)
    def layer_method(*a: Any, **kw: Any) -> jax.Array:
        return built(*args, *a, **{**keywords, **kw})

    layer_method.__name__ = f"{name}_at_{layer.replace('.', '_')}"
    no_layer(layer_method, f"it already attributes to layer {layer!r}")
    return layer_method
