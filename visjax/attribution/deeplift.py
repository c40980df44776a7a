"""DeepLIFT with the rescale rule, and DeepLIFT-SHAP (its average over a set of references).

DeepLIFT (Shrikumar, Greenside, Kundaje 2017) attributes ``f(x) − f(b)`` to the input features. Its
"modified gradient" is the chain rule with every nonlinearity's local derivative replaced by the
multiplier ``m = (y − y_ref) / (x − x_ref)`` of that unit's input and output on the input ``x``
and on the reference (baseline) ``b``; linear operations keep their ordinary gradient. The
attribution is that modified gradient times ``x − b``, and its sum over an example equals
``f(x) − f(b)`` (summation-to-delta). As Captum's ``DeepLift``, where ``|x − x_ref| < 1e-10`` the
unit's ordinary gradient is used instead of the multiplier.

How it is computed: the model's forward is traced to a jaxpr (abstractly, cached) and evaluated by
a small interpreter on the pair (input, reference) in lock-step, so every equation sees both its
input and its reference input. Values that do not depend on the input (parameters and what is
computed from them alone) are evaluated once. Each nonlinear unit is replaced by a function whose
value is the unit's output and whose derivative is the DeepLIFT multiplier; ``jax.grad`` of the
target through that forward gives the modified gradient.

Supported on the path from the input to the output:

* linear and structural primitives (plain gradient): ``add``, ``sub``, ``neg``, ``reshape``,
  ``broadcast_in_dim``, ``transpose``, ``slice``, ``concatenate``, ``pad``, ``reduce_sum``,
  ``reduce_window_sum``, ``gather``, ``convert_element_type``, layer names, ...; ``mul``,
  ``dot_general``, ``conv_general_dilated`` with one operand depending on the input; ``div`` by a
  value that does not; ``select_n`` whose predicate does not;
* elementwise units (the rescale rule): ``max``/``min`` against a value that does not depend on
  the input (a bare ``max(h, 0)`` ReLU), ``logistic`` (sigmoid), ``tanh``, ``exp``, ``log``,
  ``log1p``, ``expm1``, ``erf``, ``sqrt``, ``rsqrt``, ``integer_pow``, ``square``, ``abs``,
  ``sin``, ``cos``; and any call (``custom_jvp_call``, ``custom_vjp_call``, ``jit``) with one input
  on the path whose body is elementwise, treated as one unit (``jax.nn.relu``, ``relu6``,
  ``softplus``, ``silu``, ``leaky_relu``, ``elu``: Captum treats its activation modules as units
  the same way); calls that are not elementwise are entered;
* max-pooling, ``reduce_window_max`` (``nnx.max_pool``, ``nn.max_pool``), with Captum's
  ``maxpool`` rule: the output differences ``max(o, o_ref) − o_ref`` and ``o − max(o, o_ref)``
  are routed back to the input's and the reference's arg-max positions, summed, and divided by
  ``x − x_ref``.

Any other primitive on the path (a product of two input-dependent values such as the approximate
GELU written out ``x * (1 + tanh(...)) / 2``, softmax, ``reduce_max``, a comparison outside an
elementwise call, loops and branches) raises a ``ValueError`` naming it: DeepLIFT never silently
falls back to plain gradients.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.extend.core as jcore
import jax.numpy as jnp

from visjax.attribution._jaxpr import elementwise_body
from visjax.attribution._target import (
    Target,
    check_layer,
    empty_batch,
    prepare,
    resolve,
    select_output,
)
from visjax.attribution.baselines import check_references, make_baseline
from visjax.attribution.layer import layer_builder
from visjax.base import interpret
from visjax.model import Model

EPS = 1e-10  # Captum's: below this |x − x_ref| a unit passes its ordinary gradient

_CALLS = interpret._CALL_BODIES
_LINEAR = frozenset(
    "add sub neg add_any reshape broadcast_in_dim transpose squeeze expand_dims slice "
    "dynamic_slice gather concatenate pad reduce_sum reduce_window_sum convert_element_type copy "
    "copy_p rev reduce_precision cumsum name".split()
)
_ONE_LINEAR_OPERAND = frozenset(("mul", "dot_general", "conv_general_dilated"))
_UNITS = frozenset(
    "max min logistic tanh exp exp2 log log1p expm1 erf erfc sqrt rsqrt cbrt integer_pow square "
    "abs sin cos".split()
)
# what an elementwise call's body may hold
_ELEMENTWISE = _UNITS | frozenset(
    "add sub mul div neg sign select_n gt ge lt le eq ne and or not convert_element_type "
    "broadcast_in_dim stop_gradient copy floor ceil round clamp is_finite pow".split()
)


class _Pair(NamedTuple):
    """A value that depends on the input: its value on the input and on the reference."""

    x: Any
    ref: Any


def _sg(a):
    return jax.lax.stop_gradient(a)


def _safe_inverse(dx):
    small = jnp.abs(dx) < EPS
    return small, jnp.where(small, 0.0, 1.0 / jnp.where(small, 1.0, dx)).astype(dx.dtype)


def rescale(fn: Callable[[jax.Array], jax.Array], x: jax.Array, x_ref: jax.Array) -> _Pair:
    """An elementwise unit ``fn`` on the pair, with derivative ``(y − y_ref) / (x − x_ref)``.

    Where ``|x − x_ref| < 1e-10`` the derivative is ``fn``'s own (Captum's ``nonlinear`` rule).
    """
    y, vjp = jax.vjp(fn, _sg(x))
    slope = vjp(jnp.ones_like(y))[0]
    y_ref = fn(x_ref)
    small, inv = _safe_inverse(_sg(x) - x_ref)
    m = _sg(jnp.where(small, slope, (y - y_ref) * inv))
    return _Pair(y + m * (x - _sg(x)), y_ref)


def maxpool(pool: Callable[[jax.Array], jax.Array], x: jax.Array, x_ref: jax.Array) -> _Pair:
    """Max-pooling on the pair with Captum's ``maxpool`` DeepLIFT rule as its derivative.

    Backward of ``g``: ``(unpool_x(g ⊙ (max(o, o_ref) − o_ref)) + unpool_ref(g ⊙ (o −
    max(o, o_ref)))) / (x − x_ref)``, the unpooling routing to each side's arg-max; the plain
    gradient where ``|x − x_ref| < 1e-10``.
    """
    x0 = _sg(x)
    o, o_ref = pool(x0), pool(x_ref)
    hi = jnp.maximum(o, o_ref)
    a, c = _sg(hi - o_ref), _sg(o - hi)
    small, inv = _safe_inverse(x0 - x_ref)
    small = small.astype(x.dtype)

    def at_x(v):
        return jax.jvp(pool, (x0,), (v,))[1]

    def at_ref(v):
        return jax.jvp(pool, (_sg(x_ref),), (v,))[1]

    def linear(v):  # the map whose transpose is the rule above
        return at_x(v * small) + a * at_x(v * inv) + c * at_ref(v * inv)

    return _Pair(o + linear(x - x0), o_ref)


def _unsupported(eqn, why: str) -> ValueError:
    return ValueError(
        f"deeplift: the primitive `{eqn.primitive.name}` on the path from the input to the output "
        f"is not supported ({why}); see visjax.attribution.deeplift for the supported operations"
    )


def _elementwise_body(closed, shape) -> bool:
    return elementwise_body(closed, shape, _ELEMENTWISE)


class _Swap:
    """A layer whose value on the input side is replaced (DeepLIFT at a layer)."""

    def __init__(self, layer: str, value: jax.Array):
        self.layer, self.base, self.value, self.seen = layer, layer.split("#")[0], value, 0

    def __call__(self, eqn, invals: list) -> list | None:
        if eqn.primitive.name != interpret.NAME_PRIMITIVE or eqn.params["name"] != self.base:
            return None
        key = self.base if self.seen == 0 else f"{self.base}#{self.seen}"
        self.seen += 1
        if key != self.layer:
            return None
        (v,) = invals
        if not isinstance(v, _Pair):
            raise ValueError(f"deeplift: layer {self.layer!r} does not depend on the input")
        return [_Pair(self.value.astype(v.x.dtype), v.ref)]


def _pair_eqn(eqn, invals: list, on: list[bool], swap: _Swap | None = None) -> list:
    prim = eqn.primitive.name
    n_on = sum(on)
    sides = [
        [v.x if p else v for v, p in zip(invals, on, strict=True)],
        [v.ref if p else v for v, p in zip(invals, on, strict=True)],
    ]

    def bind_both():
        xs, refs = (interpret._bind(eqn, s) for s in sides)
        return [_Pair(a, b) for a, b in zip(xs, refs, strict=True)]

    def unit(rule):
        i = on.index(True)
        out = eqn.outvars[0].aval
        if n_on != 1 or len(eqn.outvars) != 1 or out.shape != eqn.invars[i].aval.shape:
            return None

        def fn(a):
            return interpret._bind(eqn, [a if j == i else v for j, v in enumerate(invals)])[0]

        return [rule(fn, invals[i].x, invals[i].ref)]

    if prim in _CALLS:
        i = on.index(True)
        if n_on == 1 and _elementwise_body(eqn.params[_CALLS[prim]], eqn.invars[i].aval.shape):
            out = unit(rescale)
            if out is not None:
                return out
        body, consts = interpret._open(eqn.params[_CALLS[prim]])
        return _eval_pair(body, consts, invals, swap)
    if prim in _LINEAR:
        return bind_both()
    if prim in _ONE_LINEAR_OPERAND:
        if n_on == 1:
            return bind_both()
        raise _unsupported(eqn, "both operands depend on the input")
    if prim == "div":
        if not on[1]:
            return bind_both()
        raise _unsupported(eqn, "the divisor depends on the input")
    if prim == "select_n":
        if not on[0]:
            return bind_both()
        raise _unsupported(eqn, "the predicate depends on the input")
    if prim in _UNITS:
        out = unit(rescale)
        if out is not None:
            return out
        raise _unsupported(eqn, "an elementwise unit needs exactly one operand on the path")
    if prim == "reduce_window_max":
        (v,) = invals
        return [maxpool(lambda a: interpret._bind(eqn, [a])[0], v.x, v.ref)]
    if any(interpret._sub_jaxprs(eqn)):
        raise _unsupported(eqn, "a loop or branch")
    raise _unsupported(eqn, "a nonlinear operation with no DeepLIFT rule here")


def _eval_pair(jaxpr, consts, args, swap: _Swap | None = None) -> list:
    env: dict[Any, Any] = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, val in zip(jaxpr.constvars, consts, strict=True):
        env[v] = val
    for v, val in zip(jaxpr.invars, args, strict=True):
        env[v] = val
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        on = [isinstance(v, _Pair) for v in invals]
        outvals = swap(eqn, invals) if swap is not None else None
        if outvals is None:
            outvals = _pair_eqn(eqn, invals, on, swap) if any(on) else interpret._bind(eqn, invals)
        for v, val in zip(eqn.outvars, outvals, strict=True):
            if not isinstance(v, jcore.DropVar):
                env[v] = val
    return [read(v) for v in jaxpr.outvars]


# --------------------------------------------------------------------------- the methods


def deeplift_forward(model: Model, layer: str | None = None) -> Callable[..., tuple[Any, Any]]:
    """``(x, x_ref) -> (model(x), model(x_ref))`` (batches) whose derivative in ``x`` is DeepLIFT's.

    The outputs equal the model's; the derivative of the first with respect to ``x`` is the
    rescale-rule modified gradient (see the module docstring). Raises ``ValueError`` on an
    unsupported primitive on the path, at trace time. With ``layer`` the forward is
    ``(x, x_ref, value)``: the layer's input-side value is replaced by ``value`` (its value for
    ``x``, to differentiate in), its reference-side value kept.
    """

    def forward(x: jax.Array, x_ref: jax.Array, value: jax.Array | None = None):
        closed, out_tree, _ = model.trace(x)
        flat = jax.tree.leaves((model.params, model.state))
        swap = None if layer is None else _Swap(layer, value)
        outs = _eval_pair(closed.jaxpr, closed.consts, [*flat, _Pair(x, x_ref)], swap)
        xs = [o.x if isinstance(o, _Pair) else o for o in outs]
        refs = [o.ref if isinstance(o, _Pair) else o for o in outs]
        return jax.tree.unflatten(out_tree, xs), jax.tree.unflatten(out_tree, refs)

    return forward


def deeplift_core(forward, target_fn: Callable | None, x_i, b_i, t_i) -> jax.Array:
    """The core for one example: DeepLIFT's modified gradient of the target times ``x_i − b_i``."""

    def f(xi):
        out, _ = forward(xi[None], b_i[None])
        return select_output(target_fn, out[0], t_i)

    return jax.grad(f)(x_i) * (x_i - b_i)


