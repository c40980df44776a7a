"""Checks of coordinate grids and of surfaces sampled on them (shared by landscape and plot)."""

from __future__ import annotations

from typing import Any

import numpy as np


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
