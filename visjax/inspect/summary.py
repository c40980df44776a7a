"""Model summary: per layer path, shapes, parameters, memory and FLOPs from XLA's cost analysis.

Everything here is abstract: the model is traced (:meth:`visjax.Model.trace`) and each layer's
computation is lowered (``jax.jit(f).lower(...)``, never compiled or run) so that XLA's
``cost_analysis`` counts its floating-point operations.

A layer's computation is found in the traced program. Under NNX and Linen the equations traced
inside a submodule's ``__call__`` belong to it (the submodule's call frame is recorded in each
equation's traceback), so ``"stages.0"`` holds all its blocks, and a block holds its convolutions
and its own additions and ReLUs. For a plain function (and a value named with
:func:`visjax.tag` inside a module) a layer is what produces the named value since the previous
named value. Only equations that the layer's output depends on count.
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import jaxlib
import numpy as np

import visjax.model as _model_module
from visjax.base.checks import check_positive_int
from visjax.model import Model, as_model

_MODEL_FILE = os.path.realpath(_model_module.__file__)
_JAX_DIRS = tuple(os.path.realpath(os.path.dirname(m.__file__)) + os.sep for m in (jax, jaxlib))


class SummaryRow(NamedTuple):
    """One layer of a :func:`summary`.

    Attributes:
      path: the layer path (``"stages.0.blocks.1.conv2"``; ``"name#k"`` for a later call).
      depth: nesting level: how many other layer paths enclose this one (0 at the top).
      input_shape: shape of the layer's (first) input activation for the summarised batch, or
        ``None`` where it could not be isolated.
      output_shape: shape of the layer's output for the summarised batch (batch first).
      dtype: the output's dtype.
      params: parameter entries the layer reads (trainable and non-trainable); a parameter
        shared by two layers shows in both rows but is counted once in the totals.
      trainable_params: of those, the trainable ones (``model.params``).
      param_bytes: bytes of those parameters.
      activation_bytes: bytes of the output, per example.
      flops: forward floating-point operations per example from XLA's cost analysis, or
        ``None`` ("n/a") when XLA reports none or the computation could not be isolated.
      flops_train: forward plus backward (the vector-Jacobian product with respect to the
        parameters and the input activations) per example, or ``None``.
    """

    path: str
    depth: int
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...]
    dtype: str
    params: int
    trainable_params: int
    param_bytes: int
    activation_bytes: int
    flops: int | None
    flops_train: int | None

    @property
    def shape(self) -> tuple[int, ...]:
        """The output shape (the name earlier versions used)."""
        return self.output_shape


_RECORD_FIELDS = SummaryRow._fields
LayerRow = SummaryRow  # the name earlier versions used


class Summary:
    """What :func:`summary` returns: one :class:`SummaryRow` per layer, and totals.

    Attributes:
      rows: the layers in the order the forward reaches them (nested layers after their parent's
        earlier children, before the parent's own row when the parent ends later).
      total_params: parameter entries of the model, each shared parameter counted once
        (trainable plus floating non-trainable state such as batch statistics).
      trainable_params: entries of ``model.params``.
      param_bytes: bytes of those parameters.
      activation_bytes: bytes of all distinct layer outputs, per example (a parent whose output
        is its last child's is counted once).
      flops: forward FLOPs of the whole model per example (XLA), or ``None``.
      flops_train: forward plus backward (gradient with respect to the parameters) per example,
        or ``None``.

    Example:
      >>> from visjax.zoo import digits_cnn
      >>> s = summary(digits_cnn("nnx"))
      >>> s.to_text().splitlines()[2].split()[:5]
      ['conv1', '(1,', '8,', '8,', '1)']
      >>> s.to_records()[2]["flops"], s.to_html().startswith("<table")
      (650, True)
    """

    def __init__(
        self,
        rows: Sequence[SummaryRow],
        *,
        total_params: int,
        trainable_params: int,
        param_bytes: int,
        activation_bytes: int,
        flops: int | None,
        flops_train: int | None,
    ) -> None:
        self.rows = list(rows)
        self.total_params = total_params
        self.trainable_params = trainable_params
        self.param_bytes = param_bytes
        self.activation_bytes = activation_bytes
        self.flops = flops
        self.flops_train = flops_train

    @property
    def layers(self) -> list[SummaryRow]:
        """The rows (the name earlier versions used)."""
        return self.rows

    def __repr__(self) -> str:
        return (
            f"Summary({len(self.rows)} layers, total_params={self.total_params:,}, "
            f"flops={_fmt(self.flops)})"
        )

    def to_records(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (one per layer, keys the :class:`SummaryRow` fields), e.g.
        for ``pandas.DataFrame(summary.to_records())``."""
        return [dict(zip(_RECORD_FIELDS, row, strict=True)) for row in self.rows]

    def _table(self) -> tuple[list[str], list[list[str]], list[str]]:
        header = ["layer", "input shape", "output shape", "dtype", "params", "param bytes"]
        header += ["act. bytes", "FLOPs", "FLOPs train"]
        body = [
            [
                "  " * r.depth + r.path,
                _shape(r.input_shape),
                _shape(r.output_shape),
                r.dtype,
                f"{r.params:,}",
                f"{r.param_bytes:,}",
                f"{r.activation_bytes:,}",
                _fmt(r.flops),
                _fmt(r.flops_train),
            ]
            for r in self.rows
        ]
        total = ["total", "", "", "", f"{self.total_params:,}", f"{self.param_bytes:,}"]
        total += [f"{self.activation_bytes:,}", _fmt(self.flops), _fmt(self.flops_train)]
        return header, body, total

    def to_text(self) -> str:
        """The summary as a fixed-width table, nested layers indented by their depth.

        FLOPs are per example; ``n/a`` where XLA reports none.
        """
        header, body, total = self._table()
        widths = [max(len(r[i]) for r in (header, *body, total)) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = [
                c.rjust(w) if i >= 4 else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells[1:], widths[1:], strict=True), start=1)
            ]
            return "  ".join([first, *rest]).rstrip()

        rule = "-" * len(line(header))
        trainable = f"trainable params: {self.trainable_params:,}"
        return "\n".join([line(header), rule, *map(line, body), rule, line(total), trainable])

    def to_html(self) -> str:
        """The summary as an HTML ``<table class="visjax-summary">`` (text escaped), nested rows
        indented by depth and marked ``data-depth`` so a page can fold them."""
        header, body, total = self._table()
        out = ['<table class="visjax-summary">', "<thead><tr>"]
        out += [f"<th>{html.escape(h)}</th>" for h in header]
        out.append("</tr></thead><tbody>")
        for row, cells in zip(self.rows, body, strict=True):
            pad = f' style="padding-left:{1.2 * row.depth:.1f}em"'
            out.append(f'<tr data-depth="{row.depth}"><td{pad}>{html.escape(row.path)}</td>')
            out += [f"<td>{html.escape(c)}</td>" for c in cells[1:]]
            out.append("</tr>")
        out.append("</tbody><tfoot><tr>")
        out += [f"<td>{html.escape(c)}</td>" for c in total]
        out.append("</tr></tfoot></table>")
        return "\n".join(out)


def _fmt(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


def _shape(s: tuple[int, ...] | None) -> str:
    return "?" if s is None else "(" + ", ".join(map(str, s)) + ")"


# --------------------------------------------------------------------------- the traced program


class _Layer(NamedTuple):
    key: str  # layer path, "#k" for later calls
    index: int | None  # index of its `name` equation in the top-level jaxpr (None: nested)
    eqns: tuple[int, ...]  # top-level equations of its computation, in order
    free: tuple[Any, ...]  # variables the computation reads but does not define
    out: Any  # the variable holding its output (the `name` equation's input)


class _Program(NamedTuple):
    jaxpr: Any  # the open top-level jaxpr
    n_params: int
    n_state: int
    layers: dict[str, _Layer]


@functools.lru_cache(maxsize=4096)
def _realpath(file_name: str) -> str:
    return os.path.realpath(file_name)


def _outside_jax(frame: Any) -> bool:
    return not _realpath(frame.file_name).startswith(_JAX_DIRS)


def _frames(eqn: Any) -> list[Any]:
    tb = eqn.source_info.traceback
    return list(tb.frames) if tb is not None else []


def _is_scope(frame: Any) -> bool:
    return frame.function_name == "_call_in_scope" and (_realpath(frame.file_name) == _MODEL_FILE)


def _from_scope(frames: list[Any]) -> bool:
    """Whether a `name` equation was emitted by the adapters for a submodule's output."""
    caller = next((f for f in frames if _outside_jax(f)), None)
    return caller is not None and _is_scope(caller)


def _program(model: Model, x: jax.ShapeDtypeStruct) -> _Program:
    """The traced forward with each layer's computation isolated."""
    trace = model.trace(x)
    jx = trace.jaxpr.jaxpr
    keys: dict[int, str] = {}
    counts: dict[str, int] = {}

    def walk(j: Any, top: bool) -> None:  # the same order as visjax.base.interpret.names_in
        for i, eqn in enumerate(j.eqns):
            if eqn.primitive.name == "name":
                name = eqn.params["name"]
                k = counts.get(name, 0)
                counts[name] = k + 1
                key = name if k == 0 else f"{name}#{k}"
                if top:
                    keys[i] = key
                else:
                    nested.append(key)
            for sub in jcore.jaxprs_in_params(eqn.params):
                walk(getattr(sub, "jaxpr", sub), False)

    nested: list[str] = []
    walk(jx, True)
    frames = [_frames(e) for e in jx.eqns]
    depth = [sum(map(_is_scope, f)) for f in frames]
    module_out = [i in keys and _from_scope(frames[i]) for i in range(len(jx.eqns))]
    layers: dict[str, _Layer] = {}
    for i, key in keys.items():
        d = depth[i]
        j = i - 1
        while j >= 0:
            if depth[j] < d or (
                j in keys and (depth[j] == d and module_out[j] if module_out[i] else True)
            ):
                break
            j -= 1
        out = jx.eqns[i].invars[0]
        layers[key] = _layer(key, i, jx, range(j + 1, i), out)
    for key in nested:
        layers[key] = _Layer(key, None, (), (), None)
    layers = {k: layers[k] for k in trace.layers if k in layers}
    n_params = len(jax.tree.leaves(model.params))
    return _Program(jx, n_params, len(jax.tree.leaves(model.state)), layers)


def _layer(key: str, index: int, jx: Any, candidates: range, out: Any) -> _Layer:
    needed = {out} if isinstance(out, jcore.Var) else set()
    chosen = []
    for i in reversed(candidates):
        eqn = jx.eqns[i]
        if any(v in needed for v in eqn.outvars):
            chosen.append(i)
            needed.update(v for v in eqn.invars if isinstance(v, jcore.Var))
    chosen.reverse()
    defined: set[Any] = set()
    free: list[Any] = []
    for i in chosen:
        eqn = jx.eqns[i]
        free += [v for v in eqn.invars if isinstance(v, jcore.Var) and v not in defined]
        defined.update(eqn.outvars)
    if isinstance(out, jcore.Var) and out not in defined:
        free.append(out)
    return _Layer(key, index, tuple(chosen), tuple(dict.fromkeys(free)), out)


def _bind(eqn: Any, invals: list[Any]) -> list[Any]:
    params = eqn.primitive.get_bind_params(eqn.params)
    subfuns: Sequence[Any] = ()
    if isinstance(params, tuple):  # older JAX returned (subfuns, params)
        subfuns, params = params
    out = eqn.primitive.bind(*subfuns, *invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _as_function(eqns: Sequence[Any], free: Sequence[Any], outs: Sequence[Any]) -> Callable:
    """The equations as a function of the free variables, returning ``outs``."""

    def f(*vals: Any) -> Any:
        env = dict(zip(free, vals, strict=True))
        for eqn in eqns:
            invals = [v.val if isinstance(v, jcore.Literal) else env[v] for v in eqn.invars]
            env.update(zip(eqn.outvars, _bind(eqn, invals), strict=True))
        return [o.val if isinstance(o, jcore.Literal) else env[o] for o in outs]

    return f


def _spec(v: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype)


def _cost(fn: Callable, specs: Sequence[Any]) -> int | None:
    try:
        analysis = jax.jit(fn).lower(*specs).cost_analysis()
    except Exception:  # a layer XLA cannot lower or cost is reported as n/a
        return None
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    return round(float(analysis["flops"]))


def _costs(fn: Callable, free: Sequence[Any], diff: Sequence[int]) -> tuple[int | None, ...]:
    """Forward and forward-plus-backward FLOPs of ``fn`` (differentiated in args ``diff``)."""
    specs = [_spec(v) for v in free]
    forward = _cost(fn, specs)
    if not diff:
        return forward, forward
    out_specs = jax.eval_shape(fn, *specs)

    def train(vals: list[Any], cts: list[Any]) -> Any:
        def g(*d: Any) -> Any:
            v = list(vals)
            for i, di in zip(diff, d, strict=True):
                v[i] = di
            return fn(*v)

        out, pull = jax.vjp(g, *[vals[i] for i in diff])
        return out, pull(cts)

    return forward, _cost(train, [specs, out_specs])


def _floating(v: Any) -> bool:
    return jnp.issubdtype(v.aval.dtype, jnp.inexact)


# --------------------------------------------------------------------------- the public entry


def _concrete_dtype(want: Any) -> Any:
    """A concrete dtype of the kind ``want`` (``None``: float32; ``jnp.integer``: int32)."""
    if want is None:
        return jnp.float32
    for c in (jnp.float32, jnp.int32, jnp.uint32, jnp.bool_):
        if jnp.issubdtype(c, want):
            return c
    return want


def batch_spec(model: Model, x: Any) -> jax.ShapeDtypeStruct:
    """The batch that :func:`summary` and :func:`visjax.inspect.graph` describe, checked.

    Args:
      model: the model (its ``input_shape``/``input_dtype`` fill in and check ``x``).
      x: an array, a :class:`jax.ShapeDtypeStruct`, a shape (a batch's, or one example's when
        the model declares ``input_shape``), or ``None`` for a batch of one of ``input_shape``.

    Returns:
      A :class:`jax.ShapeDtypeStruct` of the batch.

    Raises:
      ValueError: ``x`` has the wrong shape, or is ``None`` for a model without a complete
        ``input_shape``.
      TypeError: ``x`` is not array-like or has the wrong dtype.

    Example:
      >>> from visjax.zoo import digits_cnn
      >>> batch_spec(digits_cnn("nnx"), (8, 8, 1))
      ShapeDtypeStruct(shape=(1, 8, 8, 1), dtype=float32)
    """
    dtype = _concrete_dtype(model.input_dtype)
    if x is None:
        if model.input_shape is None or None in model.input_shape:
            raise ValueError(
                "`x` is needed: the model declares no complete `input_shape` (pass an example "
                "batch, a jax.ShapeDtypeStruct or a shape)"
            )
        x = jax.ShapeDtypeStruct((1, *model.input_shape), dtype)
    elif isinstance(x, tuple | list) and all(isinstance(d, int | np.integer) for d in x):
        shape = tuple(int(d) for d in x)
        if model.input_shape is not None and len(shape) == len(model.input_shape):
            shape = (1, *shape)  # one example's shape
        x = jax.ShapeDtypeStruct(shape, dtype)
    elif not isinstance(x, jax.ShapeDtypeStruct):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            try:
                x = np.asarray(x)
            except (TypeError, ValueError) as e:
                raise TypeError(f"`x` must be an array, a shape or None, got {x!r}") from e
        x = jax.ShapeDtypeStruct(tuple(x.shape), jnp.result_type(x))
    model.check_x(x)
    return x


def check_depth(depth: Any) -> int | None:
    """``depth`` as an int >= 0 or ``None``; raises ``ValueError`` naming ``depth`` otherwise.

    Example:
      >>> check_depth(2), check_depth(None)
      (2, None)
    """
    return None if depth is None else check_positive_int(depth, "depth", minimum=0)


def layer_depths(paths: Sequence[str]) -> dict[str, int]:
    """Nesting level of each layer path: how many other (base) paths are its proper prefixes.

    Example:
      >>> layer_depths(["a.b", "a", "c", "a.b#1"])
      {'a.b': 1, 'a': 0, 'c': 0, 'a.b#1': 1}
    """
    bases = {p.split("#")[0] for p in paths}
    return {p: sum(1 for b in bases if p.split("#")[0].startswith(b + ".")) for p in paths}


def summary(model: Any, x: Any = None, *, depth: int | None = None) -> Summary:
    """Per layer: shapes, parameters, bytes and FLOPs (forward, forward + backward), abstractly.

    FLOPs come from XLA's cost analysis of the lowered (never compiled) computation of exactly
    that layer, per example. XLA counts 2 per multiply-add and 1 per elementwise operation, so a
    dense layer ``(m, k) @ (k, n)`` is ``2 m k n``, a convolution counts only the in-bounds
    taps of a padded (SAME) kernel, and **bias additions are counted** (one FLOP per output
    entry: ``2 m k n + m n`` for a dense layer with bias); ReLU's ``max`` counts one per entry.
    Broadcasts and reshapes cost nothing. ``None`` (shown ``n/a``) when XLA reports nothing.
    The backward pass is the vector-Jacobian product of the layer with respect to its
    parameters and its input activations (not the model's input ``x``).

    Parameters are those the layer's computation reads, so a layer that uses another's weights
    (a tied embedding) shows them, while the totals count every parameter once (NNX keeps one
    copy of a shared variable in ``model.params``).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: an example batch ``(N, *input_shape)``, a :class:`jax.ShapeDtypeStruct`, a shape
        (a batch's, or one example's when the model declares ``input_shape``), or ``None`` to use
        the model's declared ``input_shape`` with a batch of one. Only shape and dtype matter.
      depth: keep the layers nested at most this deep (0: the top-level layers); ``None`` keeps
        all. Totals always cover the whole model.

    Returns:
      A :class:`Summary` (``to_text()``, ``to_records()``, ``to_html()``).

    Raises:
      ValueError: ``depth`` is negative or not an int, or ``x`` has the wrong shape (the message
        names the argument).
      TypeError: ``x`` has the wrong dtype.

    Example:
      >>> from visjax.zoo import digits_cnn
      >>> s = summary(digits_cnn("nnx"))
      >>> s.total_params, [r.path for r in s.rows]
      (5130, ['conv1', 'conv2', 'fc'])
      >>> s.rows[-1].flops  # 2 * 32 * 10 multiply-adds + 10 bias adds
      650
    """
    depth = check_depth(depth)
    model = as_model(model)
    spec = batch_spec(model, x)
    shapes = model.layer_shapes(spec)
    one = jax.ShapeDtypeStruct((1, *spec.shape[1:]), spec.dtype)
    prog = _program(model, one)
    prog_n = prog if spec.shape[0] == 1 else _program(model, spec)
    invars = prog.jaxpr.invars
    index = {v: i for i, v in enumerate(invars)}
    n_params, n_state = prog.n_params, prog.n_state
    x_var = invars[-1]

    def counted(i: int) -> bool:  # a parameter entry (trainable, or floating state)
        return i < n_params or (i < n_params + n_state and _floating(invars[i]))

    def size(v: Any) -> int:
        return int(np.prod(v.aval.shape))

    def nbytes(v: Any) -> int:
        return size(v) * np.dtype(v.aval.dtype).itemsize

    names = _ordered(prog, layer_depths(list(shapes)))
    depths = layer_depths(names)
    param_paths = _param_paths(model)
    rows: list[SummaryRow] = []
    cost_cache: dict[Any, tuple[int | None, ...]] = {}
    for key in names:
        if depth is not None and depths[key] > depth:
            continue
        layer = prog.layers.get(key)
        out = shapes[key]
        per_example = int(np.prod(out.shape[1:])) * np.dtype(out.dtype).itemsize
        if layer is None or layer.index is None:
            base = key.split("#")[0]
            own = [i for i, p in enumerate(param_paths) if p == base or p.startswith(base + ".")]
            pvars = [invars[i] for i in own if counted(i)]
            flops = flops_train = in_shape = None
        else:
            pvars = [v for v in layer.free if v in index and counted(index[v])]
            in_shape = _input_shape(prog_n, key)
            diff = [
                i
                for i, v in enumerate(layer.free)
                if _floating(v) and v is not x_var and (v not in index or index[v] < n_params)
            ]
            eqns = [prog.jaxpr.eqns[i] for i in layer.eqns]
            # A parent whose output is its only child's renamed has the child's computation.
            own = tuple(i for i in layer.eqns if prog.jaxpr.eqns[i].primitive.name != "name")
            sig = (own, layer.free, tuple(diff))
            if sig not in cost_cache:
                fn = _as_function(eqns, layer.free, [layer.out])
                cost_cache[sig] = _costs(fn, layer.free, diff)
            flops, flops_train = cost_cache[sig]
        trainable = sum(size(v) for v in pvars if index[v] < n_params)
        rows.append(
            SummaryRow(
                key,
                depths[key],
                in_shape,
                tuple(out.shape),
                str(np.dtype(out.dtype)),
                sum(size(v) for v in pvars),
                trainable,
                sum(nbytes(v) for v in pvars),
                per_example,
                flops,
                flops_train,
            )
        )
    all_params = [v for i, v in enumerate(invars) if i < n_params + n_state and counted(i)]
    n_consts = len(prog.jaxpr.constvars)
    whole = _as_function(prog.jaxpr.eqns, [*prog.jaxpr.constvars, *invars], prog.jaxpr.outvars)
    diff = [n_consts + i for i in range(n_params) if _floating(invars[i])]
    total_flops, total_train = _costs(whole, [*prog.jaxpr.constvars, *invars], diff)
    return Summary(
        rows,
        total_params=sum(size(v) for v in all_params),
        trainable_params=sum(size(invars[i]) for i in range(n_params)),
        param_bytes=sum(nbytes(v) for v in all_params),
        activation_bytes=_activation_bytes(prog, shapes),
        flops=total_flops,
        flops_train=total_train,
    )


def _ordered(prog: _Program, depths: dict[str, int]) -> list[str]:
    """Layer paths with each parent before its children: by where the computation starts."""
    trace_order = list(prog.layers)

    def start(key: str) -> tuple[float, int, int]:
        layer = prog.layers.get(key)
        first = float("inf")
        if layer is not None and layer.index is not None:
            first = layer.eqns[0] if layer.eqns else layer.index
        position = trace_order.index(key) if key in prog.layers else len(trace_order)
        return first, depths[key], position

    return sorted(depths, key=start)


def _input_shape(prog: _Program, key: str) -> tuple[int, ...] | None:
    """Shape of the first activation (not a parameter, state or constant) the layer reads."""
    invars = prog.jaxpr.invars
    skip = set(invars[: prog.n_params + prog.n_state]) | set(prog.jaxpr.constvars)
    acts = [v for v in prog.layers[key].free if v not in skip]
    return tuple(acts[0].aval.shape) if acts else None


def _param_paths(model: Model) -> list[str]:
    """Dotted paths of the parameter leaves, then the state leaves (the trace's argument order)."""

    def key(k: Any) -> str:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                return str(getattr(k, attr))
        return str(k)

    return [
        ".".join(map(key, path))
        for tree in (model.params, model.state)
        for path, _ in jax.tree_util.tree_leaves_with_path(tree)
    ]


def _activation_bytes(prog: _Program, shapes: dict[str, jax.ShapeDtypeStruct]) -> int:
    """Bytes per example of the distinct layer outputs (a name of a name is the same buffer)."""
    named = {
        eqn.outvars[0]: eqn.invars[0] for eqn in prog.jaxpr.eqns if eqn.primitive.name == "name"
    }
    total = 0
    for key, spec in shapes.items():
        layer = prog.layers.get(key)
        if layer is not None and layer.index is not None and layer.out in named:
            continue  # this layer's output is another layer's output, renamed
        total += int(np.prod(spec.shape[1:])) * np.dtype(spec.dtype).itemsize
    return total
