"""Activation statistics over a dataset: per-unit moments, how often a unit fires, dead units.

For every requested layer, :func:`activation_stats` runs the model over the whole dataset in one
compiled program (a ``lax.scan`` over chunks of ``batch_size`` rows: forward-only work, see
:mod:`visjax.base.batching`) and reduces each *unit* — the last axis of the layer's activation: a
channel of a convolution's ``(N, H, W, C)`` maps, a feature of a dense layer's ``(N, F)`` — over
the examples and the spatial positions. :func:`dead_units` lists the units that never fire and
:func:`saturated_units` those that always do, or sit at a ``tanh``/``sigmoid`` bound.

The values are the layer's named values as :class:`visjax.Model` captures them (for the zoo
models: a convolution's output before its ReLU, so "active" means "the ReLU passes it").
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from visjax.base.batching import AUTO, resolve_batch_size
from visjax.base.checks import check_batch_size, check_positive_int, is_concrete
from visjax.model import Model, as_model

Heatmap = Literal["mean", "median", "max"]
Histogram = Literal["layer", "unit", False]
DEFAULT_BINS = 32
SATURATION_TOL = 1e-3
# The primitives whose outputs are bounded, and their bounds.
_BOUNDED = {"tanh": (-1.0, 1.0), "logistic": (0.0, 1.0)}
_SIZES: dict = {}  # (forward, x shape and dtype, layers, batch_size) -> rows per chunk


class ActivationStats(NamedTuple):
    """One layer's activation statistics over a dataset, one entry per unit (last axis).

    With ``U`` units and ``B`` histogram bins; each unit's statistics run over ``count`` values
    (examples times spatial positions).

    Attributes:
      layer: the layer path.
      shape: the activation's shape for one example.
      count: the number of values behind each unit's statistics.
      mean: ``(U,)`` mean.
      std: ``(U,)`` population standard deviation (``ddof=0``).
      active: ``(U,)`` fraction of the values that are ``> 0``.
      max: ``(U,)`` largest value.
      min: ``(U,)`` smallest value.
      edges: ``(B + 1,)`` the histogram's bin edges (shared by the layer's units; empty with
        ``histogram=False``).
      counts: the int histogram over ``edges`` (NumPy's convention: bins are half-open
        ``[e_i, e_{i+1})`` except the last, values outside the edges are not counted): ``(B,)``
        of all the layer's values pooled (``histogram="layer"``), ``(U, B)`` one row per unit
        (``histogram="unit"``), or ``(U, 0)`` without a histogram (``histogram=False``, the
        default).
      heatmap: ``shape`` the activation aggregated over the dataset by ``heatmap_kind``.
      heatmap_kind: ``"mean"``, ``"median"`` or ``"max"``.
      bound: ``(low, high)`` when the value comes straight from a ``tanh`` or ``logistic``
        (sigmoid) primitive, else ``None``.
      near_bound: ``(U,)`` fraction of the values within ``1e-3`` of a bound (zeros without one).
    """

    layer: str
    shape: tuple[int, ...]
    count: int
    mean: np.ndarray
    std: np.ndarray
    active: np.ndarray
    max: np.ndarray
    min: np.ndarray
    edges: np.ndarray
    counts: np.ndarray
    heatmap: np.ndarray
    heatmap_kind: str
    bound: tuple[float, float] | None
    near_bound: np.ndarray

    @property
    def units(self) -> int:
        """The number of units (the activation's last axis)."""
        return int(self.mean.shape[0])


# --------------------------------------------------------------------------- checks


def _scan_chunks(chunk, combine, x, size):
    """``chunk(rows) -> (partial, kept activations)`` over ``x`` in chunks of ``size`` rows: a
    ``lax.scan`` over the full chunks (``combine`` folds the partials) and one call for the
    remainder. Returns the combined partial and the list of kept activations, in row order."""
    rows = x.shape[0]
    k = rows // size
    total, kept = None, []
    if k:
        head = x[: k * size].reshape(k, size, *x.shape[1:])
        total, first = chunk(head[0])
        kept.append(first)
        if k > 1:

            def step(acc, xc):
                part, acts = chunk(xc)
                return combine(acc, part), acts

            total, rest = jax.lax.scan(step, total, head[1:])
            kept.append(jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), rest))
    if k * size < rows:
        part, acts = chunk(x[k * size :])
        total = part if total is None else combine(total, part)
        kept.append(acts)
    return total, kept


