"""Gradient statistics collected inside the jitted optimiser update: an optax wrapper.

``track(inner)`` is an ``optax.GradientTransformation`` that behaves exactly like ``inner`` (its
updates are ``inner``'s, bit for bit) and, in the same compiled update, computes per-group
statistics of the incoming gradients (:func:`visjax.gradstats.stats.layer_stats`) and stores
them in its state: a fixed-size ring buffer of the last ``history`` steps, or running
aggregates. No host callbacks; the state is a pytree with static shapes, so a jitted training
step traces once. :func:`snapshot` brings the statistics to the host as NumPy arrays.

Put ``track`` outermost (``track(optax.chain(clip, adam))``) to see the raw gradients; placed
inside a chain it sees what the earlier links pass on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from visjax.base.checks import check_positive_int
from visjax.gradstats.stats import STATISTICS, Groups, check_edges, check_stats, layer_stats

Aggregate = Literal["ring", "running"]
_RUNNING = ("mean", "max", "last")


class TrackState(NamedTuple):
    """State of :func:`track`.

    Attributes:
      inner: the wrapped optimiser's state.
      step: int32 scalar, the number of updates done so far (the next update's step number).
      buffer: ``aggregate="ring"``: statistic -> group -> array ``(history, ...)``; slot
        ``step % history`` is written next. ``None`` with ``aggregate="running"``.
      steps: ``aggregate="ring"``: int32 ``(history,)``, the step number stored in each slot
        (-1 for a slot not written yet); ``None`` with ``"running"``.
      running: ``aggregate="running"``: ``{"mean", "max", "last"}`` -> statistic -> group ->
        array, over all steps so far (elementwise for histograms); ``None`` with ``"ring"``.
      edges: the histogram edges as used (float32 unless x64 is on), or ``None`` without
        ``histogram``.
    """

    inner: Any
    step: jax.Array
    buffer: dict[str, dict[str, jax.Array]] | None
    steps: jax.Array | None
    running: dict[str, dict[str, dict[str, jax.Array]]] | None
    edges: jax.Array | None


class Snapshot(NamedTuple):
    """The statistics of a :class:`TrackState` on the host, as NumPy arrays.

    The format the writers and plots consume.

    Attributes:
      steps: int64 ``(T,)``, the step number of each row in increasing order: step ``k`` is
        the ``k``-th call of the update (from 0). With ``aggregate="ring"`` the last
        ``min(n_steps, history)`` steps (the ring unrolled, unwritten slots left out); with
        ``"running"`` only the last step (``T = 1``, or 0 before the first update).
      stats: statistic -> group -> array ``(T,)`` (``(T, bins)`` for ``histogram``), row ``t``
        belonging to ``steps[t]``; float32 statistics (float64 under x64), int32 for
        ``nonfinite`` and ``histogram``. Statistics in :data:`~visjax.gradstats.stats.STATISTICS`
        order, groups in sorted order (JAX returns dicts from ``jit`` with sorted keys).
      edges: float ``(bins + 1,)``, the histogram edges, or ``None`` without ``histogram``.
      running: ``None`` with ``aggregate="ring"``; with ``"running"``: ``{"mean": ...,
        "max": ...}``, each statistic -> group -> array of the statistic's own shape (``()`` or
        ``(bins,)``), the mean and the (elementwise) maximum over all ``n_steps`` steps (zeros
        before the first update).
      n_steps: the number of updates done.
    """

    steps: np.ndarray
    stats: dict[str, dict[str, np.ndarray]]
    edges: np.ndarray | None
    running: dict[str, dict[str, dict[str, np.ndarray]]] | None
    n_steps: int


def track(
    inner: optax.GradientTransformation,
    *,
    groups: Groups = "layers",
    include: str | Sequence[str] | None = None,
    stats: str | Sequence[str] = ("norm", "max_abs", "nonfinite", "update_ratio"),
    edges: Any = None,
    history: int = 100,
    aggregate: Aggregate = "ring",
) -> optax.GradientTransformationExtraArgs:
    """Wrap an optimiser so that its update also records per-group gradient statistics.

    ``update(grads, state, params)`` returns exactly ``inner``'s updates and a
    :class:`TrackState` holding :func:`~visjax.gradstats.stats.layer_stats` of ``grads``
    (``update_ratio`` from ``inner``'s updates and ``params``: ``‖u_g‖ / ‖θ_g‖`` with the
    parameters before the update). The statistics are computed in the same traced update, so
    under a caller's ``jax.jit`` they cost no host round trip. NaN/Inf gradients are counted
    (``nonfinite``) and left out of the other statistics; the updates are untouched (``inner``
    decides what they become).

    Args:
      inner: the optimiser to wrap (extra update arguments, e.g. ``value=``, are passed on).
      groups: ``"layers"`` or group name -> glob pattern(s) over dotted parameter paths.
      include: glob pattern(s) choosing the parameters to track (``None``: all).
      stats: statistic name(s) from :data:`~visjax.gradstats.stats.STATISTICS` (static);
        ``nonfinite`` is always recorded too (one int per group and step), so that
        :func:`~visjax.gradstats.stats.flags` flags a step with NaN/Inf gradients whatever
        ``stats`` holds (the norms leave those entries out).
      edges: histogram edges (static; :func:`~visjax.gradstats.stats.default_edges` if None).
      history: ``aggregate="ring"``: the number of most recent steps kept (static).
      aggregate: ``"ring"`` (the last ``history`` steps) or ``"running"`` (mean, max and last
        value over all steps; a running mean that once sees ``inf`` stays ``inf``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`TrackState`
      (groups and include are checked by ``init``; ``update`` needs ``params`` when
      ``update_ratio`` is tracked).

    Raises:
      TypeError: ``inner`` is not an ``optax.GradientTransformation``.
      ValueError: an unknown statistic (listing the known ones), bad ``history``,
        ``aggregate`` or ``edges``; from ``init``, groups or include matching nothing; from
        ``update``, ``params=None`` with ``update_ratio``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> params = {"w": jnp.ones(3), "b": jnp.zeros(1)}
      >>> opt = track(optax.sgd(0.1), groups={"w": "w", "b": "b"}, history=4)
      >>> state = opt.init(params)
      >>> grads = {"w": jnp.array([3.0, 0.0, -4.0]), "b": jnp.array([jnp.nan])}
      >>> updates, state = jax.jit(opt.update)(grads, state, params)
      >>> snap = snapshot(state)
      >>> snap.steps.tolist(), snap.stats["norm"]["w"].tolist(), snap.stats["nonfinite"]["b"]
      ([0], [5.0], array([1], dtype=int32))
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(
            "`inner` must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), got "
            f"{inner!r}"
        )
    want = check_stats(stats)
    if "nonfinite" not in want:
        # always counted, so that `flags` sees a NaN step whatever `stats` holds
        want = (*want, "nonfinite")
    e = check_edges(edges) if "histogram" in want else None
    history = check_positive_int(history, "history")
    if aggregate not in ("ring", "running"):
        raise ValueError(f"`aggregate` must be 'ring' or 'running', got {aggregate!r}")
    ratio = "update_ratio" in want
    inner = optax.with_extra_args_support(inner)

    def compute(grads, updates, params):
        return layer_stats(
            grads,
            groups=groups,
            include=include,
            stats=want,
            edges=e,
            updates=updates if ratio else None,
            params=params if ratio else None,
        )

    def init_fn(params):
        shapes = jax.eval_shape(compute, params, params, params)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        buffer = steps = running = None
        if aggregate == "ring":
            buffer = jax.tree.map(lambda s: jnp.zeros((history, *s.shape), s.dtype), shapes)
            steps = jnp.full((history,), -1, jnp.int32)
        else:
            means = jax.tree.map(
                lambda s: jnp.zeros(s.shape, jnp.promote_types(s.dtype, jnp.float32)), shapes
            )
            running = {"mean": means, "max": zeros, "last": zeros}
        return TrackState(
            inner=inner.init(params),
            step=jnp.zeros([], jnp.int32),
            buffer=buffer,
            steps=steps,
            running=running,
            edges=None if e is None else jnp.asarray(e),
        )

    def update_fn(updates, state, params=None, **extra_args):
        if ratio and params is None:
            raise ValueError(
                "track(..., stats containing 'update_ratio') needs `params` in update(grads, "
                "state, params); pass them or leave 'update_ratio' out of `stats`"
            )
        new_updates, inner_state = inner.update(updates, state.inner, params, **extra_args)
        values = compute(updates, new_updates, params)
        k = state.step
        buffer, steps, running = state.buffer, state.steps, state.running
        if aggregate == "ring":
            i = k % history
            buffer = jax.tree.map(lambda b, v: b.at[i].set(v.astype(b.dtype)), buffer, values)
            steps = steps.at[i].set(k)
        else:

            def mean(m, v):
                n = (k + 1).astype(m.dtype)
                # not m + (v - m) / n: that is NaN once m and v are both inf
                return m * (k.astype(m.dtype) / n) + v.astype(m.dtype) / n

            def top(m, v):
                v = v.astype(m.dtype)
                return jnp.where(k == 0, v, jnp.maximum(m, v))

            running = {
                "mean": jax.tree.map(mean, running["mean"], values),
                "max": jax.tree.map(top, running["max"], values),
                "last": jax.tree.map(lambda m, v: v.astype(m.dtype), running["last"], values),
            }
        new_state = TrackState(inner_state, k + 1, buffer, steps, running, state.edges)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def find_track_state(opt_state: Any) -> TrackState:
    """The one :class:`TrackState` inside an optimiser state (e.g. of an ``optax.chain``).

    Args:
      opt_state: an optimiser state (a pytree) containing exactly one :class:`TrackState`
        outside any other one.

    Returns:
      That :class:`TrackState`.

    Raises:
      ValueError: none, or several (pick one from the state yourself).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> opt = optax.chain(optax.clip(1.0), track(optax.sgd(0.1), stats="norm"))
      >>> state = opt.init({"w": jnp.ones(2)})
      >>> type(find_track_state(state)).__name__
      'TrackState'
    """
    found = [
        x
        for x in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, TrackState))
        if isinstance(x, TrackState)
    ]
    if len(found) != 1:
        raise ValueError(
            f"expected exactly one TrackState in the optimiser state, found {len(found)}"
            + ("" if found else "; was the optimiser wrapped with visjax.gradstats.track?")
        )
    return found[0]


