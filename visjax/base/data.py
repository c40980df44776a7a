"""The data convention of the parameter-space tools (curvature, landscape, gradstats).

A loss ``loss_fn(params, batch) -> scalar`` (the batch mean) and ``data=`` one batch (a pytree with
a leading example axis) that visjax sums in chunks of ``batch_size`` examples, weighting each chunk
by its size, so the result is the one of the full-dataset mean loss (docs/design.md, principle 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from visjax.base.batching import AUTO, AUTO_MAX_UNROLLED, chunked_sum, resolve_batch_size
from visjax.base.checks import is_concrete

LossFn = Callable[[Any, Any], jax.Array]


def check_data(data: Any, name: str = "data", *, finite: bool = True) -> int:
    """The example count ``N`` of ``data``, checked eagerly before anything compiles.

    ``data`` must be a pytree of arrays sharing a non-empty leading example axis (``N > 0``),
    of boolean, integer or floating dtypes, and (with ``finite``) hold no NaN or Inf. The values
    are checked with NumPy on the host, not inside a jitted forward: XLA:CPU's fused forward can
    drop a NaN (an all-NaN image gave finite logits under ``jit``), so a check on the loss alone
    misses it. Leaves that are not concrete (tracers, under a caller's ``jit``) skip the value
    check; pass ``finite=False`` to skip it for every leaf.

    Raises:
      ValueError: naming ``name``: no leaves, leaves without a shared non-empty leading axis,
        or a NaN/Inf (naming the leaf's key path and the first example holding one).
      TypeError: naming ``name`` and the leaf's key path: a dtype that is not boolean,
        integer or floating.
    """
    with_paths = jax.tree_util.tree_leaves_with_path(data)
    leaves = [a for _, a in with_paths]
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in leaves}
    if not leaves or len(sizes) != 1 or None in sizes or 0 in sizes:
        raise ValueError(
            f"`{name}` must be one batch: a pytree of arrays sharing a non-empty leading example "
            f"axis, got leading sizes {sizes}"
        )
    for path, a in with_paths:
        where = f"`{name}{jax.tree_util.keystr(path)}`"
        dtype = np.dtype(a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype)
        if not (
            dtype == np.bool_
            or jnp.issubdtype(dtype, jnp.integer)
            or jnp.issubdtype(dtype, jnp.floating)
        ):
            raise TypeError(f"{where} must have a boolean, integer or floating dtype, got {dtype}")
        if finite and jnp.issubdtype(dtype, jnp.floating) and is_concrete(a):
            values = np.asarray(a)
            bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"{where} contains NaN or Inf (first at example {int(np.argmax(bad))}, "
                    f"{int(bad.sum())} example(s) in all)"
                )
    return sizes.pop()


def chunk_ranges(n: int, batch_size: int | None) -> list[tuple[int, int]]:
    """The ``[start, stop)`` example ranges of the data chunks :func:`data_sum` adds."""
    step = n if batch_size is None else batch_size
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def first_nonfinite_chunk(
    checks: Sequence[tuple[str, Callable[[Any], Any]]], data: Any, batch_size: int | None
) -> str | None:
    """Which quantity first turns NaN/Inf on which data chunk, found eagerly (no ``jit``).

    For a failure seen in a jitted sum over chunks: each chunk (the ranges of
    :func:`chunk_ranges`) is run op by op through each ``(label, fn)`` of ``checks`` in turn,
    and the first non-finite result is described as ``"<label> on data chunk [start:stop]"``.
    ``None`` when every chunk gives finite results (e.g. an overflow in the sum itself). Only
    for error messages: it costs a full eager pass over the data.
    """
    leaves = jax.tree.leaves(data)
    n = np.shape(leaves[0])[0]
    with jax.disable_jit():
        for start, stop in chunk_ranges(n, batch_size):
            chunk = jax.tree.map(lambda a, s=slice(start, stop): a[s], data)
            for label, fn in checks:
                out = [np.asarray(x) for x in jax.tree.leaves(fn(chunk))]
                if not all(np.isfinite(x).all() for x in out):
                    return f"{label} on data chunk [{start}:{stop}]"
    return None


def data_mesh(devices: Any = None) -> Mesh | None:
    """The mesh the data axis is sharded over: ``None`` when the work runs on one device.

    ``devices``: ``None`` (all of ``jax.devices()``), a sequence of devices, or a
    :class:`jax.sharding.Mesh` (the data axis is split over all its axes).
    """
    if isinstance(devices, Mesh):
        return devices if devices.size > 1 else None
    found = jax.devices() if devices is None else list(devices)
    if not found or not all(isinstance(d, jax.Device) for d in found):
        raise ValueError(
            "`devices` must be None, a non-empty sequence of jax devices or a jax.sharding.Mesh, "
            f"got {devices!r}"
        )
    return Mesh(np.array(found), ("data",)) if len(found) > 1 else None


def data_batch_size(
    batch_size: int | str | None, fn: Callable[[Any], Any], data: Any
) -> int | None:
    """The examples per chunk :func:`data_sum` uses for ``fn`` on ``data``: ``batch_size`` itself,
    or for ``"auto"`` the rule of :func:`visjax.base.batching.auto_rows` (per-example bytes of
    ``fn``'s intermediates, at most ``AUTO_MAX_UNROLLED`` chunks). Callers that need the chunk
    ranges outside the trace (error messages, probes) resolve with this, so they agree with it."""
    if batch_size != AUTO:
        return batch_size
    return resolve_batch_size(batch_size, fn, data, max_chunks=AUTO_MAX_UNROLLED)


def _weighted_sum(fn: Callable[[Any], Any], data: Any, batch_size: int | str | None) -> Any:
    leaves, treedef = jax.tree.flatten(data)
    size = data_batch_size(batch_size, fn, data)

    def chunk(*parts):
        out = fn(jax.tree.unflatten(treedef, parts))
        return jax.tree.map(lambda a: a * parts[0].shape[0], out)

    return chunked_sum(chunk, *leaves, batch_size=size)


def data_sum(
    fn: Callable[[Any], Any], data: Any, batch_size: int | None, mesh: Mesh | None = None
) -> Any:
    """``Σ_chunks size(chunk) · fn(chunk) / N``: the dataset mean of a batch-mean quantity.

    With a ``mesh`` the examples are split evenly over its devices (``shard_map``), each device
    sums its share in chunks of ``batch_size`` and the partial sums are added with ``psum``; the
    ``N mod devices`` examples left over are summed outside the ``shard_map``.
    """
    n = jax.tree.leaves(data)[0].shape[0]
    if mesh is None or n < mesh.size:
        total = _weighted_sum(fn, data, batch_size)
    else:
        axes = tuple(mesh.axis_names)
        even = n - n % mesh.size

        def local(part):
            return jax.lax.psum(_weighted_sum(fn, part, batch_size), axes)

        head = jax.tree.map(lambda a: a[:even], data)
        # check_vma=False: `fn` differentiates with respect to values closed over from outside
        # (replicated); with the check on, JAX psums those cotangents itself and the explicit
        # psum above would count every device's share `mesh.size` times.
        total = jax.shard_map(local, mesh=mesh, in_specs=P(axes), out_specs=P(), check_vma=False)(
            head
        )
        if even < n:
            rest = _weighted_sum(fn, jax.tree.map(lambda a: a[even:], data), batch_size)
            total = jax.tree.map(jnp.add, total, rest)
    return jax.tree.map(lambda a: a / n, total)
