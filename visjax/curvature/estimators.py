"""Hutchinson's estimators of the Hessian's trace and diagonal."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from visjax.curvature.hvp import LossFn
from visjax.curvature.spectrum import Matvec, check_problem


class Trace(NamedTuple):
    """Hutchinson's trace estimate, its standard error, and the per-probe values ``zᵀHz``."""

    estimate: float
    stderr: float
    samples: np.ndarray


def _probes(loss_fn, params, data, n_probes, key, batch_size, probe_batch):
    """Yield ``(z, Hz)`` blocks of Rademacher probes, ``probe_batch`` HVPs per call (vmapped)."""
    if not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"`n_probes` must be a positive int, got {n_probes!r}")
    if not isinstance(probe_batch, int) or probe_batch < 1:
        raise ValueError(f"`probe_batch` must be a positive int, got {probe_batch!r}")
    check_problem(loss_fn, params, data, batch_size)
    flat, _ = ravel_pytree(params)
    mv = Matvec(loss_fn, params, data, batch_size)
    for start in range(0, n_probes, probe_batch):
        m = min(probe_batch, n_probes - start)
        z = jax.random.rademacher(jax.random.fold_in(key, start), (m, flat.size), flat.dtype)
        yield z, mv(z)


def trace(
    loss_fn: LossFn,
    params: Any,
    *,
    data: Any,
    n_probes: int = 100,
    key: jax.Array,
    batch_size: int | None = None,
    probe_batch: int = 1,
) -> Trace:
    """Hutchinson's estimate of ``tr H``: the mean of ``zᵀ H z`` over Rademacher probes ``z``.

    Args:
      loss_fn: ``(params, batch) -> scalar`` (batch mean).
      params: the parameters.
      data: one batch, summed in chunks of ``batch_size``.
      n_probes: number of probes (PyHessian's default maximum: 100).
      key: PRNG key.
      batch_size: examples per data chunk.
      probe_batch: probes per (vmapped) HVP call.

    Returns:
      A :class:`Trace` with the standard error ``std(samples) / sqrt(n_probes)``.

    References:
      Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian
      smoothing splines", 1989; Avron and Toledo, JACM 2011.
    """
    samples = np.concatenate(
        [
            np.asarray((z * hz).sum(-1), np.float64)
            for z, hz in _probes(loss_fn, params, data, n_probes, key, batch_size, probe_batch)
        ]
    )
    stderr = samples.std(ddof=1) / np.sqrt(samples.size) if samples.size > 1 else float("nan")
    return Trace(float(samples.mean()), float(stderr), samples)


def hessian_diag(
    loss_fn: LossFn,
    params: Any,
    *,
    data: Any,
    n_probes: int = 100,
    key: jax.Array,
    batch_size: int | None = None,
    probe_batch: int = 1,
) -> Any:
    """Hutchinson's estimate of the Hessian's diagonal: the mean of ``z ⊙ H z`` (Bekas et al.).

    Args: as :func:`trace`.

    Returns:
      The diagonal estimate, shaped like ``params``.

    References:
      Bekas, Kokiopoulou, Saad, "An estimator for the diagonal of a matrix", 2007.
    """
    _, unravel = ravel_pytree(params)
    total = None
    for z, hz in _probes(loss_fn, params, data, n_probes, key, batch_size, probe_batch):
        part = (z * hz).sum(0)
        total = part if total is None else total + part
    return unravel(total / n_probes)
