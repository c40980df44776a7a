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


def _slices(n: int, batch_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def chunked_sum(
    fn: Callable[..., Any], *xs: Any, batch_size: int | None, max_unroll: int = MAX_UNROLL
) -> Any:
    """``sum over chunks of fn(*chunk)``: rows of ``xs`` (leading axis) in chunks of ``batch_size``.

    ``fn`` maps a chunk (arrays with a leading axis of at most ``batch_size`` rows) to a pytree
    of partial sums of fixed shape. With ``batch_size=None`` everything is one chunk.
    """
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
