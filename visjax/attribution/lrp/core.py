"""Layer-wise relevance propagation on the traced program.

The model's forward is traced to a jaxpr (abstractly, cached) and re-evaluated equation by equation
with each operation on the path from the input to the output replaced by a function whose value is
the operation's and whose backward pass is the LRP rule's. The cotangent flowing backward is then
the relevance itself: ``jax.grad`` of the target logit (the output relevance is one at the target
logit, Zennit's one-hot ``attr_output``) with respect to the input gives the input relevance.
Everything is jittable and vmappable, and functional layers (a ``mean`` written in the forward)
are seen too.

What each operation on the path does (values that do not depend on the input, parameters and what
is computed from them alone, are evaluated as traced):

* ``dot_general`` / ``conv_general_dilated`` with one operand on the path: a linear layer, together
  with the ``add`` of a constant that follows it (its bias); the composite's rule for it (by the
  layer path of the ``name`` that tags its output, by first layer, by kind ``dense``/``conv``);
* ``add`` of two values on the path (residual sums): the norm rule, in proportion to the operands;
* ``reduce_sum`` / ``reduce_window_sum`` (a functional mean, average pooling): the norm rule, in
  proportion to the inputs. Zennit applies its ``Norm`` rule only to an average-pool *module*; a
  functional mean gets its plain gradient there, which spreads the relevance evenly over the
  inputs. visjax applies the norm rule to both, and stabilizes a mean's sum with ``n·ε`` (``n`` the
  literal it is divided by), which is Zennit's ``ε`` on the mean;
* ``reduce_window_max`` / ``reduce_max`` (max-pooling): winner-takes-all (the plain gradient, as
  Zennit) or proportional (the norm rule) by the composite's ``maxpool``;
* element-wise activations (a ``custom_jvp_call``/``custom_vjp_call`` with an element-wise body:
  ``jax.nn.relu``, GELU, ...; ``max``/``min`` against a constant, ``tanh``, ``logistic``) and
  element-wise affine operations with a constant operand (``add``, ``sub``, ``mul``, ``div``,
  ``neg``, an inference BatchNorm merged into its layer): pass-through;
* structural operations (``reshape``, ``transpose``, ``broadcast_in_dim``, ``slice``,
  ``concatenate``, ``pad``, ``squeeze``, ``convert_element_type``, layer names, ...): their plain
  gradient, which moves the relevance without changing it;
* ``jit``/``pjit`` calls are entered.

Any other primitive on the path (a product of two input-dependent values, softmax's ``exp``
followed by a division by a computed sum, a loop or branch) raises a ``ValueError`` naming it: LRP
never falls back silently to a plain gradient. The ``attn_lrp`` composite adds rules for those
that transformers need (tagged softmaxes, layer norms, products of two input-dependent values,
element-wise activations written out): see :mod:`visjax.attribution.lrp.transformer`.

References:
  Bach et al., PLoS ONE 2015; Montavon et al., "Layer-wise relevance propagation: an overview",
  2019; Kohlbrenner et al., IJCNN 2020; Anders et al., "Software for Dataset-wide XAI: From Local
  Explanations to Global Insights with Zennit, CoRelAy, and ViRelAy", 2021.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from visjax.attribution._jaxpr import elementwise_body
from visjax.attribution._target import (
    Target,
    check_layer,
    empty_batch,
    prepare,
    resolve,
    select_output,
)
from visjax.attribution.layer import layer_builder
from visjax.attribution.lrp import rules as R
from visjax.attribution.lrp import transformer as T
from visjax.attribution.lrp.canonize import merge_batchnorm
from visjax.attribution.lrp.composites import Composite, as_composite
from visjax.base import interpret
from visjax.model import Model

_CALLS = interpret._CALL_BODIES
_STRUCTURAL = frozenset(
    "reshape broadcast_in_dim transpose squeeze expand_dims slice dynamic_slice gather "
    "concatenate pad convert_element_type copy copy_p rev reduce_precision name".split()
)
_LINEAR = frozenset(("dot_general", "conv_general_dilated"))
_AFFINE = frozenset("add sub mul div max min".split())  # pass-through with one constant operand
_UNARY = frozenset("neg tanh logistic convert_element_type".split())
_SUMS = frozenset(("reduce_sum", "reduce_window_sum"))
_MAXES = frozenset(("reduce_window_max", "reduce_max"))
_ELEMENTWISE = frozenset(
    "add sub mul div neg sign select_n gt ge lt le eq ne and or not convert_element_type max min "
    "broadcast_in_dim stop_gradient copy floor ceil round clamp is_finite pow logistic tanh exp "
    "log log1p expm1 erf erfc sqrt rsqrt integer_pow square abs".split()
)


class _On:
    """A value on the path from the input: wraps the array so the interpreter can tell."""

    __slots__ = ("nonneg", "v")

    def __init__(self, v, nonneg: bool = False):
        self.v = v
        self.nonneg = nonneg  # known >= 0 from the program (a ReLU's output): rules skip x⁻


def _is_zero(v) -> bool:
    return isinstance(v, jcore.Literal) and np.ndim(v.val) == 0 and float(v.val) == 0.0


def _relu_body(eqn) -> bool:
    """Whether ``eqn`` is ``max(x, 0)`` (literal zero), directly or as a call holding only it."""
    prim = eqn.primitive.name
    if prim == "max":
        return any(_is_zero(v) for v in eqn.invars)
    if prim in _CALLS:
        body = interpret._open(eqn.params[_CALLS[prim]])[0]
        return len(body.eqns) == 1 and _relu_body(body.eqns[0])
    return False


def _unsupported(eqn, why: str) -> ValueError:
    return ValueError(
        f"lrp: the primitive `{eqn.primitive.name}` on the path from the input to the output has "
        f"no LRP rule ({why}); see visjax.attribution.lrp.core for the supported operations"
    )


def _elementwise_body(closed, shape) -> bool:
    return elementwise_body(closed, shape, _ELEMENTWISE)


# --------------------------------------------------------------------------- modified operations


@jax.custom_vjp
def _passthrough(x, y):
    """``y`` (computed from ``x`` element-wise) whose backward hands the relevance to ``x``."""
    return y


_passthrough.defvjp(lambda x, y: (y, None), lambda _, r: (r, jnp.zeros_like(r)))


def _layer(rule: R.Rule, apply: Callable, x, w, b, nonneg: bool = False):
    """``apply(x, w, b)`` whose backward is ``rule``'s relevance at ``x``."""

    @jax.custom_vjp
    def f(x, w, b):
        return apply(x, w, b)

    def fwd(x, w, b):
        return apply(x, w, b), (x, w, b)

    def bwd(res, r):
        x, w, b = res
        zero = jax.tree.map(jnp.zeros_like, (w, b))
        return (rule.linear(apply, x, w, b, r, nonneg=nonneg), *zero)

    f.defvjp(fwd, bwd)
    return f(x, w, b)


