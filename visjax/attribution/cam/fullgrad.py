"""FullGrad: the input-gradient map plus the bias-gradient maps of every biased spatial layer.

For a ReLU network (piecewise linear, biases ``b_l``) the decomposition is complete:
``f(x) = Σ_i x_i ∂_i f(x) + Σ_l Σ_{p,c} b_{l,c} ∂f/∂z_{l,p,c}``, with ``z_l`` the output of the
biased layer ``l`` (all biased layers, the dense head included). FullGrad draws the spatial terms
as maps and sums them after pytorch-grad-cam's post-processing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from visjax.attribution._target import Target, empty_batch, prepare, resolve, select_output
from visjax.attribution.cam._core import grid_shape, resolve_layer
from visjax.attribution.cam.process import bilinear_resize
from visjax.model import Model

SCALE_EPS = 1e-7  # pytorch-grad-cam's scale_cam_image: (m - min) / (max(m - min) + 1e-7)


def _node(tree: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(tree, Mapping):
            if part in tree:
                tree = tree[part]
            elif part.isdigit() and int(part) in tree:
                tree = tree[int(part)]
            else:
                return None
        elif isinstance(tree, list | tuple) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        else:
            return None
    return tree


def layer_bias(params: Any, path: str) -> Any:
    """The ``"bias"`` parameter of the layer at ``path`` (Linen's ``{"params": ...}`` too), or
    None when that layer holds none."""
    for root in (params, params.get("params") if isinstance(params, Mapping) else None):
        node = _node(root, path) if root is not None else None
        if isinstance(node, Mapping) and "bias" in node:
            return node["bias"]
    return None


def bias_layers(model: Model, x: jax.Array) -> tuple[str, ...]:
    """The layers FullGrad uses by default, in forward order: spatial activation ``(N, H, W, C)``
    and a ``"bias"`` of shape ``(C,)`` in the layer's parameters (pytorch-grad-cam: every
    ``Conv2d`` with a bias)."""
    shapes = model.layer_shapes(x)
    found = []
    for name in model.layers:
        if name not in shapes or len(shapes[name].shape) != 4:
            continue
        b = layer_bias(model.params, name)
        if b is not None and tuple(jnp.shape(b)) == (shapes[name].shape[-1],):
            found.append(name)
    return tuple(found)


def _raw_terms(model: Model, x, t, target_fn, layers: Sequence[str]):
    """``(∇_x f ⊙ x, [∂f/∂z_l ⊙ b_l for each layer])``: the unprocessed FullGrad terms."""
    zeros = {
        n: jnp.zeros(s.shape, s.dtype)
        for n, s in jax.eval_shape(lambda m, x: m.activations(x, layers)[1], model, x).items()
    }

    def total(xx, deltas):
        out = model.run(xx, perturb=deltas)[0]
        return jax.vmap(lambda o, ti: select_output(target_fn, o, ti))(out, t).sum()

    gx, gl = jax.grad(total, argnums=(0, 1))(x, zeros)
    return gx * x, [gl[n] * layer_bias(model.params, n) for n in layers]


def _scale(m: jax.Array) -> jax.Array:
    """Min-max scaling of each ``(N, h, w, ...)`` map over its spatial axes (1, 2)."""
    m = m - m.min((1, 2), keepdims=True)
    return m / (SCALE_EPS + m.max((1, 2), keepdims=True))


def _resize(m: jax.Array, size: tuple[int, int]) -> jax.Array:
    if m.shape[1:3] == tuple(size):
        return m
    return bilinear_resize(m, size, align_corners=False)


@functools.partial(jax.jit, static_argnames=("target_fn", "layers"))
def _full_grad(model: Model, x, t, target_fn, layers):
    gx, terms = _raw_terms(model, x, t, target_fn, layers)
    size = x.shape[1:3]
    total = _scale(jnp.abs(gx)).sum(-1)
    for term in terms:
        total = total + _resize(_scale(jnp.abs(term)), size).sum(-1)
    return _scale(total[..., None])[..., 0]


@empty_batch
def full_grad(
    model: Any, x: Any, target: Target, *, layers: Sequence[str] | None = None
) -> jax.Array:
    """FullGrad: ``|∇_x f ⊙ x|`` plus ``|∂f/∂z_l ⊙ b_l|`` of every biased spatial layer, as maps.

    With ``S(m) = (m − min m)/(max(m − min m) + 10⁻⁷)`` per map and ``R`` the resize to the input
    size, the result is ``S(Σ_k S(|∇_x f ⊙ x|_k) + Σ_l Σ_c R(S(|∂f/∂z_l ⊙ b_l|_c)))`` (``k`` over
    input channels, ``c`` over the layer's channels): pytorch-grad-cam's ``FullGrad`` output,
    post-processing included. There is no raw per-layer map: this is the combined ``(N, H, W)``
    map in ``[0, 1]``.

    The layers are those whose activation is ``(N, H, W, C)`` and whose parameters hold a
    ``"bias"`` of shape ``(C,)`` (:func:`bias_layers`; pytorch-grad-cam takes every ``Conv2d``
    and ``BatchNorm2d`` with a bias). The layer's activation must be its output with the bias
    added (before any activation function), as for the zoo's convolutions. Normalisation layers
    with running statistics are not folded into an effective bias here; name the layers
    explicitly to leave them out. ``R`` is OpenCV's bilinear resize (half-pixel centres).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: images ``(N, H, W, C_in)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (static).
      layers: layer paths to use instead of :func:`bias_layers` (static); each must be spatial and
        hold a ``"bias"``.

    Returns:
      The FullGrad map ``(N, H, W)``, scaled to ``[0, 1]`` per example.

    Raises:
      ValueError: ``x`` not ``(N, H, W, C)``, an unknown or non-spatial layer, a layer without a
        bias, or a target out of range.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> full_grad(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8)

    References:
      Srinivas, Fleuret, "Full-Gradient Representation for Neural Network Visualization",
      NeurIPS 2019. https://arxiv.org/abs/1905.00780 (pytorch-grad-cam's ``FullGrad``.)
    """
    model, x = prepare(model, x)
    if x.ndim != 4:
        raise ValueError(f"`x` must be images (N, H, W, C) for FullGrad, got shape {x.shape}")
    if layers is None:
        layers = bias_layers(model, x)
    else:
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(resolve_layer(model, x, name) for name in layers)
        shapes = model.layer_shapes(x)
        for name in layers:
            b = layer_bias(model.params, name)
            grid = grid_shape(tuple(shapes[name].shape))
            if b is None or tuple(jnp.shape(b)) != (grid[-1],) or len(shapes[name].shape) != 4:
                raise ValueError(
                    f"`layers` entry {name!r} has no bias of shape ({grid[-1]},) in its "
                    "parameters, or its activation is not (N, H, W, C)"
                )
    target_fn, t = resolve(model, x, target)
    return _full_grad(model, x, t, target_fn, layers)
