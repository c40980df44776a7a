"""Reading traced programs, shared by the rule-based interpreters (DeepLIFT, LRP)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from visjax.base import interpret

_CALLS = interpret._CALL_BODIES


def elementwise_body(closed: Any, shape: tuple[int, ...], allowed: Collection[str]) -> bool:
    """Whether a call's body (a ``custom_jvp_call``'s, ``jit``'s, ...) is element-wise on values
    of ``shape``: only primitives in ``allowed`` (nested calls entered), every operand and result
    a scalar or of ``shape``, broadcasts only from scalars. ``jax.nn.relu`` and GELU are."""
    jaxpr = interpret._open(closed)[0]
    if any(v.aval.shape not in ((), shape) for v in jaxpr.invars):
        return False
    for e in jaxpr.eqns:
        name = e.primitive.name
        if name in _CALLS:
            if not elementwise_body(e.params[_CALLS[name]], shape, allowed):
                return False
        elif name not in allowed:
            return False
        if name == "broadcast_in_dim" and e.invars[0].aval.shape != ():
            return False
        if any(o.aval.shape not in ((), shape) for o in e.outvars):
            return False
    return True
