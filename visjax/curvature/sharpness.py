"""Keskar et al.'s ε-sharpness: the largest loss increase in a small set around the parameters."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_key, check_positive_int, scalar_loss
from visjax.base.data import LossFn, data_sum
from visjax.base.progress import progress_bar, resolve_progress
from visjax.curvature.spectrum import check_problem, loss_value


class Sharpness(NamedTuple):
    """``value`` (Keskar's percentage), the loss at ``params``, the largest loss found, and the
    perturbation ``delta`` (shaped like ``params``) that reached it."""

    value: float
    loss: float
    max_loss: float
    delta: Any


def _project(delta, params, radius, relative):
    if relative:  # Keskar's box |δ_i| <= ε (|w_i| + 1)
        return jax.tree.map(
            lambda d, w: jnp.clip(d, -radius * (jnp.abs(w) + 1), radius * (jnp.abs(w) + 1)),
            delta,
            params,
        )
    norm = jnp.sqrt(sum(jnp.sum(d.astype(jnp.float32) ** 2) for d in jax.tree.leaves(delta)))
    scale = jnp.minimum(1.0, radius / jnp.maximum(norm, 1e-30))
    return jax.tree.map(lambda d: (d * scale).astype(d.dtype), delta)


@functools.partial(jax.jit, static_argnames=("loss_fn", "batch_size", "relative"))
def _ascent_step(loss_fn, params, delta, data, radius, step_size, batch_size, relative):
    """The loss at ``params + delta`` and the next projected ascent iterate."""
    value_and_grad = jax.value_and_grad(scalar_loss(loss_fn))

    def per_chunk(batch):
        value, grad = value_and_grad(jax.tree.map(jnp.add, params, delta), batch)
        return jnp.asarray(value, jnp.float32), grad

    value, grad = data_sum(per_chunk, data, batch_size)
    if relative:  # steepest ascent for the box (∞-norm): a signed step scaled per entry
        step = jax.tree.map(
            lambda g, w: step_size * radius * (jnp.abs(w) + 1) * jnp.sign(g), grad, params
        )
    else:  # steepest ascent for the L2 ball: the normalised gradient
        norm = jnp.sqrt(sum(jnp.sum(g.astype(jnp.float32) ** 2) for g in jax.tree.leaves(grad)))
        step = jax.tree.map(lambda g: step_size * radius * g / jnp.maximum(norm, 1e-30), grad)
    new = jax.tree.map(lambda d, s: (d + s).astype(d.dtype), delta, step)
    return value, _project(new, params, radius, relative)


def _random_start(params, radius, relative, key):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves) + 1)
    if relative:
        parts = [
            jax.random.uniform(k, jnp.shape(w), jnp.result_type(w), -1.0, 1.0)
            * radius
            * (jnp.abs(w) + 1)
            for k, w in zip(keys, leaves, strict=False)
        ]
        return jax.tree.unflatten(treedef, parts)
    parts = [
        jax.random.normal(k, jnp.shape(w), jnp.result_type(w))
        for k, w in zip(keys, leaves, strict=False)
    ]
    norm = jnp.sqrt(sum(jnp.sum(p.astype(jnp.float32) ** 2) for p in parts))
    dim = sum(np.size(w) for w in leaves)
    r = radius * jax.random.uniform(keys[-1]) ** (1.0 / dim)  # uniform in the ball
    return jax.tree.unflatten(treedef, [(p * r / norm).astype(p.dtype) for p in parts])


def sharpness(
    loss_fn: LossFn,
    params: Any,
    *,
    data: Any,
    radius: float = 1e-3,
    relative: bool = True,
    n_steps: int = 20,
    step_size: float | None = None,
    key: jax.Array | None = None,
    batch_size: int | str | None = "auto",
    progress: bool | str = "auto",
) -> Sharpness:
    """Keskar et al.'s ε-sharpness of the dataset-mean loss ``L`` at ``params``.

    ``φ = 100 · (max_{δ ∈ C} L(w + δ) − L(w)) / (1 + L(w))``. With ``relative=True`` ``C`` is
    Keskar's box ``|δ_i| ≤ ε (|w_i| + 1)`` with ``ε = radius``; with ``relative=False`` it is
    the L2 ball ``‖δ‖₂ ≤ radius``. The maximum is sought by ``n_steps`` of projected steepest
    ascent from ``δ = 0`` (or a uniform random point of ``C`` when ``key`` is given): in the box a
    signed step ``step_size · ε (|w_i| + 1) · sign(∂_i L)``, in the ball a step
    ``step_size · radius`` along the normalised gradient, each followed by the projection on ``C``.
    ``max_loss`` is the largest loss over all iterates (``δ = 0`` included when no ``key``), so the
    value is a lower bound on the true sharpness and ``>= 0`` from the zero start.

    Args:
      loss_fn: ``(params, batch) -> scalar`` (batch mean; static).
      params: the parameters.
      data: one batch, summed in chunks of ``batch_size``.
      radius: ``ε`` (box) or the ball's radius; positive.
      relative: Keskar's box (``True``) or an L2 ball (``False``); static.
      n_steps: ascent steps (static).
      step_size: step in units of the set's size; default ``2.5 / n_steps`` (Madry et al.'s
        PGD rule, enough to cross the set).
      key: PRNG key for a random start; ``None``: start at ``params``.
      batch_size: examples per data chunk (static); ``"auto"`` (default) picks it from the
        per-example cost, ``None``: all at once (as :func:`visjax.curvature.hvp`).
      progress: a bar over the ascent steps: ``"auto"`` (default) when standard error is a
        terminal, ``True``/``False`` force it.

    Returns:
      A :class:`Sharpness`.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w, x: 0.5 * (w**2).sum() + 0 * x.sum()
      >>> s = sharpness(loss, jnp.ones(1), data=jnp.zeros((2, 1)), radius=0.1, relative=False)
      >>> round(s.max_loss, 4), round(s.value, 3)
      (0.605, 7.0)

    References:
      Keskar, Mudigere, Nocedal, Smelyanskiy, Tang, "On Large-Batch Training for Deep Learning:
      Generalization Gap and Sharp Minima", ICLR 2017, https://arxiv.org/abs/1609.04836 (they
      maximise with L-BFGS-B over the box, optionally in a random subspace; this uses projected
      gradient ascent in the full space). Madry et al., ICLR 2018 (the step rule).
    """
    try:
        r = float(radius)
    except (TypeError, ValueError):
        raise ValueError(f"`radius` must be a positive number, got {radius!r}") from None
    if not np.isfinite(r) or r <= 0:
        raise ValueError(f"`radius` must be a positive number, got {radius!r}")
    n_steps = check_positive_int(n_steps, "n_steps")
    try:
        step = 2.5 / n_steps if step_size is None else float(step_size)
    except (TypeError, ValueError):
        raise ValueError(f"`step_size` must be a positive number, got {step_size!r}") from None
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"`step_size` must be a positive number, got {step_size!r}")
    if key is not None:
        check_key(key)
    check_problem(loss_fn, params, data, batch_size)
    relative = bool(relative)
    show = resolve_progress(progress)
    base = float(loss_value(loss_fn, params, data, batch_size))
    if key is None:
        delta = jax.tree.map(jnp.zeros_like, params)
    else:
        delta = _random_start(params, r, relative, key)
    radius_arr, step_arr = jnp.float32(r), jnp.float32(step)
    best, best_delta = -np.inf, delta
    with progress_bar(n_steps, desc="sharpness", unit="step", enabled=show) as bar:
        for i in range(n_steps + 1):
            if i < n_steps:
                value, new = _ascent_step(
                    loss_fn, params, delta, data, radius_arr, step_arr, batch_size, relative
                )
            else:
                new = delta
                value = loss_value(loss_fn, jax.tree.map(jnp.add, params, delta), data, batch_size)
            value = float(value)
            if np.isfinite(value) and value > best:
                best, best_delta = value, delta
            delta = new
            if i < n_steps:
                bar.update(1)
    if not np.isfinite(best):
        best = base
    value = 100.0 * (best - base) / (1.0 + base)
    return Sharpness(float(value), base, float(best), best_delta)