def _norm(fn: Callable, xs: list, stabilizer: float) -> list:
    """``fn(*xs)`` (linear, parameter-free) whose backward is the norm rule for each ``x``."""

    @jax.custom_vjp
    def f(*xs):
        return fn(*xs)

    def fwd(*xs):
        return fn(*xs), xs

    def bwd(xs, r):
        z, vjp = jax.vjp(fn, *xs)
        g = vjp(r / R.stabilize(z, stabilizer))
        return tuple(x * gi for x, gi in zip(xs, g, strict=True))

    f.defvjp(fwd, bwd)
    return f(*xs)


class _Ctx:
    """State of one LRP evaluation: the composite, layer counter and relevance probes."""

    def __init__(self, composite: Composite, probes: dict[str, jax.Array] | None):
        self.composite = composite
        self.probes = probes
        self.counts: dict[str, int] = {}
        self.layers = 0
        self.norms: frozenset[str] = frozenset()  # AttnLRP: the model's norm layer paths


def _uses(jaxpr) -> dict[Any, list]:
    uses: dict[Any, list] = {}
    for e in jaxpr.eqns:
        for v in e.invars:
            if isinstance(v, jcore.Var):
                uses.setdefault(v, []).append(e)
    for v in jaxpr.outvars:
        if isinstance(v, jcore.Var):
            uses.setdefault(v, []).append(None)
    return uses


