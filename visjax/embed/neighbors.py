"""k-nearest neighbours for t-SNE: exact distances in row chunks, or a random-projection forest.

:func:`knn` returns, for every row of ``x``, the ``k`` nearest other rows (the point itself
excluded) and their squared Euclidean distances, sorted ascending.

- ``"exact"``: squared distances ``||a||^2 + ||b||^2 - 2 a.b`` (clamped at 0) of a chunk of rows
  against all rows, one dense matmul per chunk, reduced with ``lax.top_k``; a jitted ``lax.scan``
  over the chunks (chunk size from :mod:`visjax.base.batching`, forward-only budget), so memory is
  ``O(chunk * N)``, never ``N x N``. Time is ``O(N^2 D)``.
- ``"approx"``: a random-projection forest. Each tree splits every node at the median of the
  projections of its points on a random Gaussian direction (balanced splits, so the leaves are
  contiguous blocks of ``leaf_size``..``2 * leaf_size`` points); the exact distances within each
  leaf give every point ``k`` candidates per tree, merged over the trees; then rounds of
  NN-descent-style refinement (the neighbours of a point's nearest neighbours are candidates,
  distances exact) repair points that fell near a split. Time is ``O(N (T S + R a b) D)`` for
  ``T`` trees of leaves of ``S`` points and ``R`` refinement rounds over ``a x b`` neighbours of
  neighbours. Deterministic for a key (``key=None`` uses ``jax.random.key(0)``).
- ``"auto"``: exact up to :data:`AUTO_EXACT_MAX_N` points, approx above (on a 2-core XLA:CPU the
  two broke even near 70,000 points, D=50, k=90: see the constant).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base import batching, checks

# "auto" uses the exact search up to this many points. Measured on XLA:CPU with 2 cores (shared,
# loaded: +-30 %), D=50, k=90, clustered data, times with compilation: 10,000 points exact 3.7 s vs
# approx 14.9 s (recall 0.999); 20,000: 6.1 vs 15.1 s (0.996); 70,000: 62 vs 61 s (0.970). The
# exact search is dense matmuls while the forest is bound by per-row sorts (candidate merging) and
# its compilation (~5 s), so on CPU they break even near 70,000 points; above, the forest's
# N log N beats the exact N^2 (accelerators: untested).
AUTO_EXACT_MAX_N = 70_000

_METHODS = ("auto", "exact", "approx")


def knn(
    x: Any,
    k: int,
    *,
    method: str = "auto",
    key: Any = None,
    batch_size: int | str | None = "auto",
    n_trees: int | None = None,
    leaf_size: int | None = None,
    n_refine: int = 2,
) -> tuple[jax.Array, jax.Array]:
    """The ``k`` nearest neighbours of every row of ``x`` (itself excluded), nearest first.

    Args:
      x: ``(N, D)`` points (cast to float32); must be finite.
      k: neighbours per point, ``1 <= k < N``.
      method: ``"exact"``, ``"approx"`` (random-projection forest plus refinement) or ``"auto"``
        (exact up to :data:`AUTO_EXACT_MAX_N` points).
      key: PRNG key of the forest (``None``: ``jax.random.key(0)``); unused by the exact search.
      batch_size: rows per chunk of the distance computations (``"auto"``: from
        :mod:`visjax.base.batching`; ``None``: one chunk).
      n_trees: trees of the forest (default: 8 when ``N <= 50,000``, else 6).
      leaf_size: minimum points per leaf (default ``max(k + 1, 2 k)``); leaves hold at most twice
        as many.
      n_refine: refinement rounds after the forest (neighbours of neighbours).

    Returns:
      ``(indices, sq_distances)``: ``(N, k)`` int32 and ``(N, k)`` float32, each row ascending.
    """
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}")
    x = jnp.asarray(x, dtype=jnp.float32) if checks.is_concrete(x) else x.astype(jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"`x` must be 2-D (points, features), got shape {x.shape}")
    n = x.shape[0]
    if checks.is_concrete(x):
        bad = ~np.isfinite(np.asarray(x)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"`x` has NaN or Inf in {rows.size} row(s), first rows {rows[:10].tolist()}"
            )
    k = checks.check_positive_int(k, "k")
    if k >= n:
        raise ValueError(f"`k` must be < the number of points {n}, got {k}")
    batch_size = checks.check_batch_size(batch_size)
    n_refine = checks.check_positive_int(n_refine, "n_refine", minimum=0)
    if method == "auto":
        method = "exact" if n <= AUTO_EXACT_MAX_N else "approx"
    if method == "exact":
        return _exact(x, k, _rows(n, batch_size, n * 16))
    if key is None:
        key = jax.random.key(0)
    checks.check_key(key)
    n_trees = checks.check_positive_int(
        n_trees if n_trees is not None else (8 if n <= 50_000 else 6), "n_trees"
    )
    leaf_size = checks.check_positive_int(
        leaf_size if leaf_size is not None else max(k + 1, 2 * k), "leaf_size", minimum=k + 1
    )
    if leaf_size >= n:  # one leaf holds everything: the forest is the exact search
        return _exact(x, k, _rows(n, batch_size, n * 16))
    depth = math.floor(math.log2(n / leaf_size))
    a, b = _refine_fanout(k)
    chunk = _rows(n, batch_size, a * b * (x.shape[1] + 4) * 4)
    # Every node's split direction (tree t, level l: rows 2^l - 1 ..), drawn outside the jit: a
    # random draw inside it compiles to a threefry program that took seconds on XLA:CPU.
    dirs = jax.random.normal(key, (n_trees, max(2**depth - 1, 1), x.shape[1]), jnp.float32)
    return _approx(x, dirs, k, depth, n_refine, a, b, chunk)


def _rows(n: int, batch_size: int | str | None, row_bytes: int) -> int:
    if batch_size == batching.AUTO:
        batch_size = batching.auto_rows(n, row_bytes, forward=True)
    return n if batch_size is None else min(int(batch_size), n)


def _refine_fanout(k: int) -> tuple[int, int]:
    """Neighbours (a) whose neighbours (b) are refinement candidates: about 4k candidates."""
    a = min(k, max(4, math.ceil(math.sqrt(4 * k))))
    return a, min(k, max(a, 2 * k // a + 1))


def _pad_rows(a: jax.Array, rows: int, fill: Any = 0) -> jax.Array:
    pad = rows - a.shape[0]
    return a if pad == 0 else jnp.concatenate([a, jnp.full((pad, *a.shape[1:]), fill, a.dtype)])


@functools.partial(jax.jit, static_argnames=("k", "chunk"))
def _exact(x: jax.Array, k: int, chunk: int) -> tuple[jax.Array, jax.Array]:
    n = x.shape[0]
    n_chunks = -(-n // chunk)
    sq = jnp.sum(x * x, axis=1)
    xs = _pad_rows(x, n_chunks * chunk).reshape(n_chunks, chunk, -1)
    starts = jnp.arange(n_chunks) * chunk
    cols = jnp.arange(n)

    def body(_, inp):
        rows, start = inp
        d = jnp.sum(rows * rows, axis=1)[:, None] + sq[None, :] - 2.0 * (rows @ x.T)
        d = jnp.maximum(d, 0.0)
        own = (start + jnp.arange(chunk))[:, None] == cols[None, :]
        neg, idx = jax.lax.top_k(jnp.where(own, -jnp.inf, -d), k)
        return None, (idx.astype(jnp.int32), -neg)

    _, (idx, dist) = jax.lax.scan(body, None, (xs, starts))
    return idx.reshape(-1, k)[:n], dist.reshape(-1, k)[:n]


def _merge(idx: jax.Array, dist: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` nearest of each row's candidates, duplicates (same index) counted once."""
    idx, dist = jax.lax.sort((idx, dist), dimension=1, num_keys=1)
    dup = jnp.concatenate([jnp.zeros((idx.shape[0], 1), bool), idx[:, 1:] == idx[:, :-1]], axis=1)
    neg, pos = jax.lax.top_k(jnp.where(dup, -jnp.inf, -dist), k)
    return jnp.take_along_axis(idx, pos, axis=1), -neg


