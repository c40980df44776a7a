"""The sweep engine: loss values at many points ``origin + Σ_k c_k d_k`` of parameter space.

Points are evaluated inside jit, in blocks of a fixed number of points driven from Python (one
compile for the whole sweep, a progress bar, and the unit that the next layer, sharding and
resume, builds on). Inside a block the points run one of three ways (``strategy``):

* ``"map"``: ``lax.map`` over the points (forward-only loops are fast on XLA:CPU);
* ``"vmap"``: the points vmapped in chunks of ``point_chunk`` (fast on GPUs; on CPU vmapping over
  parameter offsets turns convolutions into batched-weight convolutions, measured 2x slower);
* ``"loop"``: one jitted point at a time from Python (the original code's method, for reference).

``"auto"`` picks ``"map"`` on CPU and ``"vmap"`` elsewhere. At each point the data (one batch, a
pytree with a leading example axis) is summed in chunks of ``batch_size`` examples, each chunk's
batch-mean loss weighted by its size, in float32; chunking the data measured 3x faster per
forward pass on CPU (23 ms to 7.6 ms for 1,347 digits). The default ``batch_size="auto"`` is
resolved once, before the sweep, by :func:`visjax.base.data.data_batch_size` (the loss at the
origin on the data: about 8 MiB of intermediates per chunk on CPU, 512 MiB on accelerators, at
most 16 chunks); with ``"vmap"`` the budget is shared by the ``point_chunk`` points a chunk runs
with. That one int is what the probe, the error messages, the run folder and the compiled blocks
use. A non-finite value at a point is recorded as NaN and counted in one warning after the sweep.

Sharding (``devices=``): the points of a block are split evenly over the devices with
``jax.shard_map`` (parameters, directions and data replicated), each device runs its share with
the strategy above, and the values are gathered (``all_gather``) so every device, and every
process, holds the whole block. The block is rounded up to a multiple of the device count (times
``point_chunk`` for ``"vmap"``); the padding points repeat the last point and are dropped.

Several processes (``jax.distributed``): start the same script once per process, each calling
``jax.distributed.initialize(coordinator_address="host:port", num_processes=n, process_id=i)``
before any other JAX call, then ``evaluate``/``plane`` with the default ``devices=None`` (all
devices of all processes). Every process passes the same arguments, evaluates its devices' share
of each block, and receives the whole surface. On CPU set
``jax.config.update("jax_cpu_collectives_implementation", "gloo")`` before initialising. With a
``run_dir`` only process 0 writes (the folder should be shared, or resume on process 0's host).

Resume (``run_dir=``): see :mod:`visjax.landscape.resume`.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from visjax.base.batching import AUTO, AUTO_MAX_UNROLLED, auto_rows, tree_bytes_per_row
from visjax.base.checks import (
    check_batch_size,
    check_finite_tree,
    check_positive_int,
    check_tree_like,
)
from visjax.base.data import (
    check_data,
    data_batch_size,
    data_mesh,
    data_sum,
    first_nonfinite_chunk,
)
from visjax.base.precision import cast_floating, check_dtype
from visjax.base.progress import progress_bar, resolve_progress
from visjax.landscape.losses import LOSSES_BY_NAME, NamedLoss, as_loss_table
from visjax.landscape.resume import RunDir, loss_fingerprint, stored_batch_size, sweep_config

Strategy = Literal["auto", "map", "vmap", "loop"]
STRATEGIES = ("auto", "map", "vmap", "loop")


def dataset_mean(
    fns: tuple, params: Any, *, data: Any, batch_size: int | str | None = AUTO
) -> jax.Array:
    """``(M,)`` batch means of ``fns`` over ``data``, summed in chunks weighted by chunk size
    (``batch_size``: examples per chunk, ``"auto"`` (default) or ``None``: one chunk)."""
    check_data(data)  # eager NaN/shape check (values skipped for tracers)
    return data_sum(_stacked(fns, params), data, check_batch_size(batch_size))


def _stacked(fns, params):
    return lambda batch: jnp.stack([jnp.asarray(f(params, batch), jnp.float32) for f in fns])


def _resolve_batch_size(batch_size, fns, origin, data, strategy, point_chunk) -> int | None:
    """``batch_size`` with ``"auto"`` resolved for the losses at ``origin`` on ``data`` (traced,
    not run). With ``"vmap"`` each data chunk runs for ``point_chunk`` points at once, so the
    per-example cost is counted that many times."""
    if batch_size != AUTO:
        return batch_size
    fn = _stacked(fns, origin)
    if strategy != "vmap":
        return data_batch_size(AUTO, fn, data)
    n = jax.tree.leaves(data)[0].shape[0]
    if n <= 1:
        return None
    row_bytes = tree_bytes_per_row(fn, data) * point_chunk
    return auto_rows(n, row_bytes, max_chunks=AUTO_MAX_UNROLLED)


class _InDtype:
    """``loss_fn(params, batch)`` with the forward in ``dtype`` (parameters and floating data
    cast) and its value in float32; a model's named loss gets the float32 output of the forward
    (the softmax and the mean in float32). Equal for equal ``(fn, dtype)``: no recompiling."""

    def __init__(self, fn: Any, dtype: Any):
        self.fn, self.dtype = fn, dtype

    def __call__(self, params, batch):
        params = cast_floating(params, self.dtype)
        if isinstance(self.fn, NamedLoss):
            x, y = batch
            out = self.fn.forward(params, cast_floating(x, self.dtype))
            return LOSSES_BY_NAME[self.fn.name](jax.tree.map(_f32, out), y)
        return _f32(self.fn(params, cast_floating(batch, self.dtype)))

    def __eq__(self, other):
        return isinstance(other, _InDtype) and (self.fn, self.dtype) == (other.fn, other.dtype)

    def __hash__(self):
        return hash((_InDtype, self.fn, self.dtype))

    def __repr__(self):
        return f"{self.fn!r} in {self.dtype}"


def _f32(a):
    return jnp.asarray(a, jnp.float32)


def _shift(origin, directions, c):
    return jax.tree.map(
        lambda o, *ds: o + sum(c[k].astype(o.dtype) * d for k, d in enumerate(ds)),
        origin,
        *directions,
    )


def _points(fns, origin, directions, coords, data, batch_size, strategy, point_chunk):
    def one(c):
        return dataset_mean(fns, _shift(origin, directions, c), data=data, batch_size=batch_size)

    if strategy == "map":
        return jax.lax.map(one, coords)
    chunks = coords.reshape(-1, point_chunk, coords.shape[-1])
    return jax.lax.map(jax.vmap(one), chunks).reshape(coords.shape[0], len(fns))


@functools.partial(
    jax.jit, static_argnames=("fns", "batch_size", "strategy", "point_chunk", "mesh")
)
def _block(fns, origin, directions, coords, data, batch_size, strategy, point_chunk, mesh=None):
    run = functools.partial(
        _points, fns, batch_size=batch_size, strategy=strategy, point_chunk=point_chunk
    )
    if mesh is None:
        return run(origin, directions, coords, data)
    axes = tuple(mesh.axis_names)

    def local(origin, directions, coords, data):
        return jax.lax.all_gather(run(origin, directions, coords, data), axes, tiled=True)

    # check_vma=False: the replicated inputs need no variance tracking; the all_gather makes the
    # output replicated, so every device (and process) holds the whole block.
    return jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P(), P(axes), P()), out_specs=P(), check_vma=False
    )(origin, directions, coords, data)


def _replicated(tree, mesh):
    if mesh is None:
        return jax.tree.map(jnp.asarray, tree)
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda a: jax.device_put(_host(a), sharding), tree)


def _host(a):
    if isinstance(a, jax.Array) and (jax.process_count() == 1 or not a.is_fully_addressable):
        return a  # device_put reshards it on the devices
    return np.asarray(a)  # several processes: from the host, the same on every process


def _local_values(values) -> np.ndarray:
    if values.is_fully_addressable:
        return np.asarray(jax.device_get(values))
    return np.asarray(values.addressable_shards[0].data)  # replicated: one copy is the block


def _auto_strategy() -> str:
    return "map" if jax.default_backend() == "cpu" else "vmap"


class SweepConfig(NamedTuple):
    """How a sweep runs: data chunking, point strategy, block size."""

    batch_size: int | None
    strategy: str
    block_size: int
    point_chunk: int


def evaluate(
    loss_fn: Any,
    origin: Any,
    directions: Sequence[Any],
    coords: Any,
    *,
    data: Any,
    batch_size: int | str | None = AUTO,
    strategy: Strategy = "auto",
    block_size: int | None = None,
    point_chunk: int = 64,
    progress: bool | Callable[[int, int], None] = "auto",
    devices: Any = None,
    run_dir: str | os.PathLike | None = None,
    dtype: Any = None,
) -> dict[str, np.ndarray]:
    """Loss values at ``origin + Σ_k coords[p, k] * directions[k]`` for every point ``p``.

    The engine under :func:`interpolate`, :func:`plane` and :func:`plane_through`.

    Args:
      loss_fn: ``(params, batch) -> scalar`` (batch mean), a mapping name -> such functions
        (several metrics from one sweep), or ``(model, "cross_entropy", ...)``. Functions are
        static: pass the same objects to avoid recompiling. Before the sweep each loss is traced
        and evaluated once (eagerly) at the origin on the first data chunk: a non-scalar loss,
        data it cannot take or a non-finite value there raise a ``ValueError`` naming it.
      origin: parameters (a pytree).
      directions: ``k`` pytrees shaped like ``origin``; NaN/Inf in a floating leaf of either
        raises a ``ValueError`` naming it (eagerly).
      coords: ``(P, k)`` coefficients.
      data: one batch (pytree, leading example axis), summed in chunks of ``batch_size``.
      batch_size: examples per data chunk (static); ``"auto"`` (default): chosen from the
        backend and the losses' per-example cost (see the module docstring; a resumed
        ``run_dir`` keeps the size it was written with); ``None``: the whole batch at once.
      strategy: ``"auto"``, ``"map"``, ``"vmap"`` or ``"loop"`` (see the module docstring).
      block_size: points per compiled block, a positive int (default: about 256, evened out so
        the padding of the last block is small).
      point_chunk: points per vmapped chunk for ``"vmap"``.
      progress: a bar over the blocks: ``"auto"`` (default) when standard error is a terminal,
        ``True``/``False`` force it; or a callable, called as ``progress(done, total)`` after
        each block.
      devices: ``None`` (all of ``jax.devices()``, of every process), a sequence of devices or a
        :class:`jax.sharding.Mesh` (points split over all its axes): the points of each block
        are sharded over them (see the module docstring). One device: no ``shard_map``.
      run_dir: a folder that makes the sweep resumable: the configuration and each finished
        block are written there (atomically); a re-run with the same configuration evaluates
        only the missing blocks, another configuration raises a ``ValueError``
        (:mod:`visjax.landscape.resume`).
      dtype: the precision of the forward passes: ``None`` (default) the parameters' own; a
        floating dtype such as ``jnp.bfloat16`` casts each point's parameters (shifted in
        float32) and the floating data to it, the loss values and their sum over the data
        staying float32 (mixed precision, for accelerators; :mod:`visjax.base.precision`).
        Trained digits CNN, 21x21 plane over the 1,347 training digits (cross-entropy
        0.11 to 92): bfloat16 differs from float32 by at most 0.23 (0.24% of the range; median
        0.18%, at most 1.4% of the value); on XLA:CPU it is not faster (24.0 s float32, 23.1 s
        bfloat16 on a shared 2-core CPU).

    Returns:
      ``{name: (P,) float32 NumPy array}``; non-finite values are NaN.
    """
    table, single = as_loss_table(loss_fn)
    dtype = check_dtype(dtype)
    if dtype is not None:
        table = {name: _InDtype(fn, dtype) for name, fn in table.items()}
    fns = tuple(table.values())
    coords = np.asarray(coords, np.float32)
    if coords.ndim != 2 or coords.shape[1] != len(directions) or coords.shape[0] == 0:
        raise ValueError(
            f"`coords` must have shape (P, {len(directions)}) with P > 0, got {coords.shape}"
        )
    check_finite_tree(origin, "origin", floating=False)
    for i, d in enumerate(directions):
        check_tree_like(d, origin, f"directions[{i}]")
        check_finite_tree(d, f"directions[{i}]", floating=False)
    check_data(data)
    if strategy not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}, got {strategy!r}")
    batch_size = check_batch_size(batch_size)
    point_chunk = check_positive_int(point_chunk, "point_chunk")
    if not callable(progress):
        progress = resolve_progress(progress)
    if block_size is not None:
        block_size = check_positive_int(block_size, "block_size")
    mesh = data_mesh(devices)
    n_dev = 1 if mesh is None else mesh.size
    strategy = _auto_strategy() if strategy == "auto" else strategy
    n_points = coords.shape[0]
    if strategy == "loop":
        block = n_dev
    else:
        target = block_size or 256
        n_blocks = math.ceil(n_points / target)
        block = math.ceil(n_points / n_blocks)
        unit = n_dev
        if strategy == "vmap":
            point_chunk = min(point_chunk, math.ceil(block / n_dev))
            unit = n_dev * point_chunk
        block = math.ceil(block / unit) * unit  # padded, never an error
    padded = math.ceil(n_points / block) * block
    n_blocks = padded // block
    if batch_size == AUTO and run_dir is not None:
        batch_size = stored_batch_size(run_dir)  # a resumed sweep keeps its chunking
    try:
        batch_size = _resolve_batch_size(batch_size, fns, origin, data, strategy, point_chunk)
    except Exception:  # a loss that does not trace (on 1-2 examples): the probe names it
        batch_size = None
    prints = _probe_losses(table, single, origin, data, batch_size)
    store = None
    if run_dir is not None:
        config = sweep_config(
            names=table,
            loss_fingerprints=prints,
            origin=origin,
            directions=directions,
            coords=coords,
            data=data,
            batch_size=batch_size,
            strategy=strategy,
            point_chunk=point_chunk,
            block=block,
        )
        store = RunDir(run_dir, config, write=jax.process_index() == 0)
    coords = np.concatenate([coords, np.repeat(coords[-1:], padded - n_points, axis=0)])
    given = (origin, data)  # for the eager diagnosis of an all-NaN loss below
    origin = _replicated(origin, mesh)
    directions = tuple(_replicated(d, mesh) for d in directions)
    data = _replicated(data, mesh)
    coord_sharding = None if mesh is None else NamedSharding(mesh, P(tuple(mesh.axis_names)))
    report = _progress(progress, n_blocks)
    out = []
    try:
        for b in range(n_blocks):
            values = None if store is None else store.load(b)
            if values is None:
                part = coords[b * block : (b + 1) * block]
                part = jnp.asarray(part) if mesh is None else jax.device_put(part, coord_sharding)
                values = _local_values(
                    _block(
                        fns,
                        origin,
                        directions,
                        part,
                        data,
                        batch_size,
                        "map" if strategy == "loop" else strategy,
                        point_chunk,
                        mesh,
                    )
                )
                if store is not None:
                    store.save(b, values)
            out.append(values)
            report(b + 1)
    finally:
        report(None)
    values = np.concatenate(out)[:n_points]
    bad = ~np.isfinite(values)
    _refuse_all_nonfinite(table, single, bad, *given, batch_size)
    if bad.any():
        values = np.where(bad, np.nan, values)
        counts = {name: int(bad[:, m].sum()) for m, name in enumerate(table)}
        warnings.warn(
            f"non-finite loss at {int(bad.any(1).sum())} of {n_points} points "
            f"(recorded as NaN): {counts}",
            RuntimeWarning,
            stacklevel=2,
        )
    return {name: values[:, m] for m, name in enumerate(table)}


def _refuse_all_nonfinite(table, single, bad, origin, data, batch_size) -> None:
    """A loss that is non-finite at every point is a data or loss mistake (e.g. class labels out
    of range past the first chunk, which the probe does not see), not a landscape: raise a
    ``ValueError`` naming the loss and, found eagerly at the origin, the first data chunk that
    gives a non-finite value."""
    local = all(
        not isinstance(a, jax.Array) or a.is_fully_addressable
        for a in jax.tree.leaves((origin, data))
    )
    for m, (name, fn) in enumerate(table.items()):
        if not bad[:, m].all():
            continue
        label = "loss_fn" if single else f"loss_fn[{name!r}]"
        where = None
        if local:
            check = ("first", lambda c, f=fn: f(origin, c))
            where = first_nonfinite_chunk([check], data, batch_size)
        raise ValueError(
            f"`{label}` is not finite at any of the {bad.shape[0]} points"
            + (f" ({where} at the origin)" if where else "")
            + ": check `data` (no NaN/Inf, class labels in range) and the parameters"
        )


def _probe_losses(table, single, origin, data, batch_size) -> dict[str, str]:
    """Trace each loss and evaluate it eagerly at the origin on the first data chunk, before the
    sweep: a non-scalar loss, data the loss cannot take (e.g. float class labels) or a non-finite
    value there (e.g. labels out of range) raise a ``ValueError`` at once. Returns each loss's
    fingerprint (:func:`visjax.landscape.resume.loss_fingerprint`)."""
    n = jax.tree.leaves(data)[0].shape[0]
    first = jax.tree.map(lambda a: a[: batch_size or n], data)
    # Spread over processes (each holds a part): traced only, no eager value.
    local = all(
        not isinstance(a, jax.Array) or a.is_fully_addressable
        for a in jax.tree.leaves((origin, data))
    )
    args = jax.tree.leaves((origin, first))
    prints = {}
    for name, fn in table.items():
        label = "loss_fn" if single else f"loss_fn[{name!r}]"
        try:
            # jit's trace cache: a repeated sweep does not trace the loss again
            closed = jax.jit(fn).trace(origin, first).jaxpr
        except TypeError as e:
            if "dtype" not in str(e):
                raise
            raise ValueError(
                f"`data` does not suit `{label}` (integer class labels expected?): {e}"
            ) from e
        shapes = [tuple(a.shape) for a in closed.out_avals]
        if shapes != [()]:
            shown = shapes[0] if len(shapes) == 1 else shapes
            raise ValueError(f"`{label}` must return a scalar (the batch mean), got shape {shown}")
        # eagerly, op by op: the jitted forward on XLA:CPU can drop a NaN
        value = float(jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *args)[0]) if local else None
        if value is not None and not math.isfinite(value):
            raise ValueError(
                f"`{label}` is {value} at the origin on the first chunk of `data`: check `data` "
                "(no NaN/Inf, class labels in range) and the parameters"
            )
        prints[name] = loss_fingerprint(closed, value)
    return prints


def _progress(progress, total):
    if callable(progress):
        return lambda done: None if done is None else progress(done, total)
    if not progress:
        return lambda done: None
    bar = progress_bar(total, desc="landscape", unit="block")

    def report(done):
        if done is None:
            bar.close()
        else:
            bar.update(done - bar.n)

    return report
