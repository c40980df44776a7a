"""Curvature per parameter group: the trace and top eigenvalue of each diagonal Hessian block.

A group ``g`` (a set of parameter leaves) has the diagonal block ``H_gg`` of the Hessian, applied
in the flattened parameter space as ``v ↦ m_g ⊙ H (m_g ⊙ v)`` with ``m_g`` the 0/1 mask of the
group's entries: one full Hessian-vector product per application, as PyHessian's layer-wise
analysis does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from visjax.base.checks import check_key, check_positive_int
from visjax.base.data import LossFn
from visjax.base.progress import progress_bar, resolve_progress
from visjax.base.trees import layer_groups, param_paths, select
from visjax.curvature.spectrum import (
    Matvec,
    check_inputs,
    check_loss_finite,
    check_tol,
    lanczos,
    tridiagonal_eigh,
)

_PROBE_BATCH = 10  # Hutchinson probes per vmapped HVP call: bounds memory on large models


class BlockCurvature(NamedTuple):
    """One group's Hessian block: Hutchinson trace and its standard error, top eigenvalue, size."""

    trace: float
    trace_stderr: float
    top_eigenvalue: float
    n_params: int


def _masks(params: Any, groups: Any) -> dict[str, jax.Array]:
    """Group name to its flat 0/1 mask; raises for a group that selects no parameter."""
    if isinstance(groups, str):
        if groups != "layers":
            raise ValueError(
                f"`groups` must be 'layers' or a mapping name -> patterns, got {groups!r}"
            )
        paths = param_paths(params)
        chosen = {
            name: jax.tree.unflatten(jax.tree.structure(params), [p in set(ps) for p in paths])
            for name, ps in layer_groups(params).items()
        }
    elif isinstance(groups, Mapping) and groups:
        chosen = {}
        for name, patterns in groups.items():
            if not isinstance(patterns, str) and not isinstance(patterns, Sequence):
                raise TypeError(f"group {name!r}: patterns must be a string or a sequence of them")
            chosen[str(name)] = select(params, patterns)
    else:
        raise ValueError(f"`groups` must be 'layers' or a non-empty mapping, got {groups!r}")
    masks = {}
    for name, sel in chosen.items():
        mask = ravel_pytree(
            jax.tree.map(
                lambda s, a: jnp.full(jnp.shape(a), float(s), jnp.result_type(a)), sel, params
            )
        )[0]
        if not bool(mask.any()):
            raise ValueError(f"group {name!r} matches no parameter (paths: {param_paths(params)})")
        masks[name] = mask
    return masks