def _layer_core(model: Model, forward, target_fn: Callable | None, layer: str, x_i, b_i, t_i):
    """The core at a layer: the modified gradient in the layer's value times its difference."""
    a_i = model.activations(x_i[None], layer)[1][layer][0]
    a_ref = model.activations(b_i[None], layer)[1][layer][0]

    def f(a):
        out, _ = forward(x_i[None], b_i[None], a[None])
        return select_output(target_fn, out[0], t_i)

    return jax.grad(f)(a_i) * (a_i - a_ref)


def _core(model: Model, target_fn, layer: str | None):
    forward = deeplift_forward(model, layer)
    if layer is None:
        return functools.partial(deeplift_core, forward, target_fn)
    return functools.partial(_layer_core, model, forward, target_fn, layer)


@functools.partial(jax.jit, static_argnames=("target_fn", "layer"))
def _deeplift(model: Model, x, b, t, target_fn, layer=None):
    return jax.vmap(_core(model, target_fn, layer))(x, b, t)


@functools.partial(jax.jit, static_argnames=("target_fn", "layer"))
def _deeplift_shap(model: Model, x, refs, t, target_fn, layer=None):
    core = _core(model, target_fn, layer)
    per_ref = jax.vmap(lambda b: jax.vmap(core, in_axes=(0, None, 0))(x, b, t))(refs)
    return per_ref.mean(0)


