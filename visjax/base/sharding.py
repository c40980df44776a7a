"""Work over a batch of examples split over devices (``devices=`` of the attribution methods).

Attribution methods treat the examples of a batch independently, so the natural parallel axis
is the batch: :func:`over_devices` splits the leading (example) axis of the batched arguments
evenly over the devices of a mesh with ``jax.shard_map`` (the model, shared draws and other
arguments replicated), each device runs the method's own program on its share (its chunking of
steps, samples or perturbations resolved for that share), and the per-example results are
concatenated back. An uneven batch is padded with copies of its last example (one shape, one
compile) and the padding dropped. Each example's numbers are those of the single-device run up to
the summation order inside a chunk.

The devices are chosen by :func:`device_mesh` as the landscape sweeps do
(:func:`visjax.base.data.data_mesh`), except that ``None`` means this process's devices
(``jax.local_devices()``): the batch is a local array. With one device there is no mesh and the
method runs its single-device program unchanged (no extra cost). Inside a caller's trace (``jit``,
``vmap``, a noise tunnel's calls) the arguments are tracers and the method runs as on one device:
the enclosing program decides the placement.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from visjax.base.data import data_mesh


def device_mesh(devices: Any = None, name: str = "devices") -> Mesh | None:
    """The mesh a batch is split over, ``None`` for one device (the single-device program).

    ``devices``: ``None`` (all of ``jax.local_devices()``), a non-empty sequence of
    ``jax.Device`` or a :class:`jax.sharding.Mesh` (the batch split over all its axes). Anything
    else raises a ``ValueError`` naming the argument (``name``).
    """
    if devices is not None and not isinstance(devices, Mesh):
        if isinstance(devices, str | bytes) or not hasattr(devices, "__iter__"):
            raise ValueError(
                f"`{name}` must be None, a non-empty sequence of jax devices or a "
                f"jax.sharding.Mesh, got {devices!r}"
            )
    try:
        return data_mesh(jax.local_devices() if devices is None else devices)
    except ValueError:
        raise ValueError(
            f"`{name}` must be None, a non-empty sequence of jax devices or a "
            f"jax.sharding.Mesh, got {devices!r}"
        ) from None


class _Call:
    """``fn(*args, **static)`` with value equality, so the jitted driver compiles once per
    ``(fn, static settings)``."""

    def __init__(self, fn: Callable[..., Any], static: tuple):
        self.fn, self.static = fn, static

    def __call__(self, *args):
        return self.fn(*args, **dict(self.static))

    def __eq__(self, other):
        return isinstance(other, _Call) and (self.fn, self.static) == (other.fn, other.static)

    def __hash__(self):
        return hash((_Call, self.fn, self.static))


def over_devices(
    fn: Callable[..., Any],
    args: tuple,
    *,
    batched: tuple[bool, ...],
    mesh: Mesh | None,
    **static: Any,
) -> Any:
    """``fn(*args, **static)`` with the leading (example) axis of ``args[i]`` split over ``mesh``
    for every ``batched[i]`` (the other arguments replicated).

    ``fn`` must treat the examples independently and return a pytree of arrays with the example
    axis first. ``static`` settings must be hashable (they key the compiled program). Without a
    mesh, or on traced arguments, this is ``fn(*args, **static)``.
    """
    if mesh is None or any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(args)):
        return fn(*args, **static)
    return _on_mesh(_Call(fn, tuple(sorted(static.items()))), mesh, tuple(batched), tuple(args))


def _pad(a: jax.Array, pad: int) -> jax.Array:
    return jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) if pad else a


@functools.partial(jax.jit, static_argnames=("call", "mesh", "batched"))
def _on_mesh(call: _Call, mesh: Mesh, batched: tuple[bool, ...], args: tuple) -> Any:
    n = next(jax.tree.leaves(a)[0].shape[0] for a, b in zip(args, batched, strict=True) if b)
    pad = -n % mesh.size
    args = tuple(
        jax.tree.map(lambda a: _pad(a, pad), x) if b else x
        for x, b in zip(args, batched, strict=True)
    )
    axes = tuple(mesh.axis_names)
    specs = tuple(P(axes) if b else P() for b in batched)
    # check_vma=False: the replicated arguments need no variance tracking (as the sweeps).
    out = jax.shard_map(call, mesh=mesh, in_specs=specs, out_specs=P(axes), check_vma=False)(*args)
    return jax.tree.map(lambda a: a[:n], out)
