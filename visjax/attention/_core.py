"""Finding a model's attention weights, checking arguments and chunking over the batch.

Attention weights are the values a model tags with a path whose last part is ``attn_weights``
(``"blocks.3.attn.attn_weights"``, or ``"...attn_weights#k"`` for a layer called more than once),
of shape ``(N, heads, T, T)``: row ``i`` of head ``h`` is how much query token ``i`` attends to
each key token, a probability vector. A value tagged inside ``lax.scan`` and captured stacked as
``(L, N, heads, T, T)`` counts as ``L`` layers; ``path[i]`` (iteration ``i``'s weights) as one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.batching import AUTO, AUTO_MAX_UNROLLED, resolve_batch_size
from visjax.base.checks import (
    as_array_or_refuse,
    check_batch_size,
    check_finite,
    is_concrete,
)
from visjax.model import Model, as_model

SUFFIX = "attn_weights"
HeadFusion = Literal["mean", "max", "min"]
HEAD_FUSIONS = ("mean", "max", "min")
Layers = str | Sequence[str] | None


def split_iteration(path: str) -> tuple[str, str]:
    """``(path, "[i]")`` for a path that selects one iteration of a scan, else ``(path, "")``."""
    m = re.fullmatch(r"(.*?)(\[\d+\])", path)
    return (m[1], m[2]) if m else (path, "")


def is_attention_path(path: str) -> bool:
    """Whether ``path`` names attention weights (its last part, before any ``#k`` or ``[i]``, is
    ``attn_weights``)."""
    return split_iteration(path)[0].split("#")[0].split(".")[-1] == SUFFIX


def attention_layers(model: Any, x: Any = None) -> tuple[str, ...]:
    """The paths of ``model``'s attention weights, in the order the forward reaches them.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch (or its :class:`jax.ShapeDtypeStruct`); needed when the model does not know its
        input shape.

    Returns:
      The paths whose last part is ``attn_weights`` (empty if none).
    """
    model = as_model(model)
    names = model.layers if x is None else model.trace(model.check_x(x))[2]
    return tuple(n for n in names if is_attention_path(n))


def resolve_layers(model: Model, x: Any, layers: Layers) -> tuple[str, ...]:
    """``layers`` as attention paths: None is every one; a path is taken as it is when it names
    attention weights, else as the block holding exactly one set of them (``"blocks.0"``); a
    trailing ``[i]`` selects iteration ``i`` of a scan (``"blocks.attn.attn_weights[1]"``,
    ``"blocks[1]"``)."""
    x = probe(x)
    found = attention_layers(model, x)
    if layers is None:
        if not found:
            raise ValueError(
                "`model` has no attention weights: tag them with a path ending in "
                f"'{SUFFIX}' (visjax.tag(weights, '{SUFFIX}'), or use "
                "visjax.attention.TaggedMultiHeadAttention); its layers are "
                f"{list(model.trace(x)[2])}"
            )
        return found
    names = (layers,) if isinstance(layers, str) else layers
    names = tuple(names) if isinstance(names, tuple | list) else ()
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"`layers` must be None, a path or a non-empty sequence of paths, got {layers!r}"
        )
    out = []
    for name in names:
        base, it = split_iteration(name)
        if base in found:
            out.append(name)
            continue
        inside = [p for p in found if p.startswith(base + ".")]
        if len(inside) != 1:
            raise ValueError(
                f"`layers` names {name!r}, which holds "
                f"{'no' if not inside else len(inside)} attention weights; the layers with "
                f"attention weights are {list(found)}"
            )
        out.append(inside[0] + it)
    return tuple(out)


def probe(x: Any) -> Any:
    """``x``, or a one-row stand-in of its shape when the batch is empty (models cannot always
    be traced on zero rows)."""
    if x.shape[0] == 0:
        return jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)
    return x


def prepare(model: Any, x: Any, batch_size: Any = None) -> tuple[Model, jax.Array]:
    """The model and ``x`` checked (shape, dtype, finite) and ``batch_size`` checked."""
    model = as_model(model)
    x = model.check_x(x)
    check_finite(x, "x")
    check_batch_size(batch_size)
    return model, x


def check_head_fusion(head_fusion: Any) -> str:
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"`head_fusion` must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    return head_fusion


def check_discard_ratio(discard_ratio: Any) -> jax.Array:
    """``discard_ratio`` as a float32 scalar, checked to lie in ``[0, 1)`` when concrete."""
    bad = isinstance(discard_ratio, bool | str) or discard_ratio is None
    r = discard_ratio if hasattr(discard_ratio, "dtype") or bad else jnp.asarray(discard_ratio)
    dtype = None if bad else jnp.result_type(r)
    if (
        bad
        or jnp.ndim(r) != 0
        or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))
    ):
        raise ValueError(f"`discard_ratio` must be a real scalar in [0, 1), got {discard_ratio!r}")
    if is_concrete(r) and not 0 <= float(np.asarray(r)) < 1:
        raise ValueError(f"`discard_ratio` must be in [0, 1), got {float(np.asarray(r))}")
    return jnp.asarray(r, jnp.float32)


def stack_weights(model: Model, x: jax.Array, layers: tuple[str, ...], params: Any = None):
    """``(output, weights (N, L, H, T, T))`` from one capturing forward."""
    out, acts = model.run(x, capture=layers, params=params)
    return out, stack(acts, layers)


def stack(acts: dict[str, jax.Array], layers: tuple[str, ...]) -> jax.Array:
    parts = []
    for name in layers:
        a = acts[name]
        if a.ndim == 5:  # captured stacked inside a scan: (L, N, H, T, T)
            parts.extend(a[i][:, None] for i in range(a.shape[0]))
        elif a.ndim == 4 and a.shape[-1] == a.shape[-2]:
            parts.append(a[:, None])
        else:
            raise ValueError(
                f"`layers` names {name!r}, whose value has shape {a.shape}: attention weights "
                "must be (N, heads, T, T)"
            )
    shapes = {p.shape[2:] for p in parts}
    if len(shapes) > 1:
        raise ValueError(f"`layers` name attention weights of different shapes {sorted(shapes)}")
    return jnp.concatenate(parts, axis=1)


MIN_FORWARD_ROWS = 64  # the smallest chunk "auto" picks for forward-only work (see over_rows)


def over_rows(fn: Callable[..., jax.Array], batch_size: Any, *xs: Any, forward: bool) -> Any:
    """``fn(*xs)`` on chunks of ``batch_size`` leading rows, concatenated, inside one trace.

    Forward-only work (``forward=True``) runs as ``lax.map`` over chunks (the last padded with
    copies of the first rows; loops are fine for forward work on XLA:CPU, and compile once);
    gradient work as an unrolled loop over at most ``AUTO_MAX_UNROLLED`` chunks when ``"auto"``
    (gradients inside XLA loop bodies run many times slower on XLA:CPU;
    :mod:`visjax.base.batching`).
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    if batch_size == AUTO:
        cap = None if forward else AUTO_MAX_UNROLLED
        batch_size = resolve_batch_size(batch_size, fn, *xs, max_chunks=cap, forward=forward)
        if forward and batch_size is not None:
            # The byte estimate counts every intermediate as live at once, so on small models
            # it asks for chunks too small to run well: 256 x 64 tokens through the text model
            # asked 16 rows; rollout took 15.9 ms in chunks of 16, 10.9 ms in chunks of 64
            # (one capturing forward: 10-15 ms), maps 16.4 ms vs 11.9 ms.
            batch_size = max(batch_size, MIN_FORWARD_ROWS)
    if batch_size is None or batch_size >= n:
        return fn(*xs)
    if forward and n % batch_size:
        # A chunk count that divides the rows, if one lies within 2x of the requested one
        # (fewer, larger chunks first): no padded chunk, and no copy of the whole result to
        # drop the padding (8 MiB of maps for 256 x 64 tokens). Larger first: 256 rows asked
        # in chunks of 22 ran 16 chunks of 16 at 1.4x one batch, 8 chunks of 32 at 1.09x.
        chunks = -(-n // batch_size)
        counts = [*range(chunks, max(chunks // 2, 1) - 1, -1), *range(chunks + 1, 2 * chunks + 1)]
        batch_size = next((n // c for c in counts if n % c == 0), batch_size)
    if not forward:
        parts = [
            fn(*jax.tree.map(lambda a, s=s: a[s : s + batch_size], xs))
            for s in range(0, n, batch_size)
        ]
        return jax.tree.map(lambda *p: jnp.concatenate(p), *parts)
    pad = -n % batch_size
    chunks = (n + pad) // batch_size

    def split(a):
        a = jnp.concatenate([a, a[:pad]]) if pad else a
        return a.reshape(chunks, batch_size, *a.shape[1:])

    out = jax.lax.map(lambda c: fn(*c), jax.tree.map(split, xs))
    return jax.tree.map(lambda a: a.reshape(chunks * batch_size, *a.shape[2:])[:n], out)


def resolve_target(model: Model, x: jax.Array, target: Any):
    """``(target_fn or None, classes (N,))``: an int, an int array ``(N,)`` or a callable that
    maps one example's output to a scalar."""
    n = x.shape[0]
    if callable(target):
        return target, jnp.zeros((n,), jnp.int32)
    out = model.output_shape(probe(x))
    if not isinstance(out, jax.ShapeDtypeStruct) or out.ndim != 2:
        raise ValueError(
            "an integer `target` needs a model output of shape (N, classes); got "
            f"{getattr(out, 'shape', type(out).__name__)}: pass a callable `target`"
        )
    if target is None or isinstance(target, bool):
        raise TypeError(f"`target` must be an int, an int array (N,) or a callable, got {target!r}")
    t = as_array_or_refuse(target, "target", "an int, an int array (N,) or a callable")
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"`target` must be an int, an int array (N,) or a callable, got {target!r}")
    if t.ndim == 0:
        t = jnp.broadcast_to(jnp.asarray(t), (n,))
    if t.shape != (n,):
        raise ValueError(f"`target` must have shape ({n},) (one class per example), got {t.shape}")
    if is_concrete(t):
        tv = np.asarray(t)
        bad = (tv < 0) | (tv >= out.shape[1])
        if bad.any():
            raise ValueError(f"`target` must be in [0, {out.shape[1]}), got {tv[bad].tolist()}")
    return None, jnp.asarray(t, jnp.int32)


def empty_result(shape_fn: Callable[[jax.Array], Any], x: jax.Array) -> jax.Array:
    """The empty ``(0, ...)`` result of ``shape_fn`` (traced on one example, not run)."""
    spec = jax.eval_shape(shape_fn, jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype))
    return jnp.zeros((0, *spec.shape[1:]), spec.dtype)