def _only_use(uses, v, prim: str):
    u = uses.get(v, [])
    return u[0] if len(u) == 1 and u[0] is not None and u[0].primitive.name == prim else None


def _eval(jaxpr, consts, args, ctx: _Ctx) -> list:
    env: dict[Any, Any] = {}
    uses = _uses(jaxpr)
    pending: dict[Any, tuple] = {}  # linear outvar -> (eqn, invals, index of x), bias to come

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, val in zip(jaxpr.constvars, consts, strict=True):
        env[v] = val
    for v, val in zip(jaxpr.invars, args, strict=True):
        env[v] = val
    spec = ctx.composite.attention
    plan = None
    if spec is not None:  # AttnLRP: softmax and norm regions (see transformer.py)
        plan = T.Plan(jaxpr, [isinstance(a, _On) for a in args], spec, ctx.norms)

    def run_layer(lin_eqn, lin_invals, i, add_eqn=None, add_vals=None, j=None, out_var=None):
        x = lin_invals[i].v
        w = lin_invals[1 - i]
        b = None if add_eqn is None else add_vals[1 - j]

        def apply(x_, w_, b_):
            z = interpret._bind(lin_eqn, [x_, w_] if i == 0 else [w_, x_])[0]
            if add_eqn is None or b_ is None:
                return z
            return interpret._bind(add_eqn, [z, b_] if j == 0 else [b_, z])[0]

        tag = _only_use(uses, out_var, interpret.NAME_PRIMITIVE)
        path = None if tag is None else tag.params["name"]
        kind = "conv" if lin_eqn.primitive.name == "conv_general_dilated" else "dense"
        rule = ctx.composite.rule(path, kind, ctx.layers == 0)
        ctx.layers += 1
        if isinstance(rule, R.Pass):
            raise ValueError(f"lrp: the pass rule cannot apply to the {kind} layer {path!r}")
        return [_On(_layer(rule, apply, x, w, b, lin_invals[i].nonneg))]

    for index, eqn in enumerate(jaxpr.eqns):
        invals = [read(v) for v in eqn.invars]
        on = [isinstance(v, _On) for v in invals]
        prim = eqn.primitive.name
        if plan is not None and index in plan.regions:
            region = plan.regions[index]
            if region is None:  # inside a softmax or norm: its value only
                outvals = interpret._bind(eqn, [v.v if isinstance(v, _On) else v for v in invals])
            else:
                x = read(region.x).v
                y = T.apply_region(region, x, read, ctx.composite.stabilizer)
                outvals = [_On(y)]
        elif plan is not None and any(on) and (out := _attn(eqn, invals, on, plan, ctx)):
            outvals = out
        elif prim == "add" and any(isinstance(v, jcore.Var) and v in pending for v in eqn.invars):
            j = 0 if isinstance(eqn.invars[0], jcore.Var) and eqn.invars[0] in pending else 1
            lin, lin_vals, i = pending.pop(eqn.invars[j])
            if not on[1 - j]:  # the bias add of the layer
                outvals = run_layer(lin, lin_vals, i, eqn, invals, j, eqn.outvars[0])
            else:  # the layer has no bias; its output is summed with another branch
                invals[j] = run_layer(lin, lin_vals, i, out_var=None)[0]
                outvals = _sum(eqn, invals, ctx)
        elif not any(on):
            outvals = interpret._bind(eqn, invals)
        elif prim == interpret.NAME_PRIMITIVE:
            value = invals[0].v
            base = eqn.params["name"]
            k = ctx.counts.get(base, 0)
            ctx.counts[base] = k + 1
            key = base if k == 0 else f"{base}#{k}"
            value = interpret._bind(eqn, [value])[0]
            if ctx.probes is not None and key in ctx.probes:
                value = value + ctx.probes[key]
            outvals = [_On(value, invals[0].nonneg)]
        elif prim in _LINEAR:
            if sum(on) != 1:
                raise _unsupported(eqn, "both operands depend on the input")
            i = on.index(True)
            out = eqn.outvars[0]
            add = _only_use(uses, out, "add")
            if add is not None:
                pending[out] = (eqn, invals, i)
                outvals = [None]
            else:
                outvals = run_layer(eqn, invals, i, out_var=out)
        elif prim in ("add", "add_any") and all(on):
            outvals = _sum(eqn, invals, ctx)
        elif prim in _SUMS:
            fn = _bound(eqn)
            eps = ctx.composite.stabilizer * _mean_divisor(uses, eqn.outvars[0])
            outvals = [_On(_norm(fn, [invals[0].v], eps), invals[0].nonneg)]
        elif prim in _MAXES:
            if ctx.composite.maxpool == "winner":
                outvals = [_On(interpret._bind(eqn, [invals[0].v])[0], invals[0].nonneg)]
            else:
                outvals = [_On(_proportional_max(eqn, invals[0].v, ctx), invals[0].nonneg)]
        elif prim in _STRUCTURAL:
            if sum(on) != 1 and prim != "concatenate":
                raise _unsupported(eqn, "more than one operand depends on the input")
            vals = [v.v if isinstance(v, _On) else v for v in invals]
            nonneg = all(on) and all(v.nonneg for v in invals)  # pad: its value may be < 0
            outvals = [_On(o, nonneg) for o in interpret._bind(eqn, vals)]
        elif prim in _AFFINE or prim in _UNARY:
            if sum(on) != 1:
                raise _unsupported(eqn, "an element-wise operation of two input-dependent values")
            if prim == "div" and on[1]:
                raise _unsupported(eqn, "the divisor depends on the input")
            outvals = _pass(eqn, invals, on)
        elif prim in _CALLS:
            body = eqn.params[_CALLS[prim]]
            if sum(on) == 1 and _elementwise_body(body, eqn.invars[on.index(True)].aval.shape):
                outvals = _pass(eqn, invals, on)
            else:
                body, body_consts = interpret._open(body)
                outvals = _eval(body, body_consts, invals, ctx)
        elif interpret._sub_jaxprs(eqn):
            raise _unsupported(eqn, "a loop or branch")
        else:
            raise _unsupported(eqn, "a nonlinear operation")
        for v, val in zip(eqn.outvars, outvals, strict=True):
            if not isinstance(v, jcore.DropVar):
                env[v] = val
    return [read(v) for v in jaxpr.outvars]


