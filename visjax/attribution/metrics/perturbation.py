"""Infidelity and max-sensitivity (Yeh et al. 2019), with Captum's definitions.

Randomness comes from ``key`` at call time: sample ``s`` of example ``e`` uses the key
``jax.random.split(key, (N, n_perturb_samples))[e, s]``, so a peer library can be handed the same
noise (the peer test does).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from visjax.attribution._target import Target, check_batch_size, select_output
from visjax.attribution.ablation import full_chunks
from visjax.attribution.metrics._common import (
    check_maps_shape,
    concrete_float,
    maps_of,
    setup,
    valid_rows,
)
from visjax.base.batching import FORWARD_UNROLL, chunked_sum
from visjax.base.checks import check_key, check_positive_int

INFIDELITY_STDEV = 0.003  # Captum's documented example perturbation: x − ε, ε ~ N(0, 0.003²)


def gaussian_perturbation(key: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Infidelity's default for one example: ``(I, x − I)`` with ``I ~ N(0, 0.003²)`` (the
    example perturbation of Captum's ``infidelity`` documentation)."""
    noise = INFIDELITY_STDEV * jax.random.normal(key, x.shape, x.dtype)
    return noise, x - noise


def uniform_perturbation(key: jax.Array, x: jax.Array, radius: Any = 0.02) -> jax.Array:
    """Max-sensitivity's default for one example: ``x + U(−r, r)`` per element (Captum's
    ``default_perturb_func``, the L∞ ball of radius ``r``)."""
    return x + jax.random.uniform(key, x.shape, x.dtype, -radius, radius)


def sample_keys(key: jax.Array, n: int, n_samples: int) -> jax.Array:
    """``(N, n_samples)`` keys: sample ``s`` of example ``e`` uses ``[e, s]``."""
    return jax.random.split(key, (n, n_samples))


@functools.partial(
    jax.jit, static_argnames=("target_fn", "perturb_fn", "n_samples", "normalize", "batch_size")
)
def _infidelity(model, x, t, maps, keys, target_fn, perturb_fn, n_samples, normalize, batch_size):
    n = x.shape[0]
    f = lambda xs, ts: jax.vmap(functools.partial(select_output, target_fn))(model(xs), ts)  # noqa: E731
    f0 = f(x, t)
    flat_keys = keys.reshape(n * n_samples)

    def chunk(r):
        r, store = valid_rows(r, n * n_samples)
        e = r // n_samples
        pert, xp = jax.vmap(perturb_fn)(flat_keys[r], x[e])
        diff = f0[e] - f(xp, t[e])
        dot = jnp.sum((maps[e] * pert).reshape(r.shape[0], -1), axis=1)
        terms = jnp.stack([dot * dot, dot * diff, diff * diff, (dot - diff) ** 2], axis=1)
        return jnp.zeros((n + 1, 4), terms.dtype).at[jnp.minimum(store // n_samples, n)].add(terms)

    size, rows = full_chunks(batch_size, chunk, n * n_samples)
    sums = chunked_sum(chunk, rows, batch_size=size, max_unroll=FORWARD_UNROLL)[:n]
    a, b, c, sq = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
    if normalize:
        beta = b / jnp.where(a != 0, a, 1.0)
        return (beta * beta * a - 2 * beta * b + c) / n_samples
    return sq / n_samples


def infidelity(
    model: Any,
    x: Any,
    target: Target,
    attributions: Any,
    *,
    key: jax.Array,
    perturb_fn: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]] | None = None,
    n_perturb_samples: int = 10,
    normalize: bool = False,
    batch_size: int | str | None = "auto",
) -> jax.Array:
    """Infidelity: how badly ``φ · I`` predicts the drop ``f(x) − f(x − I)`` under perturbations.

    ``INFD(φ, f, x) = E_I[(Σ_i φ_i I_i − (f(x) − f(x − I)))²]``, estimated by the mean over
    ``n_perturb_samples`` draws (Captum's ``infidelity``). With ``normalize``, ``φ`` is first
    scaled by the least-squares ``β = E[(φ·I)(Δf)] / E[(φ·I)²]`` (0/0 taken as ``β = 0``, Captum's
    ``safe_div``): ``E[(β φ·I − Δf)²]``.

    Args:
      model, x, target: as :func:`visjax.attribution.metrics.deletion`; the score is the
        target's logit (or ``target(output)``), as Captum's ``forward_func``.
      attributions: maps shaped like ``x`` (or broadcasting), or a method.
      key: the perturbations' key (see the module doc for which sample uses which key).
      perturb_fn: ``(key, x_i) -> (I, perturbed x_i)`` for one example (static: pass the same
        function object to avoid recompiling); default :func:`gaussian_perturbation`. Captum's
        ``perturb_func`` returns the same pair for a batch.
      n_perturb_samples: draws per example (static, >= 1).
      normalize: fit the scale ``β`` first (static).
      batch_size: perturbed inputs per chunk (static); ``None`` or ``"auto"`` as ``deletion``.

    Returns:
      ``(N,)`` infidelity per example (lower is better).

    References:
      Yeh, Hsieh, Suggala, Inouye, Ravikumar, "On the (In)fidelity and Sensitivity of
      Explanations", NeurIPS 2019. https://arxiv.org/abs/1901.09392 ; Captum's ``infidelity``.
    """
    model, x, target_fn, t = setup(model, x, target)
    check_key(key)
    n_samples = check_positive_int(n_perturb_samples, "n_perturb_samples")
    batch_size = check_batch_size(batch_size)
    if perturb_fn is not None and not callable(perturb_fn):
        raise ValueError(f"`perturb_fn` must be callable, got {perturb_fn!r}")
    maps = maps_of(attributions, model, x, target, "attributions")
    check_maps_shape(maps, x, "attributions")
    maps = jnp.broadcast_to(maps, x.shape)
    if x.shape[0] == 0:
        return jnp.zeros((0,), jnp.float32)
    keys = sample_keys(key, x.shape[0], n_samples)
    fn = gaussian_perturbation if perturb_fn is None else perturb_fn
    return _infidelity(
        model, x, t, maps, keys, target_fn, fn, n_samples, bool(normalize), batch_size
    )


