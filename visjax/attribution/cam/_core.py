"""What every CAM method shares: choosing the layer, the patch grid, activations and gradients.

A layer path names the value :func:`visjax.tag` (or the NNX/Linen module of that path) returns:
for the zoo's convolutional networks that is the convolution's output *before* its ReLU, which is
also what pytorch-grad-cam sees when its target layer is the ``Conv2d`` module. Grad-CAM at the
pre-ReLU value weights channels by gradients that are zero wherever the ReLU is off, and its map
may be negative where a post-ReLU map could not be (the final ReLU of the helpers removes that).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from visjax.attribution._target import prepare, resolve, select_output
from visjax.model import Model

Reshape = Callable[[jax.Array], jax.Array] | None


def _grid_side(tokens: int) -> int | None:
    side = math.isqrt(tokens)
    return side if side * side == tokens else None


def grid_shape(shape: tuple[int, ...], reshape: Reshape = None) -> tuple[int, ...] | None:
    """The ``(N, H, W, C)`` shape an activation of ``shape`` gives, or None if not spatial.

    Rank 4 is taken as NHWC. Rank 3 ``(N, T, D)`` (transformer tokens) becomes the patch grid
    when ``T`` is a square (``h·w`` patch tokens) or one more than a square (a class token first,
    dropped, as pytorch-grad-cam's ViT ``reshape_transform``). A ``reshape`` callable decides
    instead (its output shape is found by abstract evaluation).
    """
    if reshape is not None:
        out = jax.eval_shape(reshape, jax.ShapeDtypeStruct(shape, jnp.float32)).shape
        return tuple(out) if len(out) == 4 else None
    if len(shape) == 4:
        return tuple(shape)
    if len(shape) == 3:
        n, t, d = shape
        for drop in (0, 1):
            side = _grid_side(t - drop)
            if side is not None and t - drop > 1:
                return (n, side, side, d)
    return None


def to_grid(a: jax.Array, reshape: Reshape = None) -> jax.Array:
    """``a`` as ``(N, H, W, C)`` following :func:`grid_shape`'s rule."""
    if reshape is not None:
        return reshape(a)
    if a.ndim == 4:
        return a
    n, t, d = a.shape
    side = _grid_side(t)
    drop = 0 if side is not None and t > 1 else 1
    side = _grid_side(t - drop)
    return a[:, drop:].reshape(n, side, side, d)


def _forward_order(model: Model, x: jax.Array, shapes: dict) -> list[str]:
    """Layer paths in the order the forward first reaches them (the shapes dict is sorted)."""
    names = model.trace(x)[2]
    return [name for name in names if name in shapes] or list(shapes)


def resolve_layer(model: Model, x: jax.Array, layer: str | None, reshape: Reshape = None) -> str:
    """Check ``layer`` (or pick one when None) and return its path.

    ``None`` picks the last layer, in forward order, whose activation is spatial (rank 4, or
    tokens on a square grid when ``reshape`` is None), as TorchCam does.

    Raises:
      ValueError: an unknown path (listing the known ones), a non-spatial layer (naming its
        shape), or no spatial layer at all.
    """
    shapes = model.layer_shapes(x)
    if layer is None or layer not in shapes:
        order = _forward_order(model, x, shapes)
    if layer is None:
        spatial = [n for n in order if grid_shape(shapes[n].shape, reshape) is not None]
        if not spatial:
            raise ValueError(
                "`layer=None` found no layer with a spatial activation (N, H, W, C) or a square "
                f"grid of tokens; layers and shapes: "
                f"{ {n: tuple(shapes[n].shape) for n in order} }"
            )
        return spatial[-1]
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a layer path (str) or None, got {layer!r}")
    if layer not in shapes:
        raise ValueError(f"`layer` {layer!r} is not a layer of the model; known layers: {order}")
    shape = tuple(shapes[layer].shape)
    if grid_shape(shape, reshape) is None:
        raise ValueError(
            f"`layer` {layer!r} has activation shape {shape}, which is not spatial: CAM needs "
            "(N, H, W, C), or tokens (N, T, D) with T (or T - 1) a square, or a `reshape`"
        )
    return layer


def activation_and_grad(
    model: Model,
    x: jax.Array,
    t: jax.Array,
    target_fn: Callable | None,
    layer: str,
    reshape: Reshape = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(A, dA, scores)``: the layer's activation and the target's gradient, both on the grid.

    One forward and one backward: the gradient is taken with respect to a zero perturbation of
    the layer (:meth:`visjax.Model.run`), the activation captured on the way. ``scores`` are the
    per-example target values ``(N,)``.
    """
    spec = jax.eval_shape(lambda m, x: m.activations(x, layer)[1][layer], model, x)
    zero = jnp.zeros(spec.shape, spec.dtype)

    def total(d):
        out, acts = model.run(x, perturb={layer: d}, capture=(layer,))
        scores = jax.vmap(lambda o, ti: select_output(target_fn, o, ti))(out, t)
        return scores.sum(), (acts[layer], scores)

    grad, (act, scores) = jax.grad(total, has_aux=True)(zero)
    return to_grid(act, reshape), to_grid(grad, reshape), scores


def scores_from_layer(
    model: Model,
    x: jax.Array,
    t: jax.Array,
    target_fn: Callable | None,
    layer: str,
    value: jax.Array,
) -> jax.Array:
    """Per-example target scores ``(N,)`` with the layer's activation replaced by ``value``.

    ``value`` has the layer's own shape (not the grid's); used by Ablation-CAM.
    """
    out = model.run(x, replace={layer: value})[0]
    return jax.vmap(lambda o, ti: select_output(target_fn, o, ti))(out, t)


def target_scores(model: Model, x: jax.Array, t: jax.Array, target_fn: Callable | None):
    """Per-example target scores ``(N,)`` of the plain forward."""
    out = model(x)
    return jax.vmap(lambda o, ti: select_output(target_fn, o, ti))(out, t)


def prepare_cam(
    model: Any, x: Any, target: Any, layer: str | None, reshape: Reshape
) -> tuple[Model, jax.Array, jax.Array, Callable | None, str]:
    """Every check a CAM method makes before any work: ``(model, x, t, target_fn, layer)``.

    The model and ``x`` as :func:`visjax.attribution._target.prepare`, ``reshape`` a callable or
    None, ``layer`` resolved by :func:`resolve_layer`, the target by
    :func:`visjax.attribution._target.resolve`.
    """
    model, x = prepare(model, x)
    if reshape is not None and not callable(reshape):
        raise TypeError(f"`reshape` must be a callable or None, got {reshape!r}")
    layer = resolve_layer(model, x, layer, reshape)
    target_fn, t = resolve(model, x, target)
    return model, x, t, target_fn, layer
