"""Baselines: the reference inputs of integrated gradients, DeepLIFT, Shapley values, occlusion
and feature ablation, built by one function."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from visjax.attribution._target import check_finite, require_key
from visjax.attribution.blur import gaussian_blur


def make_baseline(
    x: jax.Array,
    baseline: Any,
    *,
    key: jax.Array | None = None,
    name: str = "baseline",
    named: bool = True,
) -> jax.Array:
    """A baseline shaped like ``x`` from an array, a scalar or a name.

    Names: ``"zeros"`` (also ``None``); ``"uniform"`` (uniform noise between each example's min
    and max, needs ``key``); ``"blur"`` (the input blurred with a Gaussian of sigma = a quarter
    of the larger image side, for NHWC images). With ``named=False`` only a number or an array
    is accepted (occlusion, feature ablation).

    Raises:
      TypeError: a name or ``None`` with ``named=False``.
      ValueError: an unknown name, a baseline that does not broadcast to ``x``, NaN/Inf in it.
    """
    if not named and (isinstance(baseline, str) or baseline is None):
        raise TypeError(
            f"`{name}` must be a number or an array broadcastable to `x`, got {baseline!r}"
        )
    if baseline is None or (isinstance(baseline, str) and baseline == "zeros"):
        return jnp.zeros_like(x)
    if isinstance(baseline, str):
        if baseline == "uniform":
            key = require_key(key, "the 'uniform' baseline")
            axes = tuple(range(1, x.ndim))
            lo, hi = x.min(axes, keepdims=True), x.max(axes, keepdims=True)
            return lo + (hi - lo) * jax.random.uniform(key, x.shape, x.dtype)
        if baseline == "blur":
            if x.ndim != 4:
                raise ValueError(
                    f"the 'blur' baseline needs NHWC images, got `x` of shape {x.shape}"
                )
            return gaussian_blur(x, max(x.shape[1], x.shape[2]) / 4)
        raise ValueError(
            f"`{name}` must be an array, a scalar, 'zeros', 'uniform' or 'blur', got {baseline!r}"
        )
    b = jnp.asarray(baseline, x.dtype)
    try:
        b = jnp.broadcast_to(b, x.shape)
    except ValueError as e:
        raise ValueError(
            f"`{name}` of shape {b.shape} does not broadcast to `x` of shape {x.shape}"
        ) from e
    check_finite(b, name)
    return b


def check_references(references: Any, x: jax.Array) -> jax.Array:
    """``references`` as an ``(R, *x.shape[1:])`` array of ``x``'s dtype, ``R >= 1``, all finite
    (the reference set of expected gradients / GradientSHAP and DeepLiftShap); a ``ValueError``
    naming ``references`` otherwise."""
    refs = jnp.asarray(references, x.dtype)
    if refs.ndim != x.ndim or refs.shape[1:] != x.shape[1:] or refs.shape[0] < 1:
        raise ValueError(
            f"`references` must have shape (R, {', '.join(map(str, x.shape[1:]))}), "
            f"got {refs.shape}"
        )
    check_finite(refs, "references")
    return refs