def _deeplift_at(model: Any, x: Any, target: Target, *, layer: str | None, baseline: Any = 0.0):
    model, x = prepare(model, x)
    target_fn, t = resolve(model, x, target)
    b = make_baseline(x, baseline)
    if layer is not None:
        check_layer(model, x, layer)
    return _deeplift(model, x, b, t, target_fn, layer)


@layer_builder(lambda layer: functools.partial(_deeplift_at, layer=layer))
@empty_batch
def deeplift(model: Any, x: Any, target: Target, *, baseline: Any = 0.0) -> jax.Array:
    """DeepLIFT with the rescale rule: modified gradient × ``(x − baseline)``.

    Every nonlinear unit passes back ``(y − y_ref) / (x − x_ref)`` (max-pooling: Captum's
    ``maxpool`` rule); linear operations their ordinary gradient. The attributions of an example
    sum to ``f(x) − f(baseline)`` up to float rounding. See the module docstring for the supported
    operations; any other nonlinear primitive on the path raises a ``ValueError``.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (static: pass the same function object to avoid recompiling).
      baseline: the reference, an array broadcastable to ``x`` or a scalar (default 0), or
        ``"zeros"``/``"blur"`` (see :func:`visjax.attribution.make_baseline`).

    Returns:
      Attributions shaped like ``x``. At a layer (``at_layer(deeplift, layer)``, Captum's
      ``LayerDeepLift``): the modified gradient in the layer's value times the difference of the
      layer's activations for ``x`` and the baseline, shaped like the activation.

    Raises:
      ValueError: an unsupported primitive on the path (named); a baseline that does not broadcast
        to ``x``; a target out of range or NaN/Inf in ``x`` or the baseline (checked when
        concrete; under a caller's ``jit`` only shapes and dtypes are checked).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> deeplift(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8, 1)

    References:
      Shrikumar, Greenside, Kundaje, "Learning Important Features Through Propagating Activation
      Differences", ICML 2017. https://arxiv.org/abs/1704.02685 (Captum's ``DeepLift`` with
      ``multiply_by_inputs=True``, eps 1e-10. Captum changes only the backward of activation
      *modules* and gives any other operation its plain gradient; here every recognised unit is
      changed, functional ones included, and an unrecognised nonlinearity is an error.)
    """
    return _deeplift_at(model, x, target, layer=None, baseline=baseline)