def _check_data(model: Model, x: Any) -> jax.Array:
    x = model.check_x(x)
    if is_concrete(x) and not np.isfinite(np.asarray(x)).all():
        raise ValueError("`x` holds NaN or Inf values")
    if x.shape[0] < 1:
        raise ValueError("`x` must hold at least one example")
    return x


def _one_row(x: jax.Array) -> jax.ShapeDtypeStruct:
    """One example's batch as a shape (slicing ``x[:1]`` would dispatch a computation)."""
    return jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)


def _check_layers(model: Model, x: jax.Array, layers: Any) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = (layers,)
    if not isinstance(layers, Sequence) or not layers:
        raise ValueError(f"`layers` must be a layer path or a non-empty list, got {layers!r}")
    shapes = model.layer_shapes(_one_row(x))
    for name in layers:
        if not isinstance(name, str):
            raise TypeError(f"`layers` must hold layer path strings, got {type(name).__name__}")
        if name not in shapes:
            raise ValueError(f"`layers` names unknown layer {name!r}; known layers: {list(shapes)}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"`layers` repeats a layer: {list(layers)}")
    return tuple(layers)


def _check_edges(edges: Any, layers: tuple[str, ...]) -> dict[str, np.ndarray | int]:
    """Per layer: fixed edges (an array) or a number of bins (edges from the data's range)."""

    def one(e: Any, name: str) -> np.ndarray | int:
        if isinstance(e, int | np.integer) and not isinstance(e, bool):
            return check_positive_int(e, name)
        a = np.asarray(e, dtype=np.float64)
        if a.ndim != 1 or a.size < 2 or not np.isfinite(a).all() or np.any(np.diff(a) <= 0):
            raise ValueError(
                f"`{name}` must be an int (bins) or 1-D increasing finite edges, got {e!r}"
            )
        return a

    if edges is None:
        return dict.fromkeys(layers, DEFAULT_BINS)
    if isinstance(edges, Mapping):
        unknown = [k for k in edges if k not in layers]
        if unknown:
            raise ValueError(f"`edges` names layer(s) {unknown} not in `layers` {list(layers)}")
        return {n: one(edges.get(n, DEFAULT_BINS), f"edges[{n!r}]") for n in layers}
    e = one(edges, "edges")
    return dict.fromkeys(layers, e)


# --------------------------------------------------------------------------- bounds


def _producer_bound(jaxpr: jcore.Jaxpr, var: Any) -> tuple[float, float] | None:
    """The bound of the primitive that produced ``var`` in ``jaxpr`` (through nested calls)."""
    for eqn in jaxpr.eqns:
        if any(o is var for o in eqn.outvars):
            prim = eqn.primitive.name
            if prim in _BOUNDED:
                return _BOUNDED[prim]
            for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
                body = eqn.params.get(key)
                if body is not None:
                    inner = body.jaxpr if isinstance(body, jcore.ClosedJaxpr) else body
                    i = next(k for k, o in enumerate(eqn.outvars) if o is var)
                    return _producer_bound(inner, inner.outvars[i])
            return None
    return None


def _layer_bounds(model: Model, x: jax.Array) -> dict[str, tuple[float, float] | None]:
    """Each layer's ``tanh``/``logistic`` bound (or None), keyed as :meth:`Model.layers` keys."""
    found: dict[str, tuple[float, float] | None] = {}
    counts: dict[str, int] = {}

    def walk(jx: jcore.Jaxpr) -> None:
        for eqn in jx.eqns:
            if eqn.primitive.name == "name":
                base = eqn.params["name"]
                k = counts.get(base, 0)
                counts[base] = k + 1
                key = base if k == 0 else f"{base}#{k}"
                found[key] = _producer_bound(jx, eqn.invars[0])
            for sub in jcore.jaxprs_in_params(eqn.params):
                walk(sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub)

    closed = model.trace(jax.ShapeDtypeStruct(x.shape, x.dtype)).jaxpr
    walk(closed.jaxpr)
    return found


# --------------------------------------------------------------------------- the compiled pass


def _units(a: jax.Array) -> jax.Array:
    """``(values, units)``: the last axis as units, every other axis as values."""
    return a.reshape(-1, 1) if a.ndim == 1 else a.reshape(-1, a.shape[-1])


def _bin_index(v: jax.Array, edges: jax.Array) -> jax.Array:
    """Each value's bin over evenly spaced ``edges``, as NumPy's ``histogram`` finds it (the
    computed index corrected against the edges themselves); -1 outside the edges."""
    bins = edges.shape[0] - 1
    scale = bins / (edges[-1] - edges[0])
    i = jnp.clip(jnp.floor((v - edges[0]) * scale).astype(jnp.int32), 0, bins - 1)
    i = i - (v < jnp.take(edges, i)).astype(jnp.int32)
    i = i + ((v >= jnp.take(edges, i + 1)) & (i != bins - 1)).astype(jnp.int32)
    return jnp.where((v >= edges[0]) & (v <= edges[-1]), i, -1)


def _host_counts(flat: np.ndarray, size: int) -> np.ndarray:
    """Counts of ``0..size-1`` in ``flat``; the value ``size`` marks "outside" (not counted)."""
    return np.bincount(np.asarray(flat).ravel(), minlength=size + 1)[:size].astype(np.int32)


def _histogram(v: jax.Array, edges: jax.Array, uniform: bool = True) -> jax.Array:
    """``(U, B)`` counts of the columns of ``v`` over ``edges`` (NumPy's bin convention).

    On XLA:CPU both a scatter-add and compare-and-sum reductions measured 10-30x slower than
    the forward pass they summarise (0.25-0.9 s for the 2.7 million values of the digits CNN's
    conv2 over 1,347 digits), so the bin index is computed in the program (one fused
    elementwise pass; NumPy's own ``searchsorted`` for uneven edges) and counted on the host by
    ``np.bincount`` (18 ms) through a callback. Other backends scatter-add on the device.
    """
    bins = edges.shape[0] - 1
    units = v.shape[1]
    size = units * bins
    spec = jax.ShapeDtypeStruct((size,), jnp.int32)
    offsets = jnp.arange(units, dtype=jnp.int32) * bins
    if not uniform:

        def host(v, edges):
            v, edges = np.asarray(v), np.asarray(edges)
            i = np.searchsorted(edges, v, side="right") - 1
            i[v == edges[-1]] = bins - 1
            i = np.where((i >= 0) & (i < bins), i + np.arange(units) * bins, size)
            return _host_counts(i, size)

        return jax.pure_callback(host, spec, v, edges).reshape(units, bins)
    i = _bin_index(v, edges)
    flat = jnp.where(i >= 0, i + offsets, size)  # `size`: outside the edges, not counted
    if jax.default_backend() == "cpu":
        counts = jax.pure_callback(functools.partial(_host_counts, size=size), spec, flat)
    else:
        counts = jnp.zeros(size, jnp.int32).at[flat.ravel()].add(1, mode="drop")
    return counts.reshape(units, bins)


def _bin_codes(v: jax.Array, edges: jax.Array, pooled: bool) -> jax.Array:
    """The flat codes :func:`_host_counts` counts, for data-dependent (even) edges on XLA:CPU:
    ``bin`` (pooled, as ``uint8`` when the bins allow: a quarter of the bytes to write and to
    count) or ``unit * bins + bin`` per unit; the number of codes marks "outside"."""
    bins = edges.shape[0] - 1
    i = _bin_index(v, edges)
    if pooled:
        code = jnp.where(i >= 0, i, bins)
        return code.astype(jnp.uint8 if bins < 255 else jnp.int32).ravel()
    offsets = jnp.arange(v.shape[1], dtype=jnp.int32) * bins
    return jnp.where(i >= 0, i + offsets, v.shape[1] * bins).ravel()


def _partial(
    a: jax.Array,
    bound: tuple[float, float] | None,
    edges: jax.Array | None,
    heat: str,
    uniform: bool,
    pooled: bool,
) -> dict[str, jax.Array]:
    """The combinable statistics of one chunk ``a`` (batch first) of one layer; ``pooled``: one
    histogram of all the units' values instead of one per unit.

    XLA:CPU runs each reduction as its own pass over the chunk's activations (sibling reductions
    do not fuse into one loop, and a variadic ``lax.reduce`` measured 2x slower than the forward
    pass it summarises), and an elementwise producer it cannot fuse into a reduction (a compare,
    an integer sum, a reshape of the activation) costs one more write and read. So every
    statistic here is one reduction of the activation as the forward stored it (no reshape, no
    copy), with only the elementwise operations XLA:CPU fuses into it (subtract, multiply,
    sign, abs): the heatmap's sum (or max) over the examples gives the unit's sum (or max) over
    its few positions for free; the sum of squares is taken about the chunk's first value per
    unit (a value of the same magnitude, so it does not cancel as ``E[v^2] - mean^2`` would);
    "active" is counted as ``(sign(v) + |sign(v)|) / 2`` summed in float32 (exact below 2^24
    values per unit and chunk; an int32 count above). Five passes in all instead of ten: on the
    digits CNN over 1,347 digits, 1.45x -> ~1.2x the capturing forward (XLA:CPU)."""
    a = a.astype(jnp.float32)
    one = a.shape[1:]  # one example's shape, the heatmap's
    if a.ndim == 1:
        a = a[:, None]
    over = tuple(range(a.ndim - 1))  # examples and positions
    spatial = tuple(range(a.ndim - 2))  # positions, once the examples are reduced
    m = a.size // a.shape[-1]  # values per unit in this chunk
    n = jnp.asarray(m, jnp.float32)
    shift = a[(0,) * (a.ndim - 1)]
    out = {}
    # A barrier keeps XLA from folding "sum of the heatmap" back into a second full reduction.
    if heat == "mean":
        out["heat"] = a.sum(0)
        s1 = jax.lax.optimization_barrier(out["heat"]).sum(spatial)
    else:
        s1 = a.sum(over)
    if heat == "max":
        out["heat"] = a.max(0)
        top = jax.lax.optimization_barrier(out["heat"]).max(spatial)
    else:
        top = a.max(over)
    shifted = s1 - n * shift
    out.update(
        n=n,
        mean=s1 / n,
        m2=jnp.maximum(jnp.square(a - shift).sum(over) - shifted * shifted / n, 0.0),
        max=top,
        min=a.min(over),
    )
    if m < 2**23:
        sign = jnp.sign(a)
        out["active"] = ((sign + jnp.abs(sign)).sum(over) / 2).astype(jnp.int32)
    else:
        out["active"] = (a > 0).sum(over, dtype=jnp.int32)
    if bound is not None:
        lo, hi = bound
        near = (a <= lo + SATURATION_TOL) | (a >= hi - SATURATION_TOL)
        out["near"] = near.sum(over, dtype=jnp.int32)
    if edges is not None:
        v = _units(a)
        out["counts"] = _histogram(v.reshape(-1, 1) if pooled else v, edges, uniform)
    if "heat" in out:
        out["heat"] = out["heat"].reshape(one)
    return out


def _combine(p: dict, q: dict, heat: str) -> dict:
    """Chan et al.'s pairwise update for (n, mean, m2); sums, maxima and minima elsewhere."""
    n = p["n"] + q["n"]
    delta = q["mean"] - p["mean"]
    out = {
        "n": n,
        "mean": p["mean"] + delta * (q["n"] / n),
        "m2": p["m2"] + q["m2"] + delta**2 * (p["n"] * q["n"] / n),
        "max": jnp.maximum(p["max"], q["max"]),
        "min": jnp.minimum(p["min"], q["min"]),
    }
    for key in ("active", "near", "counts"):
        if key in p:
            out[key] = p[key] + q[key]
    if "heat" in p:
        out["heat"] = jnp.maximum(p["heat"], q["heat"]) if heat == "max" else p["heat"] + q["heat"]
    return out


@functools.partial(
    jax.jit, static_argnames=("layers", "bounds", "bins", "uniform", "heat", "size", "hist")
)
def _stats_program(model, x, fixed_edges, layers, bounds, bins, uniform, heat, size, hist="layer"):
    """Everything in one program: a scan over chunks of the forward plus per-chunk statistics;
    the activations are kept (as the scan's outputs) only when a histogram's edges come from the
    data or the heatmap is the median. On XLA:CPU such a histogram leaves the program as bin
    codes (``t["codes"]``, one array per kept part) that the caller counts with ``np.bincount``:
    a callback inside the program measured twice the time (it copies and serialises)."""
    pooled = hist == "layer"
    keep = [n for n in layers if (hist and n not in fixed_edges) or heat == "median"]

    def chunk(xc):
        acts = model.activations(xc, layers)[1]
        parts = {
            n: _partial(
                acts[n], bounds[n], fixed_edges.get(n) if hist else None, heat, uniform[n], pooled
            )
            for n in layers
        }
        return parts, {n: acts[n] for n in keep}

    def combine(p, q):
        return {n: _combine(p[n], q[n], heat) for n in layers}

    rows = x.shape[0]
    total, kept = _scan_chunks(chunk, combine, x, size)
    for n in layers:
        t = total[n]
        if hist and n not in fixed_edges:
            lo, hi = t["min"].min(), t["max"].max()
            pad = jnp.where(hi > lo, 0.0, 0.5)
            t["edges"] = jnp.linspace(lo - pad, hi + pad, bins[n] + 1)
            # Part by part: concatenating the kept activations first measured 2x slower.
            values = [_units(part[n].astype(jnp.float32)) for part in kept]
            if pooled:
                values = [v.reshape(-1, 1) for v in values]
            if jax.default_backend() == "cpu":
                t["codes"] = [_bin_codes(v, t["edges"], pooled) for v in values]
            else:
                t["counts"] = functools.reduce(jnp.add, [_histogram(v, t["edges"]) for v in values])
        if heat == "median":
            stored = jnp.concatenate([part[n] for part in kept]).astype(jnp.float32)
            t["heat"] = jnp.median(stored, axis=0)
        elif heat == "mean":
            t["heat"] = t["heat"] / rows
    return total


# --------------------------------------------------------------------------- public API


def activation_stats(
    model: Any,
    x: Any,
    *,
    layers: str | Sequence[str],
    batch_size: int | str | None = AUTO,
    edges: Any = None,
    heatmap: Heatmap = "mean",
    histogram: Histogram = False,
) -> dict[str, ActivationStats]:
    r"""Per-unit activation statistics of ``layers`` over the dataset ``x``, in one compiled pass.

    A unit is one entry of the activation's last axis (a channel of ``(N, H, W, C)`` maps, a
    feature of ``(N, F)``). Each unit's values :math:`v_1, \dots, v_m` are its activations at
    every example and spatial position (:math:`m = N \cdot H \cdot W`), and the statistics are

    .. math::

       \mu = \frac1m \sum_i v_i, \qquad
       \sigma = \sqrt{\frac1m \sum_i (v_i - \mu)^2}, \qquad
       \text{active} = \frac1m \#\{i : v_i > 0\},

    with the max, the min and, on request, a histogram of the values: one per layer (every
    unit's values pooled, ``histogram="layer"``) or one per unit (``histogram="unit"``). Chunks
    are merged with Chan, Golub and LeVeque's pairwise update of
    :math:`(m, \mu, \sum (v - \mu)^2)`, so the standard deviation does not suffer the
    cancellation of :math:`E[v^2] - \mu^2`.

    Memory: without a histogram (the default) or with fixed ``edges`` (an array), and a mean or
    max heatmap, the pass holds one chunk's activations at a time. Edges from the data
    (``edges=None`` or a number of bins: the layer's range ``[min, max]`` split evenly, all
    units sharing one set) and the median heatmap need every value, so the activations of the
    whole dataset are kept inside the program (as :meth:`visjax.Model.activations` on the whole
    dataset would) and the histogram is taken over them after the first reduction — one
    forward pass, not two. The median heatmap is exact (``jnp.median`` over the examples, on
    the device).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: the dataset, a batch ``(N, *input_shape)`` of finite values.
      layers: a layer path or a list of them.
      batch_size: rows per chunk; ``"auto"`` sizes chunks from the forward's memory per row,
        ``None`` runs one chunk.
      edges: the histogram's: ``None`` (32 bins over each layer's range), an int (that many
        bins over each layer's range), 1-D increasing edges shared by every layer, or a mapping
        from layer path to either; only with ``histogram`` on.
      heatmap: how ``ActivationStats.heatmap`` aggregates the activation (shape of one example)
        over the dataset: ``"mean"``, ``"median"`` or ``"max"``.
      histogram: ``False`` (default): none (``edges`` empty, ``counts`` of shape ``(U, 0)``);
        ``"layer"``: one histogram of the layer's values, all units pooled (``counts`` of shape
        ``(B,)``, what :func:`visjax.plot.activation_histograms` draws); ``"unit"``: one per
        unit (``(U, B)``). A histogram is opt-in because it costs about one more forward pass:
        edges from the data need the layer's range before any value can be binned, so every
        activation is kept and read again (on the digits CNN over 1,347 digits at all layers:
        about 1.8-2.4x one capturing forward with either histogram, 1.1-1.2x without;
        XLA:CPU, 2026-12-05).

    Returns:
      ``{layer: ActivationStats}`` in the order of ``layers``, as NumPy arrays.

    Raises:
      ValueError: an unknown layer (the message lists the known ones), ``x`` of the wrong shape
        or with NaN/Inf, bad ``edges``, ``batch_size``, ``heatmap`` or ``histogram``;
        TypeError: non-floating ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> s = activation_stats(digits_cnn("function"), jnp.ones((4, 8, 8, 1)), layers="conv1")
      >>> s["conv1"].units, s["conv1"].count, s["conv1"].counts.shape
      (16, 256, (16, 0))
      >>> h = activation_stats(digits_cnn("function"), jnp.ones((4, 8, 8, 1)), layers="conv1",
      ...                      histogram="layer")
      >>> h["conv1"].counts.shape, h["conv1"].edges.shape
      ((32,), (33,))
    """
    model = as_model(model)
    x = _check_data(model, x)
    names = _check_layers(model, x, layers)
    batch_size = check_batch_size(batch_size)
    if heatmap not in ("mean", "median", "max"):
        raise ValueError(f"`heatmap` must be 'mean', 'median' or 'max', got {heatmap!r}")
    if histogram is not False and (
        not isinstance(histogram, str) or histogram not in ("layer", "unit")
    ):
        raise ValueError(f"`histogram` must be 'layer', 'unit' or False, got {histogram!r}")
    if histogram is False and edges is not None:
        raise ValueError("`edges` needs a histogram: pass histogram='layer' or 'unit'")
    per_layer = _check_edges(edges, names)
    bounds = _layer_bounds(model, x)
    fixed = {n: not isinstance(e, int) for n, e in per_layer.items()}
    fixed_edges = {n: jnp.asarray(e, jnp.float32) for n, e in per_layer.items() if fixed[n]}
    bins = {n: (e if isinstance(e, int) else len(e) - 1) for n, e in per_layer.items()}
    key = (model.forward, tuple(x.shape), str(x.dtype), names, batch_size)
    if key not in _SIZES:  # tracing the forward twice costs about as much as the pass itself
        if len(_SIZES) >= 64:
            _SIZES.pop(next(iter(_SIZES)))
        _SIZES[key] = resolve_batch_size(
            batch_size, lambda xc: model.activations(xc, names)[1], x, forward=True
        )
    size = _SIZES[key]
    size = x.shape[0] if size is None else min(int(size), x.shape[0])
    total = _stats_program(
        model,
        x,
        fixed_edges,
        names,
        _frozen({n: bounds.get(n) for n in names}),
        _frozen(bins),
        _frozen({n: not fixed[n] or _is_uniform(per_layer[n]) for n in names}),
        heatmap,
        size,
        histogram,
    )
    total = jax.device_get(total)
    shapes = model.layer_shapes(_one_row(x))
    out = {}
    for n in names:
        t = total[n]
        count = int(t["n"])
        units = t["mean"].shape[0]
        if histogram is False:
            e, c = np.zeros(0, np.float32), np.zeros((units, 0), np.int32)
        else:
            e = np.asarray(t["edges"]) if "edges" in t else np.asarray(fixed_edges[n])
            if "codes" in t:
                cells = bins[n] if histogram == "layer" else units * bins[n]
                c = functools.reduce(np.add, (_host_counts(p, cells) for p in t["codes"]))
            else:
                c = np.asarray(t["counts"])
            c = c.reshape(-1) if histogram == "layer" else c.reshape(units, -1)
        out[n] = ActivationStats(
            layer=n,
            shape=tuple(shapes[n].shape[1:]),
            count=count,
            mean=np.asarray(t["mean"]),
            std=np.sqrt(np.maximum(np.asarray(t["m2"]) / count, 0.0)),
            active=np.asarray(t["active"]) / count,
            max=np.asarray(t["max"]),
            min=np.asarray(t["min"]),
            edges=e,
            counts=c,
            heatmap=np.asarray(t["heat"]),
            heatmap_kind=heatmap,
            bound=bounds.get(n),
            near_bound=(np.asarray(t["near"]) / count if "near" in t else np.zeros(units)),
        )
    return out


def _is_uniform(edges: np.ndarray) -> bool:
    d = np.diff(edges)
    return bool(np.allclose(d, d.mean(), rtol=1e-3, atol=0.0))


class _frozen(dict):
    """A hashable dict, for ``jit``'s static arguments."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


@functools.partial(jax.jit, static_argnames=("layers", "reduce", "size"))
def _maps_program(model, x, layers, reduce, size):
    """The heatmaps alone: a scan over chunks carrying the sum or the max; the median keeps every
    chunk's activations (the scan's outputs) and takes ``jnp.median`` over the examples."""

    def chunk(xc):
        acts = model.activations(xc, layers)[1]
        acts = {n: acts[n].astype(jnp.float32) for n in layers}
        if reduce == "median":
            return {}, acts
        op = jnp.max if reduce == "max" else jnp.sum
        return {n: op(a, axis=0) for n, a in acts.items()}, {}

    def combine(p, q):
        op = jnp.maximum if reduce == "max" else jnp.add
        return jax.tree.map(op, p, q)

    rows = x.shape[0]
    total, kept = _scan_chunks(chunk, combine, x, size)
    if reduce == "median":
        return {n: jnp.median(jnp.concatenate([p[n] for p in kept]), axis=0) for n in layers}
    if reduce == "mean":
        return {n: t / rows for n, t in total.items()}
    return total


def activation_maps(
    model: Any,
    x: Any,
    *,
    layers: str | Sequence[str],
    reduce: Heatmap = "mean",
    batch_size: int | str | None = AUTO,
) -> dict[str, np.ndarray]:
    """Per-layer activation heatmaps: each layer's activation aggregated over the dataset.

    For a layer whose activation for one example has shape ``(H, W, C)`` (or ``(F,)``, or any
    shape), the heatmap has that shape and holds, at every position and channel, the mean, the
    median or the max of the value over the ``N`` examples of ``x``. Mean and max are carried
    through a scan over chunks of ``batch_size`` rows (one chunk's activations held at a time);
    the median is exact (``jnp.median`` over the examples, NumPy's convention: the mean of the
    two middle values for even ``N``), which needs every example's activation: they are kept
    inside the one compiled program, as :meth:`visjax.Model.activations` on the whole dataset
    would. Average over the last axis (``maps[layer].mean(-1)``) for one ``(H, W)`` image per
    layer, as :func:`visjax.plot.activation_heatmaps` shows it.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: the dataset, a batch ``(N, *input_shape)`` of finite values.
      layers: a layer path or a list of them.
      reduce: ``"mean"``, ``"median"`` or ``"max"`` over the examples.
      batch_size: rows per chunk; ``"auto"`` sizes chunks from the forward's memory per row,
        ``None`` runs one chunk.

    Returns:
      ``{layer: float32 array of one example's activation shape}`` in the order of ``layers``.

    Raises:
      ValueError: an unknown layer (the message lists the known ones), ``x`` of the wrong shape
        or with NaN/Inf, a bad ``reduce`` or ``batch_size``; TypeError: non-floating ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> maps = activation_maps(digits_cnn("function"), jnp.ones((4, 8, 8, 1)), layers="conv1")
      >>> maps["conv1"].shape
      (8, 8, 16)
    """
    model = as_model(model)
    x = _check_data(model, x)
    names = _check_layers(model, x, layers)
    batch_size = check_batch_size(batch_size)
    if reduce not in ("mean", "median", "max"):
        raise ValueError(f"`reduce` must be 'mean', 'median' or 'max', got {reduce!r}")
    key = (model.forward, tuple(x.shape), str(x.dtype), names, batch_size)
    if key not in _SIZES:
        if len(_SIZES) >= 64:
            _SIZES.pop(next(iter(_SIZES)))
        _SIZES[key] = resolve_batch_size(
            batch_size, lambda xc: model.activations(xc, names)[1], x, forward=True
        )
    size = _SIZES[key]
    size = x.shape[0] if size is None else min(int(size), x.shape[0])
    out = jax.device_get(_maps_program(model, x, names, reduce, size))
    return {n: np.asarray(out[n]) for n in names}


def dead_units(stats: Mapping[str, ActivationStats]) -> dict[str, np.ndarray]:
    """The units that are never active (no value ``> 0``) on the dataset, per layer.

    Args:
      stats: :func:`activation_stats`'s result.

    Returns:
      ``{layer: sorted int array of unit indices}`` (empty arrays for layers without dead units).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> s = activation_stats(digits_cnn("function"), -jnp.ones((2, 8, 8, 1)), layers="fc")
      >>> len(dead_units(s)["fc"]) <= 10
      True
    """
    if not isinstance(stats, Mapping) or not all(
        isinstance(s, ActivationStats) for s in stats.values()
    ):
        raise TypeError("`stats` must be the mapping activation_stats returns")
    return {n: np.flatnonzero(s.active == 0) for n, s in stats.items()}


def saturated_units(
    model: Any,
    x: Any,
    *,
    layers: str | Sequence[str],
    batch_size: int | str | None = AUTO,
    fraction: float = 1.0,
) -> dict[str, np.ndarray]:
    """The units that are saturated on at least ``fraction`` of the dataset's values, per layer.

    A value is saturated when it comes straight from a ``tanh`` (bounds ±1) or ``logistic``
    (sigmoid, bounds 0 and 1) primitive — found in the traced program, through nested ``jit``
    calls such as ``jax.nn.sigmoid`` — and lies within ``1e-3`` of a bound, where the gradient
    vanishes. For any other layer a value is saturated when it is active (``> 0``): a unit that
    is always active behind a ReLU is a linear unit (its non-linearity never acts).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: the dataset, a batch ``(N, *input_shape)``.
      layers: a layer path or a list of them.
      batch_size: rows per chunk (see :func:`activation_stats`).
      fraction: in (0, 1]; the default 1 asks for "always".

    Returns:
      ``{layer: sorted int array of unit indices}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from visjax import as_model, tag
      >>> m = as_model(lambda p, x: tag(jnp.tanh(x * p), "h"), jnp.array([1.0, 100.0]),
      ...              input_shape=(2,))
      >>> saturated_units(m, jnp.ones((3, 2)), layers="h")["h"].tolist()
      [1]
    """
    if not isinstance(fraction, float | int) or not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction!r}")
    # No histogram (the default): nothing but one chunk's activations is held.
    stats = activation_stats(model, x, layers=layers, batch_size=batch_size)
    out = {}
    for n, s in stats.items():
        hit = s.near_bound if s.bound is not None else s.active
        out[n] = np.flatnonzero(hit >= fraction)
    return out
