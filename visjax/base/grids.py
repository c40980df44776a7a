"""Checks of coordinate grids and of surfaces sampled on them (shared by landscape and plot)."""

from __future__ import annotations

from typing import Any

import numpy as np

from visjax.base.checks import check_positive_int


def check_grid(values: Any, name: str) -> np.ndarray:
    """A 1-D, non-empty, strictly increasing, finite grid as float32, or a ValueError naming it."""
    g = np.asarray(values, np.float64)
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D grid, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError(f"`{name}` must be finite")
    if g.size > 1 and not (np.diff(g) > 0).all():
        raise ValueError(f"`{name}` must be strictly increasing")
    return g.astype(np.float32)


def check_surface(xs: Any, ys: Any, surface: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, surface)`` as float64 with ``surface[i, j]`` at ``(xs[i], ys[j])``, checked."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    z = np.asarray(surface, dtype=np.float64)
    if xs.ndim != 1 or ys.ndim != 1 or len(xs) < 2 or len(ys) < 2:
        raise ValueError(
            f"`xs` and `ys` must be 1-D with at least 2 entries, got shapes {xs.shape}, {ys.shape}"
        )
    if z.shape != (len(xs), len(ys)):
        raise ValueError(
            f"`surface` must have shape (len(xs), len(ys)) = {(len(xs), len(ys))}, got {z.shape}"
        )
    return xs, ys, z


def cover_grid(
    coords: Any, *, resolution: int = 21, margin: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """A grid ``(xs, ys)`` that covers 2-D points with a margin on every side.

    Args:
      coords: ``(N, 2)`` finite points, N >= 1.
      resolution: points per axis (>= 2).
      margin: the fraction of the extent added on every side (>= 0); an axis with no extent gets
        ``±margin`` times the other axis's extent (or ``±1``).

    Returns:
      ``(xs, ys)``, float32, strictly increasing.

    Example:
      >>> xs, ys = cover_grid([[0.0, 0.0], [2.0, 1.0]], resolution=3, margin=0.5)
      >>> xs.tolist(), ys.tolist()
      ([-1.0, 1.0, 3.0], [-0.5, 0.5, 1.5])
    """
    c = np.asarray(coords, np.float64)
    if c.ndim != 2 or c.shape[1] != 2 or len(c) < 1:
        raise ValueError(f"`coords` must have shape (N, 2) with N >= 1, got {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("`coords` must be finite")
    resolution = check_positive_int(resolution, "resolution", 2)
    if (
        isinstance(margin, bool)
        or not isinstance(margin, int | float | np.floating)
        or not (np.isfinite(margin) and margin >= 0)
    ):
        raise ValueError(f"`margin` must be a finite number >= 0, got {margin!r}")
    lo, hi = c.min(0), c.max(0)
    ext = hi - lo
    fallback = max(float(ext.max()), 0.0) or 1.0
    pad = np.where(ext > 0, margin * ext, max(margin, 0.25) * fallback)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution, dtype=np.float32)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution, dtype=np.float32)
    return xs, ys