def block_curvature(
    loss_fn: LossFn,
    params: Any,
    *,
    data: Any,
    groups: str | Mapping[str, str | Sequence[str]],
    key: jax.Array,
    n_probes: int = 50,
    n_iter: int = 50,
    tol: float = 1e-4,
    batch_size: int | str | None = "auto",
    devices: Any = None,
    progress: bool | str = "auto",
) -> dict[str, BlockCurvature]:
    """Trace and top eigenvalue of each diagonal block ``H_gg`` of the dataset-mean loss's Hessian.

    For a group with mask ``m`` (1 on its entries), ``H_gg v = m ⊙ H (m ⊙ v)``. The trace is
    Hutchinson's mean of ``zᵀ H_gg z`` over Rademacher probes ``z`` that are zero outside the
    group; the top (algebraically largest) eigenvalue is Lanczos with full reorthogonalisation
    from a random start inside the group, stopped when its error bound falls below ``tol``
    (relative) or after ``n_iter`` steps (at most the group's size). The blocks' traces sum to
    ``tr H`` when the groups partition the parameters.

    Args:
      loss_fn: ``(params, batch) -> scalar`` (batch mean; static).
      params: the parameters.
      data: one batch, summed in chunks of ``batch_size``.
      groups: group name to a glob pattern or patterns over the dotted parameter paths
        (:func:`visjax.landscape.directions.select`; ``*`` crosses dots), e.g.
        ``{"convs": "conv*", "head": "fc.*"}``; or ``"layers"``: one group per module, the
        parent path of each leaf (:func:`layer_groups`), e.g. ``conv1``, ``conv2``, ``fc``.
        Groups may overlap.
      key: PRNG key for the probes and Lanczos starts.
      n_probes: Hutchinson probes per group.
      n_iter: Lanczos steps per group.
      tol: relative tolerance of the Lanczos top eigenvalue.
      batch_size: examples per data chunk (static); ``"auto"`` (default) picks it from the
        per-example cost, ``None``: all at once (as :func:`visjax.curvature.hvp`).
      devices: the data axis is sharded over these (as :func:`visjax.curvature.hvp`).
      progress: a bar over the groups: ``"auto"`` (default) when standard error is a terminal,
        ``True``/``False`` force it.

    Returns:
      Group name (in the order given) to :class:`BlockCurvature`; ``trace_stderr`` is
      ``std / √n_probes`` (NaN for one probe).

    Raises:
      ValueError: a group matching no parameter (named), or bad ``groups``/``n_probes``/``n_iter``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda p, x: (p["a"] ** 2).sum() + 3 * (p["b"] ** 2).sum() + 0 * x.sum()
      >>> p = {"a": jnp.ones(2), "b": jnp.ones(3)}
      >>> out = block_curvature(loss, p, data=jnp.zeros((1, 1)), groups="layers",
      ...                       key=jax.random.key(0), n_probes=4)
      >>> {g: (round(c.trace, 4), round(c.top_eigenvalue, 4)) for g, c in out.items()}
      {'a': (4.0, 2.0), 'b': (18.0, 6.0)}

    References:
      Yao, Gholami, Keutzer, Mahoney, "PyHessian: Neural Networks Through the Lens of the
      Hessian", 2020 (layer-wise trace and eigenvalues); Hutchinson 1989; Lanczos 1950.
    """
    n_probes = check_positive_int(n_probes, "n_probes")
    n_iter = check_positive_int(n_iter, "n_iter")
    tol = check_tol(tol)
    check_key(key)
    check_inputs(params, data, batch_size, devices)
    masks = _masks(params, groups)  # before the loss compiles
    check_loss_finite(loss_fn, params, data, batch_size)
    show = resolve_progress(progress)
    mv = Matvec(loss_fn, params, data, batch_size, devices)
    out = {}
    with progress_bar(len(masks), desc="block curvature", unit="group", enabled=show) as bar:
        for i, (name, mask) in enumerate(masks.items()):
            out[name] = _block(mv, mask, jax.random.fold_in(key, i), n_probes, n_iter, tol)
            bar.update(1)
    return out


def _block(mv, mask, key, n_probes, n_iter, tol):
    """Trace (Hutchinson) and top eigenvalue (Lanczos) of the block of ``mask``."""
    k_trace, k_lanczos = jax.random.split(key)
    size = int(mask.sum())

    def block(xs, mask=mask):
        return mask * mv(mask * xs)

    samples = []
    for start in range(0, n_probes, _PROBE_BATCH):
        m = min(_PROBE_BATCH, n_probes - start)
        z = mask * jax.random.rademacher(
            jax.random.fold_in(k_trace, start), (m, mask.size), mask.dtype
        )
        samples.append(np.asarray((z * block(z)).sum(-1), np.float64))
    s = np.concatenate(samples)
    stderr = s.std(ddof=1) / np.sqrt(s.size) if s.size > 1 else float("nan")
    v0 = mask * jax.random.normal(k_lanczos, mask.shape, mask.dtype)
    res = lanczos(block, v0, min(n_iter, size), tol=tol, k=1, progress=False)
    top = float(np.max(tridiagonal_eigh(res.alpha, res.beta)[0]))
    return BlockCurvature(float(s.mean()), float(stderr), top, size)
