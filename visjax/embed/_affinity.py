"""t-SNE's input affinities: a k-nearest-neighbour graph, per-point bandwidths, symmetrised P.

For each point ``i`` with neighbours ``j`` (the ``k`` nearest, itself excluded) at squared
distances ``d_ij``, the conditional probabilities are
``p_{j|i} = exp(-beta_i d_ij) / sum_l exp(-beta_i d_il)`` with ``beta_i`` found by bisection
so that the entropy ``H_i = -sum_j p_{j|i} log p_{j|i}`` (nats) equals ``log(perplexity)``. The
joint affinities are ``P = (P_cond + P_cond^T) / (2 N)`` (they sum to 1), kept sparse as
``(rows, cols, vals)`` sorted by row (openTSNE's ``joint_probabilities_nn``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.embed.neighbors import knn

# Bisection steps on log(beta): the bracket below spans exp(+-40) of the row's mean distance, and
# 64 halvings leave an interval far below float32 resolution (the entropy then sits within 1e-6).
_BISECTION_STEPS = 64
_LOG_BRACKET = 40.0


class Affinities(NamedTuple):
    """The symmetrised affinities ``P`` as a sparse matrix (entries sorted by row, then column).

    Attributes:
      rows: ``(M,)`` int32 row indices ``i``.
      cols: ``(M,)`` int32 column indices ``j``.
      vals: ``(M,)`` float32 ``p_ij`` (they sum to 1; ``p_ij = p_ji``).
    """

    rows: jax.Array
    cols: jax.Array
    vals: jax.Array


@jax.jit
def calibrate(sq_distances: jax.Array, perplexity: float) -> tuple[jax.Array, jax.Array]:
    """Row-normalised ``p_{j|i}`` (``N x k``) with entropy ``log(perplexity)`` per row, and the
    entropies reached.

    Distances are shifted by each row's minimum (the softmax is unchanged) and ``beta_i`` is
    bisected in log space between ``exp(-40)`` and ``exp(40)`` times ``1 / mean_j(d_ij - d_min)``.
    """
    d = sq_distances - jnp.min(sq_distances, axis=1, keepdims=True)
    scale = jnp.maximum(jnp.mean(d, axis=1, keepdims=True), jnp.finfo(d.dtype).tiny)
    target = jnp.log(perplexity)

    def probs(log_t):
        logits = -jnp.exp(log_t) / scale * d
        logp = jax.nn.log_softmax(logits, axis=1)
        p = jnp.exp(logp)
        return p, -jnp.sum(p * logp, axis=1, keepdims=True)

    def step(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        _, h = probs(mid)
        # Entropy falls as beta grows: too high an entropy means beta must grow.
        return jnp.where(h > target, mid, lo), jnp.where(h > target, hi, mid)

    lo = jnp.full((d.shape[0], 1), -_LOG_BRACKET, d.dtype)
    lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, step, (lo, lo + 2 * _LOG_BRACKET))
    p, h = probs(0.5 * (lo + hi))
    return p, h[:, 0]


def symmetrize(indices: np.ndarray, p_cond: np.ndarray) -> Affinities:
    """``P = (P_cond + P_cond^T) / (2 N)`` from the ``N x k`` neighbour lists, duplicates summed."""
    n, k = indices.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = np.asarray(indices, np.int64).ravel()
    vals = np.asarray(p_cond, np.float64).ravel()
    keys = np.concatenate([rows * n + cols, cols * n + rows])
    both = np.concatenate([vals, vals])
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=both, minlength=unique.size) / (2.0 * n)
    return Affinities(
        rows=jnp.asarray((unique // n).astype(np.int32)),
        cols=jnp.asarray((unique % n).astype(np.int32)),
        vals=jnp.asarray(summed.astype(np.float32)),
    )


def affinities(
    x: jax.Array,
    perplexity: float,
    *,
    neighbors: str = "auto",
    key: jax.Array | None = None,
    batch_size: int | str | None = "auto",
) -> Affinities:
    """The joint affinities of ``x`` for ``perplexity`` from its ``min(N - 1, 3 perplexity)``
    nearest neighbours (openTSNE's ``PerplexityBasedNN``)."""
    n = x.shape[0]
    k = min(n - 1, int(3 * perplexity))
    indices, sq_distances = knn(x, k, method=neighbors, key=key, batch_size=batch_size)
    p_cond, _ = calibrate(jnp.asarray(sq_distances, jnp.float32), perplexity)
    return symmetrize(np.asarray(indices), np.asarray(p_cond))