def _attn(eqn, invals, on, plan, ctx) -> list | None:
    """AttnLRP's rules for an operation outside its softmax/norm regions; None: the usual rule."""
    prim = eqn.primitive.name
    eps = ctx.composite.stabilizer
    vals = [v.v if isinstance(v, _On) else v for v in invals]
    shape = eqn.outvars[0].aval.shape
    if prim == "dot_general" and all(on):  # q kᵀ, A v: the uniform ε rule
        return [_On(T.bilinear(_bound(eqn), vals[0], vals[1], eps))]
    if prim == "stop_gradient":
        return interpret._bind(eqn, vals)  # no relevance flows: off the path
    if (prim in ("mul", "div") and sum(on) == 2) or (prim == "div" and on[1]):
        if prim == "mul" and all(
            v.aval.shape == shape and v not in plan.reduced for v in eqn.invars
        ):  # a gate: half each (AttnLRP's Proposition 3.2)
            z = interpret._bind(eqn, vals)[0]
            return [_On(T.uniform(vals[0], vals[1], z))]
        raise _unsupported(
            eqn,
            "a product with or division by statistics computed from the input: tag the "
            "softmax's output as 'attn_weights' and make the normalisation a layer norm module "
            "or name it in attn_lrp(norms=...)",
        )
    if prim == "sub" and all(on):
        return _sum(eqn, invals, ctx)
    if prim in _ELEMENTWISE and sum(on) == 1 and prim not in _AFFINE | _STRUCTURAL:  # identity
        return _pass(eqn, invals, on)
    return None


