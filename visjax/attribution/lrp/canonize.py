"""LRP canonisation: inference BatchNorms merged into the convolution or dense layer before them.

LRP's rules are defined for linear layers followed by a non-linearity; a BatchNorm in inference
mode is an affine map per channel, ``y = (h - mean) * gamma / sqrt(var + eps) + beta``, so when it
directly follows a convolution or dense layer ``h = x W + b`` the two are one linear layer
(Montavon et al. 2019, section 10.2; zennit's ``MergeBatchNorm``):

.. math::

   W' = W \\cdot s, \\qquad b' = (b - \\text{mean}) \\cdot s + \\beta, \\qquad
   s = \\gamma / \\sqrt{\\text{var} + \\epsilon}

per output channel. :func:`merge_batchnorm` writes ``W'`` and ``b'`` into the layer and makes
the BatchNorm the identity (scale 1, bias 0, mean 0, variance ``1 - eps``), so the program, its
layer paths and the parameter tree are unchanged and only values change.

Which BatchNorm follows which layer is read from the traced program: the BatchNorm's tagged
input must be the tagged output of a layer whose own computation ends in a ``conv_general_dilated``
or ``dot_general`` (plus its bias), reached through element-wise affine operations only (the
BatchNorm's own subtract, multiply and add), with that layer's output used by nothing else. The
BatchNorm and the layer are recognised by their parameters: an NNX or Linen submodule with
``scale``/``bias`` parameters and ``mean``/``var`` batch statistics (Flax's ``BatchNorm``,
normalising the last axis), and one with a ``kernel`` (and usually a ``bias``) whose last axis is
the channel. Left alone, and documented as such:

* a BatchNorm not directly preceded by a convolution or dense layer (a ReLU or an addition in
  between, a layer whose output is used elsewhere too, a layer or BatchNorm called more than once);
* every BatchNorm of a plain function (``as_model(apply, params)``): its statistics are not told
  apart from other parameters;
* a BatchNorm inside a nested ``jit`` whose operands cannot be traced to the model's parameters.

Where the layer has no bias, the scale is still folded into its kernel and the BatchNorm keeps the
shift ``b'`` as its bias (scale 1, mean 0, variance ``1 - eps``).

References:
  Montavon, Binder, Lapuschkin, Samek, Müller. "Layer-wise relevance propagation: an overview",
  in Explainable AI, Springer LNCS 11700, 2019.
  https://doi.org/10.1007/978-3-030-28954-6_10
"""

from __future__ import annotations

import collections
import weakref
from typing import Any, NamedTuple

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from visjax.model import Model, as_model

# Element-wise or shape-only primitives allowed between a layer's output and a BatchNorm's.
_AFFINE = {"add", "sub", "mul", "div", "neg", "reshape", "broadcast_in_dim", "convert_element_type"}
_SHAPE = {"reshape", "broadcast_in_dim", "convert_element_type", "squeeze", "expand_dims", "copy"}
_LINEAR = {"conv_general_dilated", "dot_general"}


class _Pair(NamedTuple):
    layer: str  # the convolution or dense layer's path
    norm: str  # the BatchNorm's path
    eps: float


