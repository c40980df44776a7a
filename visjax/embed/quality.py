"""How well an embedding keeps neighbourhoods: trustworthiness and leave-one-out k-NN accuracy.

Both work on row chunks (``batch_size`` rows against all ``N``): memory grows with
``batch_size x N``, never ``N x N``. Distances are squared Euclidean in float32, from
``|a|^2 + |b|^2 - 2 a.b``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.batching import AUTO, auto_rows
from visjax.base.checks import check_batch_size, check_positive_int
from visjax.embed.pca import check_data


def _sq_dist(a: jax.Array, b: jax.Array) -> jax.Array:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return jnp.maximum(d, 0.0)


def _rows(n: int, batch_size: int | str | None, per_row: int) -> int:
    """Rows per chunk: ``batch_size``, or for ``"auto"`` :func:`auto_rows` with ``per_row`` bytes
    (forward-only work), or every row for ``None``."""
    if batch_size == AUTO:
        batch_size = auto_rows(n, per_row, forward=True)
    return n if batch_size is None else min(int(batch_size), n)


def _chunked(fn, n: int, size: int, *arrays):
    """Sum of ``fn(rows, valid, *arrays)`` over row chunks of ``size`` (a scan, padded tail)."""
    chunks = -(-n // size)
    idx = jnp.arange(chunks * size).reshape(chunks, size)

    def body(total, rows):
        valid = rows < n
        return total + fn(jnp.where(valid, rows, 0), valid, *arrays), None

    total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), idx)
    return total


def _self_masked(d: jax.Array, rows: jax.Array) -> jax.Array:
    return d.at[jnp.arange(rows.shape[0]), rows].set(jnp.inf)


@functools.partial(jax.jit, static_argnames=("k", "size"))
def _trust_penalty(x: jax.Array, y: jax.Array, k: int, size: int) -> jax.Array:
    def fn(rows, valid, x, y):
        dx = _self_masked(_sq_dist(x[rows], x), rows)
        dy = _self_masked(_sq_dist(y[rows], y), rows)
        _, near = jax.lax.top_k(-dy, k)  # the k nearest in the embedding
        dxj = jnp.take_along_axis(dx, near, axis=1)
        # rank of j among i's input-space neighbours, ties by index (a stable argsort):
        # 1 + #{l != i: d(i, l) < d(i, j)} + #{l != i: d(i, l) = d(i, j), l < j}
        d, dj = dx[:, None, :], dxj[:, :, None]
        before = jnp.arange(x.shape[0])[None, None, :] < near[:, :, None]
        rank = ((d < dj) | ((d == dj) & before)).sum(2) + 1
        penalty = jnp.maximum(rank - k, 0).sum(1).astype(jnp.float32)
        return jnp.where(valid, penalty, 0.0).sum()

    return _chunked(fn, x.shape[0], size, x, y)


def trustworthiness(
    x: Any, embedding: Any, k: int = 10, *, batch_size: int | str | None = AUTO
) -> float:
    """Trustworthiness of ``embedding`` for the data ``x`` (Venna & Kaski 2001).

    .. math::

        T(k) = 1 - \\frac{2}{N k (2N - 3k - 1)} \\sum_{i=1}^{N} \\sum_{j \\in U_i^{(k)}}
        \\max(0, r(i, j) - k)

    where ``U_i^(k)`` are the ``k`` nearest neighbours of point ``i`` in the embedding and
    ``r(i, j)`` is ``j``'s rank (1 = nearest) among ``i``'s neighbours in the input space: points
    that come close in the embedding but were far in the data are penalised by how far they were.
    ``T = 1`` when every embedding neighbourhood is an input neighbourhood. Equal to
    ``sklearn.manifold.trustworthiness`` (Euclidean) up to the order of exactly tied distances:
    here tied input distances are ranked by point index (a stable argsort), scikit-learn's
    ``argsort`` orders them arbitrarily; one rank moved changes ``T`` by
    ``2 / (N k (2N - 3k - 1))``, and on integer-valued data with many ties (the 8x8 digits) the two
    differ by about ``1e-4``.

    The input-space ranks are counted per row chunk: each embedding neighbour's distance is compared
    with the chunk's distances to all ``N`` points (``k N`` comparisons per point, no sort), so
    memory is ``batch_size x k x N`` bytes, never ``N x N``.

    Args:
      x: ``(N, D)`` data, finite, ``N >= 4``.
      embedding: ``(N, d)`` its embedding, finite.
      k: the neighbourhood size, ``1 <= k < N / 2`` (the normalisation needs it).
      batch_size: rows per chunk; ``"auto"`` sizes chunks to about 32 MiB on CPU (512 MiB on an
        accelerator), ``None`` one chunk.

    Returns:
      ``T(k)`` as a Python float in ``[0, 1]``.

    Raises:
      ValueError: ``x`` or ``embedding`` not 2-D, with NaN/Inf, fewer than 4 rows or different
        row counts; ``k`` out of range; a bad ``batch_size``.

    References: Venna, J. and Kaski, S. (2001), "Neighborhood preservation in nonlinear
    projection methods: an experimental study", ICANN.
    """
    x = check_data(x, "x")
    y = check_data(embedding, "embedding")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"`embedding` must have one row per row of `x` ({n}), got {y.shape[0]}")
    k = check_positive_int(k, "k")
    if k >= n / 2:
        raise ValueError(f"`k` must be below N / 2 = {n / 2} (N = {n} rows), got {k}")
    batch_size = check_batch_size(batch_size)
    size = _rows(n, batch_size, per_row=n * (4 * 8 + 4 * k))
    x, y = x.astype(jnp.float32), y.astype(jnp.float32)
    penalty = float(_trust_penalty(x, y, k, size))
    return 1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


@functools.partial(jax.jit, static_argnames=("k", "size", "classes"))
def _knn_correct(y: jax.Array, codes: jax.Array, k: int, size: int, classes: int) -> jax.Array:
    def fn(rows, valid, y, codes):
        dy = _self_masked(_sq_dist(y[rows], y), rows)
        _, near = jax.lax.top_k(-dy, k)
        counts = jax.nn.one_hot(codes[near], classes, dtype=jnp.int32).sum(1)
        vote = jnp.argmax(counts, axis=1)  # the first (smallest) class among the tied
        return jnp.where(valid & (vote == codes[rows]), 1.0, 0.0).sum()

    return _chunked(fn, y.shape[0], size, y, codes)


def knn_accuracy(
    embedding: Any, labels: Any, k: int = 10, *, batch_size: int | str | None = AUTO
) -> float:
    """Leave-one-out ``k``-nearest-neighbour accuracy of ``labels`` in ``embedding``.

    Each point's label is predicted by the majority vote of its ``k`` nearest other points
    (Euclidean, uniform weights):

    .. math:: \\mathrm{acc} = \\frac{1}{N} \\sum_i
        [\\arg\\max_c |\\{j \\in N_k(i): y_j = c\\}| = y_i]

    A tied vote goes to the smallest label among the tied classes (labels in sorted order), as
    ``sklearn.neighbors.KNeighborsClassifier`` (uniform weights) decides it; fitted on all other
    points, its accuracy over all points is this number (up to the order of exactly tied
    distances).

    Args:
      embedding: ``(N, d)`` points, finite, ``N >= 4``.
      labels: ``(N,)`` labels (any sortable values: ints, strings).
      k: the number of neighbours, ``1 <= k < N``.
      batch_size: rows per chunk (see :func:`trustworthiness`).

    Returns:
      the accuracy as a Python float in ``[0, 1]``.

    Raises:
      ValueError: ``embedding`` not 2-D, with NaN/Inf or fewer than 4 rows; ``labels`` not of
        shape ``(N,)``; ``k`` out of range; a bad ``batch_size``.
    """
    y = check_data(embedding, "embedding")
    n = y.shape[0]
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(
            f"`labels` must have shape ({n},), one per embedding row, got {labels.shape}"
        )
    k = check_positive_int(k, "k")
    if k >= n:
        raise ValueError(f"`k` must be below N = {n} (leave-one-out), got {k}")
    batch_size = check_batch_size(batch_size)
    classes, codes = np.unique(labels, return_inverse=True)
    size = _rows(n, batch_size, per_row=4 * n * 4)
    correct = _knn_correct(
        y.astype(jnp.float32), jnp.asarray(codes, jnp.int32), k, size, len(classes)
    )
    return float(correct) / n