def _tree(x: jax.Array, dirs: jax.Array, k: int, depth: int) -> tuple[jax.Array, jax.Array]:
    """``k`` candidates per point (nearest within its leaf) from one balanced RP tree."""
    n = x.shape[0]
    pos = jnp.arange(n)
    order = jnp.arange(n)
    for level in range(depth):
        node = (pos * (2**level)) // n  # nodes are contiguous blocks of ``order``
        proj = jnp.sum(x[order] * dirs[2**level - 1 + node], axis=1)
        order = order[jnp.lexsort((proj, node))]
    n_leaves = 2**depth
    starts = -(-jnp.arange(n_leaves + 1) * n // n_leaves)  # ceil(l n / L): the block bounds
    size = -(-n // n_leaves)
    slot = starts[:-1, None] + jnp.arange(size)[None, :]
    valid = slot < starts[1:, None]
    members = jnp.where(valid, order[jnp.minimum(slot, n - 1)], n)  # n = padding
    pts = x[jnp.minimum(members, n - 1)]  # (leaves, size, dim)
    sq = jnp.sum(pts * pts, axis=2)
    d = sq[:, :, None] + sq[:, None, :] - 2.0 * jnp.einsum("lsd,ltd->lst", pts, pts)
    d = jnp.maximum(d, 0.0)
    bad = ~valid[:, None, :] | jnp.eye(size, dtype=bool)[None]
    neg, pos_in_leaf = jax.lax.top_k(jnp.where(bad, -jnp.inf, -d), k)
    cand = jnp.take_along_axis(members[:, None, :].repeat(size, 1), pos_in_leaf, axis=2)
    idx = (
        jnp.zeros((n, k), jnp.int32)
        .at[members.reshape(-1)]
        .set(cand.reshape(-1, k).astype(jnp.int32), mode="drop")
    )
    dist = jnp.zeros((n, k), x.dtype).at[members.reshape(-1)].set(-neg.reshape(-1, k), mode="drop")
    return idx, dist


@functools.partial(jax.jit, static_argnames=("k", "depth", "n_refine", "a", "b", "chunk"))
def _approx(
    x: jax.Array,
    dirs: jax.Array,
    k: int,
    depth: int,
    n_refine: int,
    a: int,
    b: int,
    chunk: int,
) -> tuple[jax.Array, jax.Array]:
    n = x.shape[0]

    # All trees' candidates, then one merge (one sort of T*k per row beats T-1 sorts of 2k). The
    # trees are vmapped: lax.map over them compiled 3-4x slower; memory T * N * leaf size floats.
    idx, dist = jax.vmap(lambda d: _tree(x, d, k, depth))(dirs)
    best = _merge(
        jnp.moveaxis(idx, 0, 1).reshape(n, -1), jnp.moveaxis(dist, 0, 1).reshape(n, -1), k
    )

    n_chunks = -(-n // chunk)
    sq = jnp.sum(x * x, axis=1)
    rows_all = jnp.arange(n_chunks * chunk)
    for _ in range(n_refine):
        idx, dist = best
        cand = idx[idx[:, :a], :b].reshape(n, a * b)
        cand_c = _pad_rows(cand, n_chunks * chunk).reshape(n_chunks, chunk, a * b)

        def body(_, inp):
            c, rows = inp
            r = jnp.minimum(rows, n - 1)
            xc = x[c]  # (chunk, a*b, dim)
            d = sq[r][:, None] + sq[c] - 2.0 * jnp.einsum("cd,cjd->cj", x[r], xc)
            return None, jnp.where(c == r[:, None], jnp.inf, jnp.maximum(d, 0.0))

        _, cd = jax.lax.scan(body, None, (cand_c, rows_all.reshape(n_chunks, chunk)))
        cd = cd.reshape(-1, a * b)[:n]
        best = _merge(jnp.concatenate([idx, cand], 1), jnp.concatenate([dist, cd], 1), k)
    return best
