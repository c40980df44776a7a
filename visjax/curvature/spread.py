"""Batch-to-batch spread of a curvature estimate: the same estimate on disjoint mini-batches.

Mini-batch curvature is noisy (a frequent complaint about PyTorch Hessian tools); visjax's
estimators use the whole dataset by default, and :func:`batch_spread` reports how much the
estimate would move had it been computed on one mini-batch instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from visjax.base.checks import check_key
from visjax.base.data import check_data


class Spread(NamedTuple):
    """The estimate on all data, on each batch ``(n_batches, ...)``, and the batches' mean/std."""

    full: np.ndarray
    per_batch: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    batch_sizes: np.ndarray


def batch_spread(
    estimate: Callable[[Any], Any],
    *,
    data: Any,
    n_batches: int,
    key: jax.Array | None = None,
) -> Spread:
    """Evaluate ``estimate(batch)`` on the whole ``data`` and on ``n_batches`` disjoint batches.

    The examples are split into ``n_batches`` batches of sizes differing by at most one (after a
    random permutation when ``key`` is given, in order otherwise).

    Args:
      estimate: maps a data batch to a number or array, e.g.
        ``lambda d: top_eigenvalues(loss, params, data=d, key=k).eigenvalues``.
      data: one batch (a pytree with a leading example axis).
      n_batches: number of disjoint batches (2 to the number of examples).
      key: optional PRNG key to shuffle the examples before splitting.

    Returns:
      A :class:`Spread`; ``std`` is the standard deviation over batches (``ddof=1``).

    Example:
      >>> import jax.numpy as jnp
      >>> s = batch_spread(lambda d: d.mean(), data=jnp.arange(6.0), n_batches=3)
      >>> s.full.item(), s.per_batch.tolist(), s.std.item()
      (2.5, [0.5, 2.5, 4.5], 2.0)
    """
    n = check_data(data)
    if (
        isinstance(n_batches, bool)
        or not isinstance(n_batches, int | np.integer)
        or not 2 <= n_batches <= n
    ):
        raise ValueError(
            f"`n_batches` must be an int in [2, {n}] (the examples), got {n_batches!r}"
        )
    if key is not None:
        check_key(key)
    order = np.arange(n) if key is None else np.asarray(jax.random.permutation(key, n))
    parts = np.array_split(order, n_batches)
    full = np.asarray(estimate(data), np.float64)
    per = np.stack(
        [np.asarray(estimate(jax.tree.map(lambda a, i=i: a[i], data)), np.float64) for i in parts]
    )
    if not np.all(np.isfinite(per)) or not np.all(np.isfinite(full)):
        raise ValueError("`estimate` returned a non-finite value on the data or on a batch")
    return Spread(full, per, per.mean(0), per.std(0, ddof=1), np.array([p.size for p in parts]))