def _key(k: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _norm_path(path: Any) -> tuple[str, ...]:
    parts = tuple(_key(k) for k in path)
    return parts[:-1] if parts and parts[-1] == "value" else parts  # an NNX Variable's value


def _leaves(tree: Any, where: str) -> dict[tuple[str, ...], Any]:
    """``{(*layer parts, leaf name): value}``; a state's collection name (Linen) dropped."""
    out = {}
    for path, v in jax.tree_util.tree_leaves_with_path(tree):
        p = _norm_path(path)
        if where == "state" and p and p[0] in ("batch_stats",):
            p = p[1:]
        out[p] = v
    return out


def _is_const(a: Any) -> bool:
    return isinstance(a, jcore.Literal)


def _find_pairs(model: Model, x: Any) -> list[_Pair]:
    closed = model.trace(x).jaxpr
    jaxpr = closed.jaxpr
    params = _leaves(model.params, "params")
    state = _leaves(model.state, "state")
    n_p, n_s = len(jax.tree.leaves(model.params)), len(jax.tree.leaves(model.state))
    keys = [_norm_path(p) for p, _ in jax.tree_util.tree_leaves_with_path(model.params)]
    keys += [
        p[1:] if p and p[0] == "batch_stats" else p
        for p in (_norm_path(q) for q, _ in jax.tree_util.tree_leaves_with_path(model.state))
    ]
    # Each jaxpr variable: where it comes from, when only from one parameter (through reshapes).
    leaf_vars = jaxpr.invars[: n_p + n_s]
    origin: dict[Any, tuple[str, ...]] = dict(zip(leaf_vars, keys, strict=True))
    # Variables computed from the parameters and statistics alone (no dependence on x).
    const: set[Any] = set(leaf_vars)
    producer: dict[Any, jcore.JaxprEqn] = {}
    uses: dict[Any, int] = {}
    names: dict[str, list[jcore.JaxprEqn]] = {}
    eps_of: dict[tuple[str, ...], float] = {}
    for eqn in jaxpr.eqns:
        for v in eqn.invars:
            if not _is_const(v):
                uses[v] = uses.get(v, 0) + 1
        for o in eqn.outvars:
            producer[o] = eqn
        if eqn.invars and all(_is_const(v) or v in const for v in eqn.invars):
            const.update(eqn.outvars)
        prim = eqn.primitive.name
        if prim in _SHAPE and not _is_const(eqn.invars[0]) and eqn.invars[0] in origin:
            origin[eqn.outvars[0]] = origin[eqn.invars[0]]
        if prim == "add" and len(eqn.invars) == 2:
            a, b = eqn.invars
            for u, w in ((a, b), (b, a)):
                if not _is_const(u) and u in origin and origin[u][-1] == "var" and _is_const(w):
                    eps_of[origin[u][:-1]] = float(np.asarray(w.val))
        if prim == "name":
            names.setdefault(eqn.params["name"], []).append(eqn)
    for v in jaxpr.outvars:
        if not _is_const(v):
            uses[v] = uses.get(v, 0) + 1

    def single(path: str) -> jcore.JaxprEqn | None:
        found = names.get(path, [])
        return found[0] if len(found) == 1 and f"{path}#1" not in names else None

    def is_linear(eqn: jcore.JaxprEqn) -> bool:
        """The tagged value comes from a conv/dot (then bias adds and reshapes)."""
        v = eqn.invars[0]
        while v in producer:
            e = producer[v]
            prim = e.primitive.name
            if prim in _LINEAR:
                return True
            live = [u for u in e.invars if not _is_const(u) and u not in const]
            if prim not in _AFFINE or len(live) != 1:
                return False
            v = live[0]
        return False

    pairs = []
    for name in names:
        parts = tuple(name.split("."))
        if (*parts, "mean") not in state or (*parts, "var") not in state:
            continue
        bn = single(name)
        if bn is None or parts not in eps_of:
            continue
        # Walk back from the BatchNorm's input through its element-wise affine ops.
        v = bn.invars[0]
        layer = None
        while v in producer:
            e = producer[v]
            if e.primitive.name == "name":
                layer = e
                break
            live = [u for u in e.invars if not _is_const(u) and u not in const]
            if e.primitive.name not in _AFFINE or len(live) != 1:
                break
            v = live[0]
        if layer is None or uses.get(layer.outvars[0], 0) != 1:
            continue
        lname = layer.params["name"]
        lparts = tuple(lname.split("."))
        kernel = params.get((*lparts, "kernel"))
        if kernel is None or single(lname) is None or not is_linear(layer):
            continue
        if np.shape(kernel)[-1] != np.shape(state[(*parts, "mean")])[-1]:
            continue
        pairs.append(_Pair(lname, name, eps_of[parts]))
    return pairs


def _f(a: Any) -> jax.Array:
    """A parameter as a float32 array at least (float64 where it is), traced values included."""
    return jnp.asarray(a, jnp.promote_types(jnp.result_type(a), jnp.float32))


def merge_batchnorm(model: Any, *, x: Any = None) -> Model:
    """The same model with each inference BatchNorm folded into the conv/dense layer before it.

    For every BatchNorm that directly follows a convolution or dense layer (see
    :mod:`visjax.attribution.lrp.canonize` for how the pairs are found and which BatchNorms are
    left alone), the layer's kernel and bias become, per output channel,
    ``W' = W * s`` and ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``, and the
    BatchNorm becomes the identity: scale 1, bias 0, mean 0, variance ``1 - eps``. The program and
    the layer paths are unchanged; the outputs equal the original's up to rounding. The values are
    computed with ``jax.numpy`` in float32 (or the parameters' wider dtype), so the function
    works under ``jit`` (the pairs come from the abstract trace), and stored in each parameter's
    dtype. A model without a recognised BatchNorm is returned unchanged (the same object).
    The pairs are found once per program (forward and shapes) and the merged values computed once
    per set of parameter arrays (held by weak references; traced parameters are not cached), so
    repeated calls on the same model cost a lookup.

    Args:
      model: anything :func:`visjax.as_model` accepts (NNX or Linen modules: plain functions'
        BatchNorms are not recognised).
      x: an example batch (or :class:`jax.ShapeDtypeStruct`) to trace the program with; needed
        only when the model's ``input_shape`` is unknown or has ``None`` entries.

    Returns:
      The :class:`~visjax.Model` with merged parameters and statistics.

    Raises:
      ValueError: ``x`` is needed (unknown input shape) but not given, or does not fit the model.

    Example:
      >>> import jax
      >>> from visjax.zoo import digits_resnet
      >>> m = digits_resnet(norm=True)
      >>> merged = merge_batchnorm(m)
      >>> x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
      >>> bool(abs(merged(x) - m(x)).max() < 1e-4)
      True
    """
    model = as_model(model)
    if model.kind == "function":
        return model
    if x is None:
        shape = model.input_shape
        if shape is None or None in shape:
            raise ValueError(
                "`x` is needed to trace a model whose input shape is unknown: pass an example batch"
            )
        x = jax.ShapeDtypeStruct((1, *shape), model.input_dtype or jnp.float32)
    elif not isinstance(x, jax.ShapeDtypeStruct):
        x = model.check_x(x)
    leaves = jax.tree.leaves((model.params, model.state))
    hit = _MERGED.get(model.forward, leaves)
    if hit is not None:
        if hit[0] is None:
            return model
        return model.replace(params=hit[0], state=hit[1])
    pairs = _pairs(model, x)
    if not pairs:
        _MERGED.put(model.forward, leaves, (None, None))
        return model
    merged_params, merged_state = _merge(model, pairs)
    _MERGED.put(model.forward, leaves, (merged_params, merged_state))
    return model.replace(params=merged_params, state=merged_state)


class _Cache:
    """Merged parameters per model: keyed by the forward and the parameter arrays' identities
    (held by weak references, so a model's arrays are not kept alive), at most ``size`` entries.
    Traced parameters (under ``jit``) are never cached: their values are not known."""

    def __init__(self, size: int = 8):
        self.size = size
        self.entries: collections.OrderedDict[Any, tuple] = collections.OrderedDict()

    @staticmethod
    def _key(forward: Any, leaves: list) -> Any:
        if any(isinstance(a, jax.core.Tracer) for a in leaves):
            return None
        return (forward, tuple(id(a) for a in leaves))

    def get(self, forward: Any, leaves: list) -> Any:
        key = self._key(forward, leaves)
        entry = None if key is None else self.entries.get(key)
        if entry is None or any(r() is not a for r, a in zip(entry[0], leaves, strict=True)):
            return None  # an id reused by a new array
        self.entries.move_to_end(key)
        return entry[1]

    def put(self, forward: Any, leaves: list, value: Any) -> None:
        key = self._key(forward, leaves)
        if key is None:
            return
        try:
            refs = tuple(weakref.ref(a) for a in leaves)
        except TypeError:  # a leaf that takes no weak reference (a Python scalar)
            return
        self.entries[key] = (refs, value)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


_MERGED = _Cache()


_PAIRS: collections.OrderedDict[Any, list[_Pair]] = collections.OrderedDict()


def _pairs(model: Model, x: Any) -> list[_Pair]:
    """The (layer, BatchNorm) pairs, found once per program (the forward and the avals)."""

    def aval(a: Any) -> tuple:
        return (np.shape(a), str(jnp.result_type(a)))

    tree = (model.params, model.state)
    key = (model.forward, jax.tree.structure(tree), tuple(map(aval, jax.tree.leaves(tree))))
    key = (*key, aval(x))
    if key not in _PAIRS:
        _PAIRS[key] = _find_pairs(model, x)
        while len(_PAIRS) > 64:
            _PAIRS.popitem(last=False)
    return _PAIRS[key]


def _merge(model: Model, pairs: list[_Pair]) -> tuple[Any, Any]:
    params = _leaves(model.params, "params")
    state = _leaves(model.state, "state")
    new: dict[tuple[str, tuple[str, ...]], jax.Array] = {}
    for pair in pairs:
        lp, bp = tuple(pair.layer.split(".")), tuple(pair.norm.split("."))
        kernel = params[(*lp, "kernel")]
        mean = _f(state[(*bp, "mean")])
        var = _f(state[(*bp, "var")])
        scale = params.get((*bp, "scale"))
        bias = params.get((*bp, "bias"))
        gamma = jnp.ones_like(mean) if scale is None else _f(scale)
        beta = jnp.zeros_like(mean) if bias is None else _f(bias)
        s = gamma / jnp.sqrt(var + pair.eps)
        shift = beta - mean * s
        new["params", (*lp, "kernel")] = _f(kernel) * s
        b = params.get((*lp, "bias"))
        if b is not None:
            new["params", (*lp, "bias")] = _f(b) * s + shift
            if bias is not None:
                new["params", (*bp, "bias")] = jnp.zeros_like(mean)
        elif bias is not None:
            new["params", (*bp, "bias")] = shift  # no bias to fold the shift into
        else:
            new["params", (*lp, "kernel")] = _f(kernel)  # nothing merged
            continue
        if scale is not None:
            new["params", (*bp, "scale")] = jnp.ones_like(mean)
        new["state", (*bp, "mean")] = jnp.zeros_like(mean)
        new["state", (*bp, "var")] = jnp.full_like(mean, 1.0 - pair.eps)

    def put(where: str):
        def one(path: Any, leaf: Any) -> Any:
            p = _norm_path(path)
            if where == "state" and p and p[0] == "batch_stats":
                p = p[1:]
            value = new.get((where, p))
            if value is None:
                return leaf
            return jnp.asarray(value, leaf.dtype)

        return one

    merged_params = jax.tree_util.tree_map_with_path(put("params"), model.params)
    merged_state = jax.tree_util.tree_map_with_path(put("state"), model.state)
    return merged_params, merged_state