def _mean_divisor(uses, v) -> float:
    """``n`` where the sum ``v`` is only divided by the literal ``n`` (a mean), else 1 (reshapes
    between them allowed).

    Zennit stabilizes an average pool's output, the mean: ``s(Σx / n) = (Σx + n·ε·sign) / n``,
    so the sum of a mean is stabilized with ``n·ε``.
    """
    while True:  # through reshapes (``keepdims``) to the division
        u = uses.get(v, [])
        e = u[0] if len(u) == 1 else None
        if e is None or e.invars[0] is not v:
            return 1.0
        prim = e.primitive.name
        same = np.prod(e.outvars[0].aval.shape) == np.prod(v.aval.shape)
        if prim in ("reshape", "broadcast_in_dim", "expand_dims", "squeeze") and same:
            v = e.outvars[0]
            continue
        if prim != "div" or not isinstance(e.invars[1], jcore.Literal):
            return 1.0
        n = abs(float(np.asarray(e.invars[1].val)))
        return n if n > 0 else 1.0


def _bound(eqn) -> Callable:
    return lambda *a: interpret._bind(eqn, list(a))[0]


def _sum(eqn, invals, ctx) -> list:
    xs = [v.v for v in invals]
    return [_On(_norm(_bound(eqn), xs, ctx.composite.stabilizer))]


def _pass(eqn, invals, on) -> list:
    i = on.index(True)
    x = invals[i].v
    vals = [v.v if isinstance(v, _On) else v for v in invals]
    outs = interpret._bind(eqn, vals)
    if len(outs) != 1 or outs[0].shape != x.shape:
        raise _unsupported(eqn, "an element-wise operation must keep its input's shape")
    return [_On(_passthrough(x, outs[0]), _relu_body(eqn))]


def _proportional_max(eqn, x, ctx):
    """Max-pooling whose backward is proportional to the window's inputs (Zennit's ``Norm``)."""
    y = interpret._bind(eqn, [x])[0]

    def pooled_sum(a):  # the same windows, summed
        if eqn.primitive.name == "reduce_max":
            return jnp.sum(a, axis=tuple(eqn.params["axes"]))
        p = eqn.params
        return jax.lax.reduce_window(
            a,
            0.0,
            jax.lax.add,
            p["window_dimensions"],
            p["window_strides"],
            p["padding"],
            p["base_dilation"],
            p["window_dilation"],
        )

    r_out = _norm(pooled_sum, [x], ctx.composite.stabilizer)
    return y + (r_out - jax.lax.stop_gradient(r_out))


# --------------------------------------------------------------------------- the methods


def lrp_forward(model: Model, composite: Composite, probes: bool = False) -> Callable:
    """``(x, probes) -> model(x)`` whose backward is LRP's (the cotangent is the relevance)."""

    def forward(x, deltas=None):
        closed, out_tree, _ = model.trace(x)
        flat = jax.tree.leaves((model.params, model.state))
        ctx = _Ctx(composite, deltas)
        if composite.attention is not None:
            if not any(map(composite.attention.is_attention, interpret.names_in(closed))):
                raise T.no_attention_error()
            ctx.norms = T.norm_paths(model.params, model.state)
        outs = _eval(closed.jaxpr, closed.consts, [*flat, _On(x)], ctx)
        outs = [o.v if isinstance(o, _On) else o for o in outs]
        return jax.tree.unflatten(out_tree, outs)

    return forward


def _target_sum(target_fn, out, t):
    return jnp.sum(jax.vmap(functools.partial(select_output, target_fn))(out, t))


