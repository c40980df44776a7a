"""A small jaxpr interpreter that finds, captures and perturbs named values.

Layers are values marked with JAX's own naming primitive,
``jax.ad_checkpoint.checkpoint_name(h, "conv2")``, which appears in a jaxpr as an equation of the
primitive ``name`` with params ``{"name": "conv2"}``. :func:`eval_jaxpr` re-evaluates a traced
program equation by equation and hands every named value to a callback, which may record it or
return a replacement (for example ``h + delta``, so that the gradient with respect to ``delta`` at
zero is the gradient with respect to the layer's activation).

Calls (``jit``, ``remat2``, ``custom_jvp_call``, ``custom_vjp_call``) are entered only when their
body holds a name of interest; otherwise the equation is bound as it was traced, so custom
derivatives (``jax.nn.relu``'s gradient at 0) and remat policies stay intact. Names inside loops or
branches (``scan``, ``while``, ``cond``) cannot be captured per iteration: asking for one raises a
``ValueError``.

The interpreter also takes a rule table, ``rules={primitive_name: fn(eqn, invals) -> outvals}``,
which replaces how chosen primitives are evaluated (the hook later used for modified backward
rules such as guided backprop); calls are entered when their body holds a primitive in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import jax
import jax.extend.core as jcore

NAME_PRIMITIVE = "name"
# Call primitives whose body the interpreter may enter, and the param that holds it.
_CALL_BODIES = {
    "jit": "jaxpr",
    "pjit": "jaxpr",
    "remat2": "jaxpr",
    "checkpoint": "jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
}

NameCallback = Callable[[str, jax.Array], jax.Array]
Rule = Callable[[Any, list], Sequence[Any]]


def _open(jaxpr) -> tuple[jcore.Jaxpr, Sequence[Any]]:
    if isinstance(jaxpr, jcore.ClosedJaxpr):
        return jaxpr.jaxpr, jaxpr.consts
    return jaxpr, ()


def _sub_jaxprs(eqn) -> list[jcore.Jaxpr]:
    return [_open(j)[0] for j in jcore.jaxprs_in_params(eqn.params)]


def _contains(jaxpr: jcore.Jaxpr, names: Collection[str], prims: Collection[str]) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in prims:
            return True
        if eqn.primitive.name == NAME_PRIMITIVE and eqn.params["name"] in names:
            return True
        if any(_contains(sub, names, prims) for sub in _sub_jaxprs(eqn)):
            return True
    return False


def names_in(jaxpr) -> list[str]:
    """The names marked in a (closed) jaxpr, in program order, sub-jaxprs included.

    A name that occurs ``k`` times (a layer called ``k`` times) is listed once per occurrence:
    the first as ``name``, later ones as ``name#1``, ``name#2``, ... (as :func:`eval_jaxpr` keys
    them).
    """
    found: list[str] = []
    counts: dict[str, int] = {}

    def walk(jx: jcore.Jaxpr) -> None:
        for eqn in jx.eqns:
            if eqn.primitive.name == NAME_PRIMITIVE:
                found.append(_occurrence(eqn.params["name"], counts))
            for sub in _sub_jaxprs(eqn):
                walk(sub)

    walk(_open(jaxpr)[0])
    return found


def _occurrence(name: str, counts: dict[str, int]) -> str:
    k = counts.get(name, 0)
    counts[name] = k + 1
    return name if k == 0 else f"{name}#{k}"


def _bind(eqn, invals: list) -> list:
    params = eqn.primitive.get_bind_params(eqn.params)
    subfuns: Sequence[Any] = ()
    if isinstance(params, tuple):  # older JAX returned (subfuns, params)
        subfuns, params = params
    out = eqn.primitive.bind(*subfuns, *invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def eval_jaxpr(
    jaxpr,
    args: Sequence[Any],
    *,
    names: Collection[str] = (),
    on_name: NameCallback | None = None,
    rules: Mapping[str, Rule] | None = None,
) -> list:
    """Evaluate a (closed) jaxpr on flat ``args``, intercepting named values and chosen primitives.

    Args:
      jaxpr: a ``ClosedJaxpr`` (as from ``jax.make_jaxpr``) or an open ``Jaxpr`` without consts.
      args: flat input values, one per input variable.
      names: base names (as given to ``checkpoint_name``) whose values ``on_name`` must see; calls
        whose body holds one of them are entered.
      on_name: ``on_name(key, value) -> value`` for each named value whose base name is in
        ``names``; ``key`` is the name, suffixed ``#k`` for its k-th repeated occurrence. The value
        it returns replaces the named value downstream.
      rules: primitive name to ``rule(eqn, invals) -> outvals`` (a list, one per output), used
        instead of binding the primitive.

    Returns:
      The flat list of output values.

    Raises:
      ValueError: a wanted name or primitive lies inside a loop or branch, which this interpreter
        does not enter.
    """
    names = frozenset(names)
    rules = dict(rules or {})
    counts: dict[str, int] = {}
    open_jaxpr, consts = _open(jaxpr)
    return _eval(open_jaxpr, consts, list(args), names, on_name, rules, counts)


def _eval(jaxpr, consts, args, names, on_name, rules, counts) -> list:
    env: dict[Any, Any] = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    def write(v, val):
        if not isinstance(v, jcore.DropVar):
            env[v] = val

    for v, val in zip(jaxpr.constvars, consts, strict=True):
        write(v, val)
    for v, val in zip(jaxpr.invars, args, strict=True):
        write(v, val)

    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        prim = eqn.primitive.name
        if prim == NAME_PRIMITIVE:
            base = eqn.params["name"]
            value = invals[0]
            if base in names:
                key = _occurrence(base, counts)
                if on_name is not None:
                    value = on_name(key, value)
            outvals = _bind(eqn, [value])
        elif prim in rules:
            outvals = list(rules[prim](eqn, invals))
        else:
            subs = _sub_jaxprs(eqn)
            wanted = [s for s in subs if _contains(s, names, rules)]
            if not wanted:
                outvals = _bind(eqn, invals)
            elif prim in _CALL_BODIES:
                body, body_consts = _open(eqn.params[_CALL_BODIES[prim]])
                outvals = _eval(body, body_consts, invals, names, on_name, rules, counts)
            else:
                raise ValueError(
                    f"a requested layer name or primitive lies inside `{prim}` (a loop or branch); "
                    "visjax can only capture or change values outside loops and branches"
                )
        for v, val in zip(eqn.outvars, outvals, strict=True):
            write(v, val)
    return [read(v) for v in jaxpr.outvars]
