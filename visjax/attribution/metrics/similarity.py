"""Similarity of two batches of attribution maps, per example: Spearman rank correlation, SSIM and
HOG similarity (the measures of Adebayo et al. 2018's sanity checks).

All run in JAX, batched over the leading example axis ``N``, and equal their references:
:func:`spearman` equals ``scipy.stats.spearmanr`` (ties by average rank), :func:`ssim` equals
``skimage.metrics.structural_similarity`` with its defaults (7x7 uniform window, sample
covariance, ``K1=0.01``, ``K2=0.03``) and :func:`hog_similarity` is the Pearson correlation of
``skimage.feature.hog`` features (defaults: 9 orientations, 8x8-pixel cells, 3x3-cell blocks,
L2-Hys).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_finite, check_positive_int, is_concrete

_BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")


def _pair(a: Any, b: Any, min_ndim: int, what: str) -> tuple[jax.Array, jax.Array]:
    for name, v in (("a", a), ("b", b)):
        if not hasattr(v, "shape") and not isinstance(v, list | tuple):
            raise TypeError(f"`{name}` must be an array, got {type(v).__name__}")
    a, b = jnp.asarray(a), jnp.asarray(b)
    for name, v in (("a", a), ("b", b)):
        if not (jnp.issubdtype(v.dtype, jnp.floating) or jnp.issubdtype(v.dtype, jnp.integer)):
            raise TypeError(f"`{name}` must be a numeric array, got dtype {v.dtype}")
        check_finite(v, name)
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim < min_ndim:
        raise ValueError(f"`a` and `b` must be {what}, got shape {a.shape}")
    dtype = jnp.result_type(a.dtype, b.dtype, jnp.float32)
    return a.astype(dtype), b.astype(dtype)


def _positive_float(value: Any, name: str) -> float:
    """``value`` as a float; raises ``ValueError`` naming ``name`` unless a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}")
    return float(value)