@functools.partial(jax.jit, static_argnames=("target_fn", "composite", "layers"))
def _lrp(model: Model, x, t, target_fn, composite: Composite, layers: tuple[str, ...]):
    forward = lrp_forward(model, composite)
    shapes = model.layer_shapes(x)
    deltas = {k: jnp.zeros(shapes[k].shape, shapes[k].dtype) for k in layers}

    def f(x, deltas):
        return _target_sum(target_fn, forward(x, deltas), t)

    return jax.grad(f, argnums=(0, 1))(x, deltas)


def _setup(model, x, target, composite):
    model, x = prepare(model, x)
    composite = as_composite(composite)
    composite.check_paths(model.layer_shapes(x))
    target_fn, t = resolve(model, x, target)
    return merge_batchnorm(model, x=x), x, t, target_fn, composite


def _lrp_at(
    model: Any, x: Any, target: Target, *, layer: str | None, composite: Any = "epsilon_plus"
):
    model, x, t, target_fn, composite = _setup(model, x, target, composite)
    if layer is None:
        return _lrp(model, x, t, target_fn, composite, ())[0]
    check_layer(model, x, layer)
    return _lrp(model, x, t, target_fn, composite, (layer,))[1][layer]


@layer_builder(lambda layer: functools.partial(_lrp_at, layer=layer))
@empty_batch
def lrp(
    model: Any, x: Any, target: Target, *, composite: Any = "epsilon_plus", layer: str | None = None
) -> jax.Array:
    """Layer-wise relevance propagation: the relevance of the target logit at the input.

    The output relevance is one at the target logit and zero elsewhere (Zennit's one-hot
    ``attr_output``; multiply by the logit for relevances in the logit's units); each layer
    passes it back with the rule the composite gives it (see
    :mod:`visjax.attribution.lrp.rules` for the maths and :mod:`visjax.attribution.lrp.composites`
    for the presets). Inference BatchNorms of NNX and Linen models are merged into the preceding
    layer first (Zennit's canonizer). With z⁺ on a bias-free ReLU network the relevance is
    conserved exactly (the input relevance sums to the output relevance, 1); ε and biases leak the
    relevance they absorb (``Σ R_in = Σ R_out − Σ_j b_j R_j / s(z_j) − ε-terms``).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (its value is the output relevance).
      composite: a preset name (``"epsilon_plus"``, ``"epsilon_alpha2_beta1"``,
        ``"epsilon_plus_flat"``, ``"attn_lrp"`` for transformers), or a
        :class:`~visjax.attribution.lrp.Composite` (such as ``epsilon_gamma_box(low, high)``).
      layer: a layer path: the relevance at that layer's output instead (also
        ``at_layer(lrp, layer)``).

    Returns:
      The relevance, shaped like ``x`` (or like the layer's activation).

    Raises:
      ValueError: an unknown preset, rule, layer kind or layer path (the known ones listed); an
        operation on the path with no LRP rule (named); NaN/Inf in ``x``; a target out of range.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> lrp(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8, 1)

    References:
      Bach et al., PLoS ONE 2015, https://doi.org/10.1371/journal.pone.0130140; Montavon et al.,
      "Layer-wise relevance propagation: an overview", 2019; Kohlbrenner et al., IJCNN 2020.
    """
    return _lrp_at(model, x, target, layer=layer, composite=composite)


def lrp_layers(
    model: Any, x: Any, target: Target, *, composite: Any = "epsilon_plus"
) -> dict[str, jax.Array]:
    """Every layer's relevance (at its output) and the input's from one backward pass.

    Returns:
      ``{layer path: relevance shaped like its activation, ..., "input": relevance like x}``
      (the layers in :meth:`~visjax.Model.layer_shapes`'s order); sums per example give a
      per-layer conservation curve.

    Raises:
      ValueError: as :func:`lrp`.
    """
    model, x, t, target_fn, composite = _setup(model, x, target, composite)
    layers = tuple(model.layer_shapes(x))
    r_x, r = _lrp(model, x, t, target_fn, composite, layers)
    return {**{k: r[k] for k in layers}, "input": r_x}
