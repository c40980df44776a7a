"""A small jaxpr interpreter that finds, captures and perturbs named values.

Layers are values marked with JAX's own naming primitive,
``jax.ad_checkpoint.checkpoint_name(h, "conv2")``, which appears in a jaxpr as an equation of the
primitive ``name`` with params ``{"name": "conv2"}``. :func:`eval_jaxpr` re-evaluates a traced
program equation by equation and hands every named value to a callback, which may record it or
return a replacement (for example ``h + delta``, so that the gradient with respect to ``delta`` at
zero is the gradient with respect to the layer's activation).

Calls (``jit``, ``remat2``, ``custom_jvp_call``, ``custom_vjp_call``) are entered only when their
body holds a name of interest; otherwise the equation is bound as it was traced, so custom
derivatives (``jax.nn.relu``'s gradient at 0) and remat policies stay intact.

Names inside ``lax.scan`` (``fori_loop`` with static bounds lowers to it, and so do ``nnx.scan`` and
Linen's ``nn.scan``) are handled when the caller passes ``on_loop_name``: the scan is re-run with an
interpreted body that hands each iteration's value, with the iteration indices, to that callback
and stacks what it returns along a leading axis (one per enclosing scan, outermost first). Names
inside ``while`` or ``cond`` cannot be addressed per iteration or branch: asking for one raises a
``ValueError``.

The interpreter also takes a rule table, ``rules={primitive_name: fn(eqn, invals) -> outvals}``,
which replaces how chosen primitives are evaluated (the hook later used for modified backward
rules such as guided backprop); calls are entered when their body holds a primitive in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.extend.core as jcore
import jax.numpy as jnp

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
# (key, one iteration's value, ((index, length), ...) outermost scan first) -> that value, changed.
LoopNameCallback = Callable[[str, jax.Array, tuple], jax.Array]
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


def scan_lengths(jaxpr) -> dict[str, tuple[int, ...]]:
    """The names marked inside ``scan`` bodies (keyed as :func:`names_in` keys them) and the
    lengths of their enclosing scans, outermost first: the leading axes of their stacked values.
    """
    found: dict[str, tuple[int, ...]] = {}
    counts: dict[str, int] = {}

    def walk(jx: jcore.Jaxpr, lengths: tuple[int, ...]) -> None:
        for eqn in jx.eqns:
            if eqn.primitive.name == NAME_PRIMITIVE:
                key = _occurrence(eqn.params["name"], counts)
                if lengths:
                    found[key] = lengths
            inner = (*lengths, eqn.params["length"]) if eqn.primitive.name == "scan" else lengths
            for sub in _sub_jaxprs(eqn):
                walk(sub, inner)

    walk(_open(jaxpr)[0], ())
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
    on_loop_name: LoopNameCallback | None = None,
    loop_values: dict[str, Any] | None = None,
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
      on_loop_name: ``on_loop_name(key, value, loop) -> value`` for each wanted named value inside
        a ``scan`` body, called once per iteration: ``value`` is that iteration's value and
        ``loop`` is ``((index, length), ...)`` for the enclosing scans, outermost first (``index``
        traced). Without it, a wanted name inside a scan raises ``ValueError``.
      loop_values: a dict this fills with the values ``on_loop_name`` returned, stacked along one
        leading axis per enclosing scan (``(L, ...)`` for one scan; index ``i`` is the iteration
        that read the scan's ``xs[i]``, also for ``reverse`` scans).

    Returns:
      The flat list of output values.

    Raises:
      ValueError: a wanted name or primitive lies inside a loop or branch that this interpreter
        does not enter (``while``, ``cond``; a ``scan`` without ``on_loop_name``; a rule's
        primitive inside any loop).
    """
    names = frozenset(names)
    rules = dict(rules or {})
    counts: dict[str, int] = {}
    open_jaxpr, consts = _open(jaxpr)
    ctx = _Ctx(names, on_name, rules, on_loop_name)
    record = {} if loop_values is None else loop_values
    return _eval(open_jaxpr, consts, list(args), ctx, counts, (), record)


class _Ctx(NamedTuple):
    names: frozenset
    on_name: NameCallback | None
    rules: dict
    on_loop_name: LoopNameCallback | None


def _eval_scan(eqn, invals, ctx: _Ctx, counts, loop, record) -> list:
    """Re-run a scan whose body holds wanted names, its body interpreted (see ``on_loop_name``)."""
    p = eqn.params
    body, body_consts = _open(p["jaxpr"])
    nc, ncarry, length = p["num_consts"], p["num_carry"], p["length"]
    consts, init, xs = invals[:nc], invals[nc : nc + ncarry], invals[nc + ncarry :]
    before = dict(counts)
    after: dict[str, int] = {}

    def step(carry, inp):
        i, xs_i = inp
        # Names inside the body count once per occurrence in the program (a layer called once
        # per iteration is one layer, stacked), whatever number of times scan traces the body.
        local = dict(before)
        inner: dict[str, Any] = {}
        outs = _eval(
            body, body_consts, [*consts, *carry, *xs_i], ctx, local, (*loop, (i, length)), inner
        )
        after.clear()
        after.update(local)
        return outs[:ncarry], (outs[ncarry:], inner)

    idx = jnp.arange(length, dtype=jnp.int32)
    carry, (ys, inner) = jax.lax.scan(
        step, list(init), (idx, list(xs)), length=length, reverse=p["reverse"], unroll=p["unroll"]
    )
    counts.clear()
    counts.update(after)
    record.update(inner)
    return [*carry, *ys]


def _eval(jaxpr, consts, args, ctx: _Ctx, counts, loop, record) -> list:
    names, on_name, rules = ctx.names, ctx.on_name, ctx.rules
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
                if loop:
                    value = ctx.on_loop_name(key, value, loop)
                    record[key] = value
                elif on_name is not None:
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
                outvals = _eval(body, body_consts, invals, ctx, counts, loop, record)
            elif (
                prim == "scan"
                and ctx.on_loop_name is not None
                and not any(_contains(s, (), rules) for s in wanted)
            ):
                outvals = _eval_scan(eqn, invals, ctx, counts, loop, record)
            else:
                where = "a `scan` body" if prim == "scan" else f"`{prim}` (a loop or branch)"
                raise ValueError(
                    f"a requested layer name or primitive lies inside {where}; visjax can "
                    "capture or change named values inside `scan` (layer paths only), but not "
                    "inside `while` or `cond`, nor use modified rules inside any loop"
                )
        for v, val in zip(eqn.outvars, outvals, strict=True):
            write(v, val)
    return [read(v) for v in jaxpr.outvars]