def sensitivity_max(
    method: Callable[..., Any],
    model: Any,
    x: Any,
    target: Target,
    *,
    key: jax.Array,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    perturb_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """Max-sensitivity: the largest relative change of the maps under small input perturbations.

    ``SENS_max(φ, x) = max_{s} ‖φ(x + δ_s) − φ(x)‖₂ / ‖φ(x)‖₂`` over ``n_perturb_samples``
    draws ``δ_s ~ U(−r, r)`` per element (Captum's ``sensitivity_max`` with its default
    perturbation and ``norm_ord="fro"``; a zero ``‖φ(x)‖`` divides by 1, as Captum).

    All ``N · n_perturb_samples`` perturbed inputs go to ``method`` in one call (the method's own
    ``batch_size``, set with ``functools.partial``, bounds its memory).

    Args:
      method: any visjax method, a ``functools.partial`` of one, or a function
        ``(model, x, target) -> maps``.
      model, x, target: as :func:`visjax.attribution.metrics.deletion`.
      key: the perturbations' key (module doc: which sample uses which key).
      perturb_radius: ``r``, the L∞ radius of the default perturbation.
      n_perturb_samples: draws per example (>= 1).
      perturb_fn: ``(key, x_i) -> perturbed x_i`` for one example; default
        :func:`uniform_perturbation` with ``perturb_radius``.

    Returns:
      ``(N,)`` max-sensitivity per example (lower is better).

    Raises:
      ValueError: a method that returns NaN/Inf or maps of a shape that changes with the input.

    References:
      Yeh, Hsieh, Suggala, Inouye, Ravikumar, "On the (In)fidelity and Sensitivity of
      Explanations", NeurIPS 2019. https://arxiv.org/abs/1901.09392 ; Captum's
      ``sensitivity_max``.
    """
    if not callable(method):
        raise ValueError(f"`method` must be callable (model, x, target) -> maps, got {method!r}")
    model, x, _, t = setup(model, x, target)
    check_key(key)
    n_samples = check_positive_int(n_perturb_samples, "n_perturb_samples")
    radius = concrete_float(perturb_radius, "perturb_radius")
    if radius < 0:
        raise ValueError(f"`perturb_radius` must be >= 0, got {radius}")
    if perturb_fn is None:
        perturb_fn = functools.partial(uniform_perturbation, radius=radius)
    elif not callable(perturb_fn):
        raise ValueError(f"`perturb_fn` must be callable, got {perturb_fn!r}")
    n = x.shape[0]
    if n == 0:
        return jnp.zeros((0,), jnp.float32)
    maps = maps_of(method, model, x, target, "method")
    keys = sample_keys(key, n, n_samples).reshape(n * n_samples)
    xs = jnp.repeat(x, n_samples, axis=0)
    xp = jax.vmap(perturb_fn)(keys, xs)
    tp = target if callable(target) else jnp.repeat(t, n_samples)
    maps_p = maps_of(method, model, xp, tp, "method")
    if maps_p.shape[1:] != maps.shape[1:]:
        raise ValueError(
            f"`method` returned maps of shape {maps_p.shape[1:]} for perturbed inputs and "
            f"{maps.shape[1:]} for `x`"
        )
    return _sensitivity(maps, maps_p, n_samples)


@functools.partial(jax.jit, static_argnames=("n_samples",))
def _sensitivity(maps, maps_p, n_samples):
    n = maps.shape[0]
    flat = maps.reshape(n, math.prod(maps.shape[1:]))
    diff = jnp.repeat(flat, n_samples, axis=0) - maps_p.reshape(n * n_samples, -1)
    norm = jnp.linalg.norm(flat, axis=1)
    norm = jnp.where(norm == 0, 1.0, norm)
    rel = jnp.linalg.norm(diff, axis=1).reshape(n, n_samples) / norm[:, None]
    return rel.max(axis=1)