def _ordered(tree: Any) -> Any:
    """Statistic dicts in ``STATISTICS`` order, groups sorted: the same with or without jit."""
    return {s: dict(sorted(tree[s].items())) for s in STATISTICS if s in tree}


def snapshot(state: Any) -> Snapshot:
    """The recorded statistics on the host, in time order (see :class:`Snapshot`).

    Args:
      state: a :class:`TrackState`, or an optimiser state containing one
        (:func:`find_track_state`).

    Returns:
      A :class:`Snapshot` of NumPy arrays.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> opt = track(optax.sgd(1.0), stats="max_abs", history=2)
      >>> params = {"w": jnp.zeros(2)}
      >>> state = opt.init(params)
      >>> for g in (1.0, 2.0, 3.0):
      ...     _, state = opt.update({"w": jnp.full(2, g)}, state, params)
      >>> snap = snapshot(state)
      >>> snap.steps.tolist(), snap.stats["max_abs"]["w"].tolist(), snap.n_steps
      ([1, 2], [2.0, 3.0], 3)
    """
    if not isinstance(state, TrackState):
        state = find_track_state(state)
    step, buffer, steps, running, edges = jax.device_get(
        (state.step, state.buffer, state.steps, state.running, state.edges)
    )
    n = int(step)
    edges = None if edges is None else np.asarray(edges)
    if running is not None:
        running = {agg: _ordered(running[agg]) for agg in _RUNNING}
    if running is None:
        size = steps.shape[0]
        t = min(n, size)
        order = (n - t + np.arange(t)) % size
        stats = {
            s: {g: np.asarray(v)[order] for g, v in d.items()} for s, d in _ordered(buffer).items()
        }
        return Snapshot(steps[order].astype(np.int64), stats, edges, None, n)
    rows = 1 if n > 0 else 0
    stats = {
        s: {g: np.repeat(np.asarray(v)[None], rows, axis=0) for g, v in d.items()}
        for s, d in running["last"].items()
    }
    summary = {
        agg: {s: {g: np.asarray(v) for g, v in d.items()} for s, d in running[agg].items()}
        for agg in ("mean", "max")
    }
    return Snapshot(np.arange(n - rows, n, dtype=np.int64), stats, edges, summary, n)