def _int_pair(value: Any, name: str) -> tuple[int, int]:
    """``value`` as two positive ints (rows, columns); raises ``ValueError`` naming ``name``."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"`{name}` must be a pair of positive ints (rows, cols), got {value!r}")
    r, c = (check_positive_int(v, name) for v in value)
    return r, c


def _pearson(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pearson correlation along the last axis (NaN where either side is constant)."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return jnp.sum(a * b, -1) / jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1))


def _average_rank(v: jax.Array) -> jax.Array:
    """1-based ranks of a 1-D ``v``, ties sharing their average rank (``scipy.stats.rankdata``)."""
    s = jnp.sort(v)
    left = jnp.searchsorted(s, v, side="left")
    right = jnp.searchsorted(s, v, side="right")
    return (left + right + 1).astype(v.dtype) / 2


def spearman(a: Any, b: Any, *, absolute: bool = False) -> jax.Array:
    """Spearman rank correlation of two batches of maps, per example.

    Each example's map is flattened; ties share their average rank, as in
    ``scipy.stats.spearmanr``. A constant map gives NaN (as SciPy).

    Args:
      a, b: ``(N, ...)`` maps of the same shape.
      absolute: rank ``|a|`` and ``|b|`` instead (the "absolute value" variant of Adebayo et al.).

    Returns:
      ``(N,)`` correlations in ``[-1, 1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> spearman(jnp.array([[1.0, 2.0, 3.0]]), jnp.array([[10.0, 30.0, 20.0]]))
      Array([0.5], dtype=float32)
    """
    a, b = _pair(a, b, 2, "batches of maps (N, ...)")
    if not isinstance(absolute, bool | np.bool_):
        raise TypeError(f"`absolute` must be a bool, got {absolute!r}")
    if a.size == 0:
        if a.shape[0]:
            raise ValueError(f"`a` and `b` must hold at least one value per map, got {a.shape}")
        return jnp.zeros((0,), a.dtype)
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if absolute:
        a, b = jnp.abs(a), jnp.abs(b)
    rank = jax.vmap(_average_rank)
    return _pearson(rank(a), rank(b))


def _window_mean(v: jax.Array, win: int) -> jax.Array:
    """Mean over every ``win x win`` window that fits (``(N, H - win + 1, W - win + 1)``)."""
    s = jax.lax.reduce_window(v, 0.0, jax.lax.add, (1, win, win), (1, 1, 1), "VALID")
    return s / (win * win)


def ssim(
    a: Any,
    b: Any,
    *,
    data_range: Any = None,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> jax.Array:
    """Mean structural similarity of two batches of 2-D maps, per example.

    Equals ``skimage.metrics.structural_similarity(a[i], b[i], data_range=...)`` with its
    defaults: a ``win_size x win_size`` uniform window, sample covariances
    (``use_sample_covariance=True``), ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``, and the mean over the
    pixels at least ``(win_size - 1) / 2`` from the border (so the padding scikit-image applies
    never enters).

    Args:
      a, b: ``(N, H, W)`` maps (``H, W >= win_size``).
      data_range: ``R``, a number or ``(N,)`` values. ``None`` (default): per example, the range
        of both maps together, ``max(a, b) - min(a, b)`` (scikit-image requires it for floats).
      win_size: the window's side, odd and at least 3.
      k1, k2: the stabilising constants.

    Returns:
      ``(N,)`` SSIM values (1 for identical maps).
    """
    a, b = _pair(a, b, 3, "batches of 2-D maps (N, H, W)")
    if a.ndim != 3:
        raise ValueError(f"`a` and `b` must be batches of 2-D maps (N, H, W), got shape {a.shape}")
    win = check_positive_int(win_size, "win_size", minimum=3)
    if win % 2 == 0:
        raise ValueError(f"`win_size` must be odd, got {win}")
    if a.shape[1] < win or a.shape[2] < win:
        raise ValueError(
            f"`a` and `b` must be at least {win}x{win} (`win_size`), got {a.shape[1:]}"
        )
    k1, k2 = _positive_float(k1, "k1"), _positive_float(k2, "k2")
    n = a.shape[0]
    if data_range is not None:
        if isinstance(data_range, str):
            raise TypeError(f"`data_range` must be a number or (N,) numbers, got {data_range!r}")
        r = jnp.asarray(data_range)
        if not (jnp.issubdtype(r.dtype, jnp.floating) or jnp.issubdtype(r.dtype, jnp.integer)):
            raise TypeError(f"`data_range` must be a number or (N,) numbers, got {data_range!r}")
        if r.shape not in ((), (n,)):
            raise ValueError(f"`data_range` must be a number or ({n},) numbers, got {r.shape}")
        if is_concrete(r) and not (np.isfinite(np.asarray(r)) & (np.asarray(r) > 0)).all():
            raise ValueError(f"`data_range` must be finite and > 0, got {data_range!r}")
    if n == 0:
        return jnp.zeros((0,), a.dtype)
    if data_range is None:
        both = jnp.concatenate([a.reshape(n, -1), b.reshape(n, -1)], axis=1)
        r = both.max(1) - both.min(1)
    else:
        r = jnp.broadcast_to(jnp.asarray(data_range, a.dtype), (n,))
    # Centre both maps on a shared per-example value: variances and covariances do not change,
    # and float32 keeps its digits in E[x^2] - E[x]^2.
    m = 0.5 * (a.mean((1, 2), keepdims=True) + b.mean((1, 2), keepdims=True))
    a0, b0 = a - m, b - m
    cov_norm = win * win / (win * win - 1)
    ux, uy = _window_mean(a0, win), _window_mean(b0, win)
    vx = cov_norm * (_window_mean(a0 * a0, win) - ux * ux)
    vy = cov_norm * (_window_mean(b0 * b0, win) - uy * uy)
    vxy = cov_norm * (_window_mean(a0 * b0, win) - ux * uy)
    ux, uy = ux + m, uy + m
    c1 = ((k1 * r) ** 2)[:, None, None]
    c2 = ((k2 * r) ** 2)[:, None, None]
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean((1, 2))


def _block_normalize(block: jax.Array, method: str, eps: float = 1e-5) -> jax.Array:
    """scikit-image's ``_hog_normalize_block`` over the last three axes."""
    axes = (-3, -2, -1)
    if method == "L1":
        return block / (jnp.sum(jnp.abs(block), axes, keepdims=True) + eps)
    if method == "L1-sqrt":
        return jnp.sqrt(block / (jnp.sum(jnp.abs(block), axes, keepdims=True) + eps))
    out = block / jnp.sqrt(jnp.sum(block**2, axes, keepdims=True) + eps**2)
    if method == "L2-Hys":
        out = jnp.minimum(out, 0.2)
        out = out / jnp.sqrt(jnp.sum(out**2, axes, keepdims=True) + eps**2)
    return out


def hog(
    a: Any,
    *,
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block: tuple[int, int] = (3, 3),
    block_norm: str = "L2-Hys",
) -> jax.Array:
    """Histogram-of-oriented-gradients features of a batch of 2-D maps: ``(N, F)`` equal to
    ``skimage.feature.hog(a[i], ...)`` (``feature_vector=True``, no ``transform_sqrt``)."""
    if not hasattr(a, "shape") and not isinstance(a, list | tuple):
        raise TypeError(f"`a` must be an array, got {type(a).__name__}")
    a = jnp.asarray(a)
    if not (jnp.issubdtype(a.dtype, jnp.floating) or jnp.issubdtype(a.dtype, jnp.integer)):
        raise TypeError(f"`a` must be a numeric array, got dtype {a.dtype}")
    check_finite(a, "a")
    if a.ndim != 3:
        raise ValueError(f"`a` must be a batch of 2-D maps (N, H, W), got shape {a.shape}")
    a = a.astype(jnp.result_type(a.dtype, jnp.float32))
    n_or = check_positive_int(orientations, "orientations")
    if block_norm not in _BLOCK_NORMS:
        raise ValueError(f"`block_norm` must be one of {_BLOCK_NORMS}, got {block_norm!r}")
    cr, cc = _int_pair(pixels_per_cell, "pixels_per_cell")
    br, bc = _int_pair(cells_per_block, "cells_per_block")
    n, h, w = a.shape
    ncr, ncc = h // cr, w // cc
    nbr, nbc = ncr - br + 1, ncc - bc + 1
    if nbr <= 0 or nbc <= 0:
        raise ValueError(
            f"maps of {h}x{w} are too small for `pixels_per_cell` {(cr, cc)} and "
            f"`cells_per_block` {(br, bc)}: they need at least {br * cr}x{bc * cc}"
        )
    if n == 0:
        return jnp.zeros((0, nbr * nbc * br * bc * n_or), a.dtype)
    zr = jnp.zeros((n, 1, w), a.dtype)
    g_row = jnp.concatenate([zr, a[:, 2:] - a[:, :-2], zr], axis=1)
    zc = jnp.zeros((n, h, 1), a.dtype)
    g_col = jnp.concatenate([zc, a[:, :, 2:] - a[:, :, :-2], zc], axis=2)
    mag = jnp.hypot(g_col, g_row)
    angle = jnp.mod(jnp.rad2deg(jnp.arctan2(g_row, g_col)), 180.0)
    angle = jnp.where(g_row == 0, 0.0, angle)  # ±180° is 0° (float rounding may give 179.99...)
    bins = jnp.clip(jnp.floor(angle / (180.0 / n_or)).astype(jnp.int32), 0, n_or - 1)
    votes = jax.nn.one_hot(bins, n_or, dtype=a.dtype) * mag[..., None]
    votes = votes[:, : ncr * cr, : ncc * cc].reshape(n, ncr, cr, ncc, cc, n_or)
    hist = votes.sum((2, 4)) / (cr * cc)  # (N, ncr, ncc, orientations)
    blocks = jnp.stack(
        [
            jnp.stack([hist[:, r : r + br, c : c + bc] for c in range(nbc)], axis=1)
            for r in range(nbr)
        ],
        axis=1,
    )  # (N, nbr, nbc, br, bc, orientations)
    return _block_normalize(blocks, block_norm).reshape(n, -1)


def hog_similarity(
    a: Any,
    b: Any,
    *,
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block: tuple[int, int] = (3, 3),
    block_norm: str = "L2-Hys",
) -> jax.Array:
    """Pearson correlation of the HOG features of two batches of 2-D maps, per example (the HOG
    similarity of Adebayo et al. 2018).

    The features equal ``skimage.feature.hog`` with the same arguments (its defaults here); the
    correlation is ``scipy.stats.pearsonr`` of the two feature vectors.

    Args:
      a, b: ``(N, H, W)`` maps, at least ``cells_per_block * pixels_per_cell`` pixels a side.
      orientations, pixels_per_cell, cells_per_block, block_norm: as ``skimage.feature.hog``.

    Returns:
      ``(N,)`` correlations (NaN where a map's features are constant, e.g. a constant map).
    """
    a, b = _pair(a, b, 3, "batches of 2-D maps (N, H, W)")
    kw = {
        "orientations": orientations,
        "pixels_per_cell": pixels_per_cell,
        "cells_per_block": cells_per_block,
        "block_norm": block_norm,
    }
    if a.shape[0] == 0:
        hog(a, **kw)  # the argument checks
        return jnp.zeros((0,), a.dtype)
    return _pearson(hog(a, **kw), hog(b, **kw))


__all__ = ["hog", "hog_similarity", "spearman", "ssim"]
