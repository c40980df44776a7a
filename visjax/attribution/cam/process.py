"""Turning raw class activation maps into pictures: ReLU, min–max scaling, upsampling.

The CAM methods return the raw map ``(N, H', W')`` at the layer's resolution, before any ReLU or
scaling (pytorch-grad-cam's ``get_cam_image``). :func:`postprocess` applies what pytorch-grad-cam's
``__call__`` does to one layer's map: ReLU, min–max scaling, bilinear resize to the input size
(OpenCV's ``INTER_LINEAR``: half-pixel centres, edges clamped, no antialiasing), and scaling again.
:func:`multi_layer` averages the processed maps of several layers as its
``aggregate_multi_layers``. All functions are batched, pure JAX and jit-able.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.attribution._target import empty_batch
from visjax.base.checks import check_finite
from visjax.model import as_model

_EPS = 1e-7  # pytorch-grad-cam's scale_cam_image


def _check_maps(cams: Any, name: str = "cams") -> jax.Array:
    cams = jnp.asarray(cams)
    if cams.ndim != 3:
        raise ValueError(f"`{name}` must have shape (N, H, W), got {cams.shape}")
    return cams


def _check_size(size: Any) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"`size` must be (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"`size` must be positive (height, width), got {size!r}")
    return h, w


def positive(cams: Any) -> jax.Array:
    """``max(cam, 0)``: the positive part of the maps (Grad-CAM's final ReLU)."""
    return jnp.maximum(jnp.asarray(cams), 0)


def normalize(cams: Any) -> jax.Array:
    """Per-map min–max scaling: ``m = cam − min(cam)``, then ``m / (1e-7 + max(m))``.

    pytorch-grad-cam's ``scale_cam_image`` without resizing; a constant map becomes zeros.

    Args:
      cams: maps ``(N, H, W)``.

    Returns:
      Maps ``(N, H, W)`` in ``[0, 1)``.
    """
    cams = _check_maps(cams)
    m = cams - cams.min(axis=(1, 2), keepdims=True)
    return m / (_EPS + m.max(axis=(1, 2), keepdims=True))


def bilinear_matrix(n_in: int, n_out: int, *, align_corners: bool) -> np.ndarray:
    """``(n_out, n_in)`` float32 linear interpolation along one axis.

    ``align_corners=True``: torch's ``UpsamplingBilinear2d``, output ``i`` samples the input at
    ``i (n_in − 1)/(n_out − 1)``. ``align_corners=False``: half-pixel centres with the edges
    clamped (OpenCV's ``cv2.resize`` with ``INTER_LINEAR``), output ``i`` samples
    ``(i + ½) n_in/n_out − ½``.
    """
    if align_corners:
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = np.arange(n_out, dtype=np.float32) * np.float32(scale)
    else:
        src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(
            n_in / n_out
        ) - np.float32(0.5)
        src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    m = np.zeros((n_out, n_in), np.float32)
    np.add.at(m, (np.arange(n_out), i0), 1 - frac)
    np.add.at(m, (np.arange(n_out), i1), frac)
    return m


def bilinear_resize(a: jax.Array, size: Sequence[int], *, align_corners: bool) -> jax.Array:
    """``(N, h, w, C)`` to ``(N, H, W, C)`` by the two :func:`bilinear_matrix` products."""
    mh = jnp.asarray(bilinear_matrix(a.shape[1], size[0], align_corners=align_corners), a.dtype)
    mw = jnp.asarray(bilinear_matrix(a.shape[2], size[1], align_corners=align_corners), a.dtype)
    return jnp.einsum("ph,nhwc,qw->npqc", mh, a, mw)


def upsample(cams: Any, size: Sequence[int]) -> jax.Array:
    """Bilinear resize of maps ``(N, H', W')`` to ``size = (H, W)``.

    OpenCV's ``cv2.resize(..., INTER_LINEAR)`` convention, which pytorch-grad-cam uses: pixel
    centres at half-integers, edge pixels clamped, and no antialiasing when shrinking
    (``jax.image.resize`` with ``antialias=False``). Note the order: ``size`` is
    ``(height, width)``, where OpenCV's ``dsize`` is ``(width, height)``.

    Args:
      cams: maps ``(N, H', W')``.
      size: the output ``(height, width)`` (static), e.g. ``x.shape[1:3]``.

    Returns:
      Maps ``(N, H, W)``.
    """
    cams = _check_maps(cams)
    h, w = _check_size(size)
    return jax.image.resize(cams, (cams.shape[0], h, w), "bilinear", antialias=False)


def postprocess(cams: Any, size: Sequence[int] | None = None) -> jax.Array:
    """pytorch-grad-cam's picture of one layer's raw map: ReLU, scale, resize, scale again.

    ``normalize(upsample(normalize(positive(cams)), size))``; with ``size=None`` the resize is
    skipped (the map stays at the layer's resolution). The second scaling is that of its
    ``aggregate_multi_layers`` for a single layer.

    Args:
      cams: raw maps ``(N, H', W')`` as the CAM methods return them.
      size: ``(height, width)`` of the input, or None.

    Returns:
      Maps ``(N, H, W)`` in ``[0, 1)``.

    Raises:
      ValueError: ``cams`` holds NaN or Inf (checked when concrete; under a caller's ``jit`` the
        check is skipped and one NaN makes its whole map NaN, through the min-max scaling).

    Example:
      >>> import jax.numpy as jnp
      >>> postprocess(jnp.arange(8.0).reshape(2, 2, 2) - 3, (4, 4)).shape
      (2, 4, 4)
    """
    cams = _check_maps(cams)
    check_finite(cams, "cams")
    m = normalize(positive(cams))
    if size is not None:
        m = upsample(m, size)
    return normalize(m)


def multi_layer(
    method: Callable[..., jax.Array], layers: Sequence[str]
) -> Callable[..., jax.Array]:
    """A method that averages ``method``'s processed maps over several layers.

    For each layer ``l``: ``normalize(upsample(normalize(positive(method(..., layer=l))), size))``
    with ``size`` the input's ``(H, W)``; then ``normalize(mean_l max(map_l, 0))``, as
    pytorch-grad-cam's ``aggregate_multi_layers`` with several target layers. Each layer costs
    one forward and backward here (pytorch-grad-cam shares one pass between layers).

    Args:
      method: a CAM method ``(model, x, target, *, layer, **kwargs)`` returning ``(N, H', W')``.
      layers: the layer paths (at least one).

    Returns:
      ``f(model, x, target, **kwargs)`` returning maps ``(N, H, W)`` at the input's size
      (``x`` NHWC images).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> from visjax.attribution.cam.gradient import grad_cam
      >>> f = multi_layer(grad_cam, ["conv1", "conv2"])
      >>> f(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8)
    """
    if isinstance(layers, str) or not all(isinstance(name, str) for name in layers):
        raise TypeError(f"`layers` must be a sequence of layer paths, got {layers!r}")
    layers = tuple(layers)
    if not layers:
        raise ValueError("`layers` must name at least one layer")

    @empty_batch
    def averaged(model: Any, x: Any, target: Any, **kwargs: Any) -> jax.Array:
        x = as_model(model).check_x(x)
        if x.ndim != 4:
            raise ValueError(f"`x` must be NHWC images (N, H, W, C), got shape {x.shape}")
        size = x.shape[1:3]
        maps = [
            upsample(normalize(positive(method(model, x, target, layer=name, **kwargs))), size)
            for name in layers
        ]
        return normalize(jnp.maximum(jnp.stack(maps, 1), 0).mean(1))

    averaged.__name__ = f"multi_layer({getattr(method, '__name__', 'method')})"
    averaged.__doc__ = f"{averaged.__name__} over layers {list(layers)}."
    return averaged