def _deeplift_shap_at(model: Any, x: Any, target: Target, *, layer: str | None, references: Any):
    model, x = prepare(model, x)
    refs = check_references(references, x)
    target_fn, t = resolve(model, x, target)
    if layer is not None:
        check_layer(model, x, layer)
    return _deeplift_shap(model, x, refs, t, target_fn, layer)


@layer_builder(lambda layer: functools.partial(_deeplift_shap_at, layer=layer))
@empty_batch
def deeplift_shap(model: Any, x: Any, target: Target, *, references: Any) -> jax.Array:
    """DeepLIFT-SHAP: DeepLIFT averaged over a set of references (Captum's ``DeepLiftShap``).

    ``φ = (1/R) Σ_r deeplift(x, baseline=b_r)``, so an example's attributions sum to
    ``f(x) − mean_r f(b_r)``.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable (see :func:`deeplift`).
      references: the references ``(R, ...)``, each shaped like one example (Captum's
        ``baselines``; the name :func:`visjax.attribution.expected_gradients` uses too).

    Returns:
      Attributions shaped like ``x``.

    Raises:
      ValueError: as :func:`deeplift`; ``references`` not of shape ``(R, *x.shape[1:])``.

    References:
      Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017
      (DeepSHAP); Captum's ``DeepLiftShap``.
    """
    return _deeplift_shap_at(model, x, target, layer=None, references=references)
