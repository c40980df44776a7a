"""Shared pieces of the attribution metrics: maps from arrays or methods, checks, curve areas."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.attribution._target import Target, prepare, resolve
from visjax.attribution.baselines import make_baseline
from visjax.base.checks import check_finite, is_concrete
from visjax.model import Model


class Curves(NamedTuple):
    """A perturbation curve per example and its area.

    Attributes:
      curves: ``(N, n_points)`` the model's score at each step.
      auc: ``(N,)`` the area under each curve (trapezoid rule over the steps' fractions).
    """

    curves: jax.Array
    auc: jax.Array


def maps_of(
    method_or_maps: Any, model: Model, x: jax.Array, target: Target, name: str
) -> jax.Array:
    """Attribution maps: the array given, or ``method(model, x, target)`` for a visjax method, a
    ``functools.partial`` of one or a user function; checked finite (NaN names ``name``)."""
    maps = method_or_maps(model, x, target) if callable(method_or_maps) else method_or_maps
    maps = jnp.asarray(maps)
    if not jnp.issubdtype(maps.dtype, jnp.floating) and not jnp.issubdtype(maps.dtype, jnp.integer):
        raise TypeError(f"`{name}` must be a numeric array, got dtype {maps.dtype}")
    if callable(method_or_maps) and is_concrete(maps) and not np.isfinite(np.asarray(maps)).all():
        raise ValueError(f"`{name}` returned maps with NaN or Inf")
    check_finite(maps, name)
    return maps.astype(jnp.result_type(maps.dtype, jnp.float32))


def check_maps_shape(maps: jax.Array, x: jax.Array, name: str) -> None:
    """``maps`` must have ``x``'s rank and batch and broadcast to ``x`` (e.g. ``(N, H, W, 1)``
    for NHWC images: one score per pixel, shared by its channels)."""
    ok = maps.ndim == x.ndim and maps.shape[0] == x.shape[0]
    if ok:
        try:
            np.broadcast_shapes(maps.shape, x.shape)
            ok = np.broadcast_shapes(maps.shape, x.shape) == tuple(x.shape)
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(
            f"`{name}` must have the shape of `x` {tuple(x.shape)} (or broadcast to it with the "
            f"same batch and rank), got {tuple(maps.shape)}"
        )


def setup(model: Any, x: Any, target: Target) -> tuple[Model, jax.Array, Any, jax.Array]:
    """``(model, x, target_fn, t)`` checked as the attribution methods check them."""
    model, x = prepare(model, x)
    target_fn, t = resolve(model, x, target)
    return model, x, target_fn, t


def trapezoid(curves: jax.Array, fractions: jax.Array) -> jax.Array:
    """Trapezoid-rule area of ``curves (N, P)`` over the points ``fractions (P,)``."""
    dx = jnp.diff(fractions)
    return jnp.sum(dx * (curves[:, 1:] + curves[:, :-1]) / 2, axis=1)


def concrete_float(value: Any, name: str) -> float:
    if not is_concrete(value) or np.ndim(value) != 0:
        raise ValueError(f"`{name}` must be a concrete scalar, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"`{name}` must be finite, got {v}")
    return v


def valid_rows(r: jax.Array, n_rows: int) -> tuple[jax.Array, jax.Array]:
    """``(row to compute, index to store)``: the padding rows of
    :func:`visjax.attribution.ablation.full_chunks` compute row 0 and store out of range (dropped
    by ``.at[...].set(..., mode="drop")``)."""
    valid = r < n_rows
    return jnp.where(valid, r, 0), jnp.where(valid, r, n_rows)


def baseline_value(x: jax.Array, baseline: Any) -> Any:
    """A number as a float (broadcast inside the jitted program), else
    :func:`~visjax.attribution.baselines.make_baseline`'s array; NaN/Inf raise ``ValueError``."""
    if isinstance(baseline, int | float | np.integer | np.floating) and not isinstance(
        baseline, bool | np.bool_
    ):
        value = float(baseline)
        if not np.isfinite(value):
            raise ValueError("`baseline` contains NaN or Inf")
        return value
    return make_baseline(x, baseline, named=False)
