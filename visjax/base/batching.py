"""Chunked evaluation inside one trace: bounded memory for work that multiplies the batch.

Work that multiplies a batch (integration steps, noise samples, occlusion windows) is evaluated in
chunks of ``batch_size`` rows. On XLA:CPU a Python loop over the chunks *inside one jit* (an
unrolled loop) measured 3-7x faster than ``lax.map``/``scan`` over the same chunks, because
gradient work inside XLA loop bodies runs far slower on CPU (docs/design.md: 16,384 input
gradients of a digits CNN, unrolled chunks 0.38-0.56 s, ``lax.map`` 2.0 s, one batched call
0.71-0.82 s). Unrolling grows the program with the number of chunks, so past ``max_unroll`` chunks
the remainder is driven by a ``lax.scan`` over groups of unrolled chunks that carries the sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

MAX_UNROLL = 64
# Forward-only work (perturbation methods: occlusion, ablation, Shapley sampling, Kernel SHAP,
# LIME, Score-/Ablation-CAM) has no gradient inside the loop body, and there a scan over the
# chunks measured as fast as unrolling or faster (occlusion of 256 digits with 1x1 windows in chunks
# of 512: 157 vs 188 ms) while compiling 3-10x faster in a fraction of the memory (first call
# 0.65 vs 6.1 s, peak RSS 440 vs 687 MB): those methods pass ``max_unroll=FORWARD_UNROLL``.
FORWARD_UNROLL = 1

AUTO = "auto"
# The rule behind ``batch_size="auto"`` (see :func:`auto_rows`). Constants come from measurements
# on XLA:CPU (2 cores, docs/design.md "Fast by default"): the steady-state time of chunked work is
# flat (within 1.2x of the best) for chunks whose intermediates take about 1-16 MiB, and grows past
# that as the working set leaves the caches (IG on 256 digits, 16,384 rows of ~45 KiB: one batch
# 2.4x slower than chunks of 256 rows); accelerators want the largest chunk that fits.
CPU_CHUNK_BYTES = 8 * 2**20
# Forward-only work (no gradient in the chunk) was fastest with ~4x larger chunks: Ablation-CAM,
# Score-CAM and occlusion on 256 digits ran 9.7 / 48.9 / 53.1 ms with a 32 MiB budget against
# 11.4 / 50.5 / 57.9 ms with 8 MiB and 11.6 / 64.3 / 66.2 ms with 128 MiB (best explicit sizes
# 9.1 / 47.9 / 52.1 ms).
CPU_FORWARD_CHUNK_BYTES = 32 * 2**20
ACCELERATOR_CHUNK_BYTES = 512 * 2**20
# Each unrolled chunk is one more copy of the program for XLA to compile (about 75 ms per chunk of
# a digits CNN's input gradients): auto keeps unrolled drivers to this many chunks, which bounds
# the first call's compile time (scan-driven forward-only work has no such cost). A scan over the
# chunks would compile once, but gradient work inside an XLA loop body runs 6-8x slower on
# XLA:CPU (IG chunks of 256: scan/fori_loop 1.9 s, unrolled 0.25 s), so that is not an option.
# IG, 64 steps x 256 digits: 8 chunks of 2,048 rows 316 ms (first call 1.07 s), 16 chunks of 1,024
# 268 ms (1.50 s), 64 chunks of 256 252 ms (4.3 s), one batch 585 ms (0.80 s).
AUTO_MAX_UNROLLED = 16
# Methods that drive ``"auto"`` from Python in example groups (:func:`auto_example_group`) budget a
# group by the bytes of its whole jitted program per example. IG, 64 steps x 256 digits (9.6 MB per
# example in that count), quiet 2-core CPU, groups of 2 / 4 / 8 examples: steady 355 / 327 / 322 ms,
# first call 0.61 / 0.32 / 0.58 s (one batch: 622 ms, first call 1.06 s).
CPU_GROUP_BYTES = 40 * 2**20
ACCELERATOR_GROUP_BYTES = 4 * ACCELERATOR_CHUNK_BYTES
# A Python loop over calls of one compiled program (noise_tunnel wraps any method) compiles once
# however many calls it makes, but each call costs a dispatch and the method's checks: auto makes
# at most this many calls. SmoothGrad, 64 samples x 256 digits: 16 calls of 1,024 rows 380 ms,
# 64 calls of 256 rows 267 ms.
AUTO_MAX_CALLS = 64


def tree_bytes_per_row(fn: Callable[..., Any], *xs: Any) -> int:
    """Bytes of every intermediate value ``fn`` creates per row of ``xs``, from its jaxpr.

    ``fn`` is traced (not run) on chunks of 1 and 2 rows; the difference of the total bytes of
    all equation outputs (nested jaxprs included) is the per-row cost, so parameter-sized values
    that do not grow with the chunk are not counted.
    """

    def total(rows):
        part = jax.tree.map(lambda a: jax.ShapeDtypeStruct((rows, *a.shape[1:]), a.dtype), xs)
        return _jaxpr_bytes(jax.make_jaxpr(fn)(*part).jaxpr)

    return max(total(2) - total(1), 1)


def _jaxpr_bytes(jaxpr: Any) -> int:
    size = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            aval = getattr(v, "aval", None)
            if hasattr(aval, "shape") and hasattr(aval, "dtype"):
                size += int(math.prod(aval.shape)) * aval.dtype.itemsize
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    size += _jaxpr_bytes(inner)
    return size


def auto_rows(
    n: int,
    row_bytes: int,
    *,
    max_chunks: int | None = None,
    backend: str | None = None,
    forward: bool = False,
) -> int | None:
    """The chunk size ``batch_size="auto"`` picks for ``n`` rows costing ``row_bytes`` each.

    Rows per chunk ``r = budget / row_bytes`` with ``budget`` 8 MiB of intermediates on CPU (the
    caches; 32 MiB for ``forward``-only work, which has no backward pass to keep) and 512 MiB on
    GPU/TPU (large chunks, bounded memory); at least 1 row. With
    ``max_chunks`` (unrolled drivers) the chunk grows to ``ceil(n / max_chunks)`` so the program
    holds at most that many copies. The chunks are then evened out (``ceil(n / ceil(n / r))``:
    no tiny remainder chunk). ``None`` (one batch) when one chunk holds every row.
    """
    rows = max(1, _budget(backend, forward) // max(int(row_bytes), 1))
    if max_chunks is not None:
        rows = max(rows, -(-n // max_chunks))
    if rows >= n:
        return None
    chunks = -(-n // rows)
    return -(-n // chunks)


def _budget(backend: str | None = None, forward: bool = False) -> int:
    """Bytes of intermediates per chunk (see :func:`auto_rows`)."""
    if (backend or jax.default_backend()) == "cpu":
        return CPU_FORWARD_CHUNK_BYTES if forward else CPU_CHUNK_BYTES
    return ACCELERATOR_CHUNK_BYTES


def resolve_batch_size(
    batch_size: int | str | None,
    fn: Callable[..., Any],
    *xs: Any,
    max_chunks: int | None = None,
    forward: bool = False,
) -> int | None:
    """``batch_size`` with ``"auto"`` replaced by :func:`auto_rows` for ``fn`` on ``xs`` rows
    (``fn`` is traced on 1 and 2 rows, never run)."""
    if batch_size != AUTO:
        return batch_size
    n = jax.tree.leaves(xs)[0].shape[0]
    if n <= 1:
        return None
    # Not cached: inside a trace this runs once per compile, and a cache keyed on the callable
    # would keep closures (and the arrays or tracers they hold) alive.
    return auto_rows(n, tree_bytes_per_row(fn, *xs), max_chunks=max_chunks, forward=forward)


def auto_example_group(n: int, example_bytes: int, *, backend: str | None = None) -> int | None:
    """Examples per call when ``batch_size="auto"`` drives work from Python in example groups.

    ``example_bytes`` is the cost of one example's whole work (all its steps or samples):
    :func:`tree_bytes_per_row` of the whole jitted method over examples, which counts every
    intermediate of the backward pass too (about 3x the per-row count of a chunk's forward
    gradient that :func:`auto_rows` budgets). A group holds ``CPU_GROUP_BYTES`` (accelerators:
    ``ACCELERATOR_GROUP_BYTES``) worth of examples, evened out over the groups. ``None`` when
    every example fits one call, or when one example alone is over the budget (then the method
    chunks its rows inside one program instead).

    Why: unrolled chunks inside one jit cost one more program copy to compile per chunk, so a
    first call grows with their number (IG, 64 steps x 256 digits: 16 unrolled chunks 1.8 s,
    one batch 0.86 s), while one compiled program of one group, called once per group from
    Python (asynchronous dispatch keeps the device busy), compiles once and runs as fast as the
    best unrolled chunking.
    """
    cpu = (backend or jax.default_backend()) == "cpu"
    budget = CPU_GROUP_BYTES if cpu else ACCELERATOR_GROUP_BYTES
    if example_bytes > budget:
        return None
    group = budget // max(int(example_bytes), 1)
    if group >= n:
        return None
    calls = -(-n // group)
    return -(-n // calls)


def over_example_groups(call: Callable[..., Any], group: int, *xs: Any) -> Any:
    """``call(*xs)`` evaluated ``group`` examples (leading rows of every array in ``xs``;
    ``None`` entries passed through) at a time and concatenated. The last group is padded with
    leading rows so every call has one shape (one compile); the padding is dropped."""
    arrays = [a for a in xs if a is not None]
    n = arrays[0].shape[0]
    pad = -n % group
    if pad:
        xs = tuple(None if a is None else jnp.concatenate([a, a[:pad]]) for a in xs)
    parts = [
        call(*(None if a is None else a[s : s + group] for a in xs))
        for s in range(0, n + pad, group)
    ]
    out = jax.tree.map(lambda *p: jnp.concatenate(p), *parts)
    return jax.tree.map(lambda a: a[:n], out) if pad else out


def _slices(n: int, batch_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def chunked_sum(
    fn: Callable[..., Any],
    *xs: Any,
    batch_size: int | str | None,
    max_unroll: int = MAX_UNROLL,
) -> Any:
    """``sum over chunks of fn(*chunk)``: rows of ``xs`` (leading axis) in chunks of ``batch_size``.

    ``fn`` maps a chunk (arrays with a leading axis of at most ``batch_size`` rows) to a pytree
    of partial sums of fixed shape. With ``batch_size=None`` everything is one chunk; with
    ``"auto"`` the chunk comes from :func:`auto_rows` (at most ``AUTO_MAX_UNROLLED`` unrolled
    chunks when ``max_unroll > 1``).
    """
    if batch_size == AUTO:
        scan = max_unroll <= 1  # the forward-only drivers (FORWARD_UNROLL)
        cap = None if scan else AUTO_MAX_UNROLLED
        batch_size = resolve_batch_size(batch_size, fn, *xs, max_chunks=cap, forward=scan)
    n = jax.tree.leaves(xs)[0].shape[0]
    size = n if batch_size is None else min(batch_size, n)
    bounds = _slices(n, size)
    if len(bounds) <= max_unroll:
        total = None
        for start, stop in bounds:
            part = fn(*jax.tree.map(lambda a, s=start, e=stop: a[s:e], xs))
            total = part if total is None else jax.tree.map(jnp.add, total, part)
        return total
    # Many chunks: a scan over groups of `max_unroll` full chunks (unrolled within a group) that
    # carries the running sum, so memory holds one group's work and one total, whatever n is.
    per_group = size * max_unroll
    n_groups = n // per_group
    head = jax.tree.map(lambda a: a[: n_groups * per_group], xs)
    grouped = jax.tree.map(lambda a: a.reshape(n_groups, per_group, *a.shape[1:]), head)

    def group_sum(g):
        return chunked_sum(fn, *g, batch_size=size, max_unroll=max_unroll)

    first = jax.tree.map(lambda a: a[0], grouped)
    init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(group_sum, first))
    total, _ = jax.lax.scan(
        lambda acc, g: (jax.tree.map(jnp.add, acc, group_sum(g)), None), init, grouped
    )
    if n_groups * per_group < n:
        rest = jax.tree.map(lambda a: a[n_groups * per_group :], xs)
        tail = chunked_sum(fn, *rest, batch_size=size, max_unroll=max_unroll)
        total = jax.tree.map(jnp.add, total, tail)
    return total
