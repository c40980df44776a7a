"""Modified-gradient methods: guided backprop and deconvnet.

Both are the gradient of the target with respect to the input, computed with the backward pass of
every ReLU replaced (``g`` the gradient arriving at the ReLU's output, ``x`` its input):

* guided backprop: ``g ⊙ 1[x > 0] ⊙ 1[g > 0]`` (the ReLU's own gradient, then only its positive
  part);
* deconvnet: ``max(g, 0)`` (the positive part of the incoming gradient, whatever ``x`` is).

The forward pass is unchanged. The model's forward is traced to a jaxpr (abstractly, cached) and
re-evaluated by :func:`visjax.base.interpret.eval_jaxpr` with a rule table (:func:`relu_rules`) that
replaces every ReLU-like equation by a ``jax.custom_vjp`` function carrying the modified backward;
``jax.grad`` of the target through that forward gives the attribution.

Recognised as a ReLU:

* ``custom_jvp_call`` whose body is ``max(x, 0)`` alone, directly or inside one ``jit``/``pjit``
  (what ``jax.nn.relu`` traces to, so Flax's ``nnx.relu``/``nn.relu`` too);
* a bare ``max(x, 0)`` or ``max(0, x)`` (``jnp.maximum(x, 0.0)``) whose zero operand is a literal
  or a concrete constant of the output's shape holding only zeros, and whose other operand is
  floating.

Not recognised (evaluated as traced, with its ordinary gradient): other ``custom_jvp_call`` or
``custom_vjp_call`` functions (``jax.nn.relu6``, ``leaky_relu``, GELU, ...), ``max`` against a
computed zero (``jnp.maximum(x, jnp.zeros_like(x))``, or a constant the program broadcasts
first), and ``where(x > 0, x, 0)``. A ReLU (or any ``max``/custom-derivative call) inside a loop
or branch (``scan``, ``while``, ``cond``) makes the interpreter raise a ``ValueError``. ReLUs
inside a ``jit`` of the user's code are found.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from visjax.attribution._target import Target, check_layer, empty_batch, prepare, resolve
from visjax.attribution.layer import layer_builder
from visjax.base import interpret
from visjax.base.checks import is_concrete
from visjax.model import Model

Backward = Literal["guided", "deconvnet"]
BACKWARDS = ("guided", "deconvnet")
_CALLS = ("jit", "pjit")


# --------------------------------------------------------------------------- the modified ReLUs


@jax.custom_vjp
def guided_relu(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` whose backward is guided backprop's: ``g ⊙ 1[x > 0] ⊙ 1[g > 0]``."""
    return jnp.maximum(x, 0)


def _guided_fwd(x):
    return jnp.maximum(x, 0), x


def _guided_bwd(x, g):
    return (jnp.where((x > 0) & (g > 0), g, jnp.zeros_like(g)),)


guided_relu.defvjp(_guided_fwd, _guided_bwd)


