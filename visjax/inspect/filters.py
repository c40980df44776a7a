"""Weight and activation views of one layer: its kernels as images, its feature maps for an input.

:func:`layer_filters` reads a convolution's kernels from the parameters (the Krizhevsky et al.
first-layer view); :func:`feature_maps` returns a layer's activations for a batch. Both moved here
from :mod:`visjax.featviz` (which re-exports them), so every method package may use them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp

from visjax.base.checks import is_concrete
from visjax.model import Model, as_model

Scale = Literal["minmax", "symmetric"]


# --------------------------------------------------------------------------- checks


def check_layer_data(model: Model, x: Any, name: str) -> jax.Array:
    """``x`` checked by the model (errors name ``name``), NaN/Inf refused when concrete."""
    try:
        x = model.check_x(x)
    except (TypeError, ValueError) as e:
        raise type(e)(str(e).replace("`x`", f"`{name}`", 1)) from None
    if is_concrete(x) and not bool(jnp.isfinite(x).all()):
        raise ValueError(f"`{name}` holds NaN or Inf values")
    return x


def checked_layer_shape(model: Model, x: jax.Array, layer: Any) -> tuple[int, ...]:
    """The shape of ``layer``'s activation for ``x``; an unknown layer lists the known ones."""
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a layer path string, got {type(layer).__name__}")
    shapes = model.layer_shapes(x)
    if layer not in shapes:
        raise ValueError(f"`layer` {layer!r} is not a layer of the model; known: {list(shapes)}")
    return tuple(shapes[layer].shape)


def _find_kernel(params: Any, layer: str) -> Any:
    node = params
    for part in layer.split("."):
        if not isinstance(node, Mapping):
            return None
        if part in node:
            node = node[part]
        elif part.isdigit() and int(part) in node:
            node = node[int(part)]
        else:
            return None
    return node.get("kernel") if isinstance(node, Mapping) else None


def _kernel_layers(params: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(params, Mapping):
        for k, v in params.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if k == "kernel" and not isinstance(v, Mapping):
                out.append(prefix)
            else:
                out.extend(_kernel_layers(v, path))
    return out


# --------------------------------------------------------------------------- filters and maps


def layer_filters(model: Any, *, layer: str, scale: Scale = "minmax") -> jax.Array:
    """The convolution kernels of ``layer``, one filter per output channel, scaled for display.

    The kernel is read from ``model.params`` by following the dotted ``layer`` path to a dict
    with a ``"kernel"`` entry in Flax's layout ``(kh, kw, C_in, C_out)``, and transposed so that
    filters come first. Each filter is scaled on its own:

    * ``"minmax"``: ``(w − min w) / (max w − min w)``, so every filter spans [0, 1] (a constant
      filter becomes 0.5);
    * ``"symmetric"``: ``0.5 + w / (2 max |w|)``, so zero weights are 0.5 (mid grey) and the sign
      of a weight is kept (an all-zero filter becomes 0.5).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      layer: the layer path, e.g. ``"conv1"`` or ``"blocks.0.conv"``.
      scale: ``"minmax"`` (default) or ``"symmetric"``.

    Returns:
      ``(C_out, kh, kw, C_in)`` float array in [0, 1].

    Raises:
      ValueError: an unknown layer (the message lists the layers with kernels), a layer whose
        kernel is not 4-D (a dense layer), or an unknown ``scale``.

    Example:
      >>> from visjax.zoo import digits_cnn
      >>> f = layer_filters(digits_cnn("function"), layer="conv1")
      >>> f.shape, float(f.min()), float(f.max())
      ((16, 3, 3, 1), 0.0, 1.0)

    References:
      Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
      Networks", NeurIPS 2012 (Figure 3, first-layer kernels shown as images).
    """
    if scale not in ("minmax", "symmetric"):
        raise ValueError(f"`scale` must be 'minmax' or 'symmetric', got {scale!r}")
    model = as_model(model)
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a layer path string, got {type(layer).__name__}")
    kernel = _find_kernel(model.params, layer)
    if kernel is None:
        raise ValueError(
            f"`layer` {layer!r} has no kernel in the model's parameters; layers with kernels: "
            f"{_kernel_layers(model.params)}"
        )
    if jnp.ndim(kernel) != 4:
        raise ValueError(
            f"`layer` {layer!r} has a {jnp.ndim(kernel)}-D kernel of shape {jnp.shape(kernel)}; "
            "filters need a 2-D convolution's 4-D kernel (kh, kw, C_in, C_out)"
        )
    w = jnp.transpose(jnp.asarray(kernel, jnp.float32), (3, 0, 1, 2))
    axes = (1, 2, 3)
    if scale == "minmax":
        lo = w.min(axes, keepdims=True)
        span = w.max(axes, keepdims=True) - lo
        return jnp.where(span > 0, (w - lo) / jnp.where(span > 0, span, 1.0), 0.5)
    top = jnp.abs(w).max(axes, keepdims=True)
    return jnp.where(top > 0, 0.5 + w / (2.0 * jnp.where(top > 0, top, 1.0)), 0.5)


@functools.partial(jax.jit, static_argnames=("layer",))
def _feature_maps(model: Model, x: jax.Array, layer: str) -> jax.Array:
    return model.activations(x, layer)[1][layer]


def feature_maps(model: Any, x: Any, *, layer: str) -> jax.Array:
    """The activations of ``layer`` for the batch ``x`` (one compiled forward per shape).

    For a convolution layer these are the feature maps ``(N, H', W', C)``; for other layers the
    layer's activation as it is (``(N, C)`` for a dense layer). They are the values the model
    interface names (for the zoo models, before the ReLU).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, *input_shape)`` of finite values.
      layer: the layer path (static).

    Returns:
      ``model.activations(x, layer)[1][layer]``.

    Raises:
      ValueError: an unknown layer (the message lists the known ones), ``x`` of the wrong shape
        or with NaN/Inf values; TypeError: a non-floating ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> feature_maps(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), layer="conv2").shape
      (2, 8, 8, 32)
    """
    model = as_model(model)
    x = check_layer_data(model, x, "x")
    checked_layer_shape(model, x, layer)
    if x.shape[0] == 0:  # the shape from abstract evaluation, nothing compiled
        spec = jax.eval_shape(lambda a: _feature_maps(model, a, layer), x)
        return jnp.zeros(spec.shape, spec.dtype)
    return _feature_maps(model, x, layer)
