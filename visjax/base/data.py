"""The data convention of the parameter-space tools (curvature, landscape, gradstats).

A loss ``loss_fn(params, batch) -> scalar`` (the batch mean) and ``data=`` one batch (a pytree with
a leading example axis) that visjax sums in chunks of ``batch_size`` examples, weighting each chunk
by its size, so the result is the one of the full-dataset mean loss (docs/design.md, principle 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from visjax.base.batching import chunked_sum

LossFn = Callable[[Any, Any], jax.Array]


def check_data(data: Any, name: str = "data") -> int:
    """The example count of ``data``, a pytree of arrays sharing a non-empty leading axis;
    raises ``ValueError`` naming ``name`` otherwise."""
    leaves = jax.tree.leaves(data)
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in leaves}
    if not leaves or len(sizes) != 1 or None in sizes or 0 in sizes:
        raise ValueError(
            f"`{name}` must be one batch: a pytree of arrays sharing a non-empty leading example "
            f"axis, got leading sizes {sizes}"
        )
    return sizes.pop()


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


def _weighted_sum(fn: Callable[[Any], Any], data: Any, batch_size: int | None) -> Any:
    leaves, treedef = jax.tree.flatten(data)

    def chunk(*parts):
        out = fn(jax.tree.unflatten(treedef, parts))
        return jax.tree.map(lambda a: a * parts[0].shape[0], out)

    return chunked_sum(chunk, *leaves, batch_size=batch_size)


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