@jax.custom_vjp
def deconv_relu(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` whose backward is deconvnet's: ``max(g, 0)``, whatever the sign of ``x``."""
    return jnp.maximum(x, 0)


def _deconv_fwd(x):
    return jnp.maximum(x, 0), None


def _deconv_bwd(_, g):
    return (jnp.maximum(g, jnp.zeros_like(g)),)


deconv_relu.defvjp(_deconv_fwd, _deconv_bwd)

_RELUS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "guided": guided_relu,
    "deconvnet": deconv_relu,
}


# --------------------------------------------------------------------------- recognising ReLUs


def _is_zero(value: Any) -> bool:
    if not is_concrete(value):
        return False
    return bool(np.all(np.asarray(value) == 0))


def _zero_operand(eqn, invals: list) -> int | None:
    """The index of the other operand when ``eqn`` is ``max`` against a literal/constant zero."""
    if eqn.primitive.name != "max" or len(invals) != 2:
        return None
    for zero, other in ((1, 0), (0, 1)):
        v = eqn.invars[zero]
        concrete = v.val if isinstance(v, jcore.Literal) else invals[zero]
        if _is_zero(concrete) and jnp.issubdtype(eqn.invars[other].aval.dtype, jnp.floating):
            return other
    return None


def _is_relu_body(closed) -> bool:
    """Whether a call's body is ``max(x, 0)`` alone (possibly inside nested ``jit`` calls)."""
    jaxpr = closed.jaxpr if isinstance(closed, jcore.ClosedJaxpr) else closed
    consts = closed.consts if isinstance(closed, jcore.ClosedJaxpr) else ()
    if len(jaxpr.invars) != 1 or len(jaxpr.outvars) != 1 or len(jaxpr.eqns) != 1:
        return False
    (eqn,) = jaxpr.eqns
    if eqn.outvars[0] is not jaxpr.outvars[0]:
        return False
    if eqn.primitive.name in _CALLS:
        return eqn.invars == jaxpr.invars and _is_relu_body(eqn.params["jaxpr"])
    if eqn.primitive.name != "max":
        return False
    env = dict(zip(jaxpr.constvars, consts, strict=True))
    vals = [env.get(v) if not isinstance(v, jcore.Literal) else v.val for v in eqn.invars]
    other = _zero_operand(eqn, vals)
    return other is not None and eqn.invars[other] is jaxpr.invars[0]


def relu_rules(backward: Backward) -> dict[str, interpret.Rule]:
    """The interpreter rule table that gives every recognised ReLU the ``backward`` rule.

    Args:
      backward: ``"guided"`` or ``"deconvnet"``.

    Returns:
      ``{primitive: rule(eqn, invals) -> outvals}`` for :func:`visjax.base.interpret.eval_jaxpr`.
    """
    if backward not in BACKWARDS:
        raise ValueError(f"`backward` must be one of {BACKWARDS}, got {backward!r}")
    relu = _RELUS[backward]

    def max_rule(eqn, invals):
        other = _zero_operand(eqn, invals)
        if other is None:
            return interpret._bind(eqn, invals)
        x = jnp.broadcast_to(invals[other], eqn.outvars[0].aval.shape)
        return [relu(x).astype(eqn.outvars[0].aval.dtype)]

    def custom_jvp_rule(eqn, invals):
        if eqn.params.get("num_consts", 0) == 0 and _is_relu_body(eqn.params["call_jaxpr"]):
            return [relu(invals[0])]
        # Another custom function (relu6, GELU, ...): bound as traced, keeping its derivative.
        return interpret._bind(eqn, invals)

    return {
        "max": max_rule,
        "custom_jvp_call": custom_jvp_rule,
        "custom_vjp_call": interpret._bind,
        "custom_vjp_call_jaxpr": interpret._bind,
    }


# --------------------------------------------------------------------------- the methods


def modified_forward(
    model: Model, backward: Backward, layer: str | None = None
) -> Callable[..., Any]:
    """The model's forward ``x -> output`` (a batch) with every ReLU's backward replaced.

    The output equals ``model(x)``; only derivatives differ. The forward is traced abstractly once
    per input shape (cached) and the parameters enter as arguments. With ``layer``, the forward is
    ``(x, value) -> output`` with the layer's activation replaced by ``value`` (as
    ``Model.run(replace=...)``), so its derivative in ``value`` is the modified layer gradient.
    """
    rules = relu_rules(backward)

    def forward(x: jax.Array, value: jax.Array | None = None) -> Any:
        closed, out_tree, _ = model.trace(x)
        flat = jax.tree.leaves((model.params, model.state, x))
        names: tuple[str, ...] = ()
        on_name = None
        if layer is not None:
            names = (layer.split("#")[0],)

            def on_name(key: str, v: jax.Array) -> jax.Array:
                return value.astype(v.dtype) if key == layer else v

        outs = interpret.eval_jaxpr(closed, flat, rules=rules, names=names, on_name=on_name)
        return jax.tree.unflatten(out_tree, outs)

    return forward


def modified_gradient(
    forward: Callable[[jax.Array], Any],
    target_fn: Callable | None,
    x_i: jax.Array,
    t_i: jax.Array,
) -> jax.Array:
    """The core for one example: ``∂ target(forward(x_i[None])[0]) / ∂x_i`` shaped like ``x_i``.

    ``forward`` is a batch forward such as :func:`modified_forward` returns; the target is logit
    ``t_i`` or, when ``target_fn`` is given, ``target_fn(output_i)``.
    """

    def f(xi):
        out = forward(xi[None])[0]
        if target_fn is None:
            return out[t_i]
        s = target_fn(out)
        if jnp.shape(s) != ():
            raise ValueError(f"`target` must return a scalar per example, got shape {jnp.shape(s)}")
        return s

    return jax.grad(f)(x_i)


@functools.partial(jax.jit, static_argnames=("target_fn", "backward", "layer"))
def modified_method(model: Model, x, t, target_fn, backward: Backward, layer: str | None = None):
    """The attribution with the ``backward`` rule (checked inputs; ``layer=None``: the input)."""
    forward = modified_forward(model, backward, layer)
    if layer is None:
        core = functools.partial(modified_gradient, forward, target_fn)
        return jax.vmap(core)(x, t)
    check_layer(model, x, layer)
    z = model.activations(x, layer)[1][layer]

    def layer_core(zi, ti, xi):
        return modified_gradient(lambda a: forward(xi[None], a), target_fn, zi, ti)

    return jax.vmap(layer_core)(z, t, x)


def _modified(model: Any, x: Any, target: Target, *, layer: str | None, backward: Backward):
    model, x = prepare(model, x)
    target_fn, t = resolve(model, x, target)
    return modified_method(model, x, t, target_fn, backward, layer)


@layer_builder(lambda layer: functools.partial(_modified, layer=layer, backward="guided"))
@empty_batch
def guided_backprop(model: Any, x: Any, target: Target) -> jax.Array:
    """Guided backpropagation: the gradient with every ReLU's backward made guided.

    Each ReLU ``y = max(x, 0)`` passes back ``g ⊙ 1[x > 0] ⊙ 1[g > 0]`` instead of
    ``g ⊙ 1[x > 0]``: only where its input is positive and the incoming gradient is positive.
    The result is this modified gradient itself, not multiplied by the input. See the module
    docstring for which operations count as a ReLU.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (a static argument: pass the same function object to avoid recompiling).

    Returns:
      Attributions shaped like ``x`` (at a layer, ``at_layer(guided_backprop, layer)``: the
      modified gradient with respect to the layer's activation, shaped like it).

    Raises:
      ValueError: a ReLU lies inside a loop or branch (``scan``, ``while``, ``cond``); a target
        out of range or NaN/Inf in ``x`` (checked when concrete; under a caller's ``jit`` only
        shapes and dtypes are checked).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> guided_backprop(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8, 1)

    References:
      Springenberg, Dosovitskiy, Brox, Riedmiller, "Striving for Simplicity: The All
      Convolutional Net", 2015. https://arxiv.org/abs/1412.6806 (Captum's ``GuidedBackprop``,
      which modifies the backward of every ``nn.ReLU`` module; here every recognised ReLU
      operation, including ones Captum would miss such as a functional ``F.relu``.)
    """
    return _modified(model, x, target, layer=None, backward="guided")


@layer_builder(lambda layer: functools.partial(_modified, layer=layer, backward="deconvnet"))
@empty_batch
def deconvnet(model: Any, x: Any, target: Target) -> jax.Array:
    """Deconvnet: the gradient with every ReLU's backward replaced by ``max(g, 0)``.

    Each ReLU passes back the positive part of the incoming gradient ``g``, ignoring the sign of
    its input (the "deconvolution" of Zeiler & Fergus, where unpooling and transposed filters are
    the gradient of the other layers). The result is not multiplied by the input.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable (see :func:`guided_backprop`).

    Returns:
      Attributions shaped like ``x``.

    Raises:
      ValueError: as :func:`guided_backprop`.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> deconvnet(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8, 1)

    References:
      Zeiler, Fergus, "Visualizing and Understanding Convolutional Networks", 2014.
      https://arxiv.org/abs/1311.2901 (Captum's ``Deconvolution``.)
    """
    return _modified(model, x, target, layer=None, backward="deconvnet")
