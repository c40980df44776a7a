"""Mixed precision: run a forward pass in a low-precision dtype, accumulate in float32.

The methods that take ``dtype=`` (landscapes, integrated gradients, featviz) cast the
parameters and the floating inputs with :func:`cast_floating` just before the forward pass and
cast its outputs back to float32 (:func:`to_float32`) before any loss, sum or average.
bfloat16 keeps float32's exponent range with an 8-bit mantissa (relative rounding ~2**-8 =
0.4%): outputs agree with float32 to about 1e-2 relative, which suits surfaces and heat maps,
and on accelerators (TPU, recent GPUs) it halves memory traffic. On XLA:CPU it is usually not
faster.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check_dtype(dtype: Any, name: str = "dtype") -> Any:
    """``dtype`` as a NumPy floating dtype (e.g. ``jnp.bfloat16``), or ``None`` (the model's own
    dtype); raises ``ValueError`` naming ``name`` for anything else."""
    if dtype is None:
        return None
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(
            f"`{name}` must be a floating dtype (e.g. jnp.bfloat16) or None, got {dtype!r}"
        ) from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"`{name}` must be a floating dtype (e.g. jnp.bfloat16) or None, got {dt}")
    return dt


def _is_floating(a: Any) -> bool:
    dt = getattr(a, "dtype", None)
    if dt is None:
        return isinstance(a, float)
    return jnp.issubdtype(dt, jnp.floating)


def cast_floating(tree: Any, dtype: Any) -> Any:
    """``tree`` with its floating leaves cast to ``dtype`` (integer, bool and non-array leaves
    kept); ``dtype=None`` returns ``tree`` unchanged.

    Example:
      >>> import jax.numpy as jnp
      >>> t = cast_floating({"w": jnp.ones(2), "n": jnp.arange(2)}, jnp.bfloat16)
      >>> str(t["w"].dtype), str(t["n"].dtype)
      ('bfloat16', 'int32')
    """
    if dtype is None:
        return tree
    return jax.tree.map(lambda a: jnp.asarray(a, dtype) if _is_floating(a) else a, tree)


def to_float32(tree: Any) -> Any:
    """``tree`` with its floating leaves of less than 32 bits cast to float32 (wider kept)."""

    def up(a):
        if _is_floating(a) and np.dtype(a.dtype).itemsize < 4:
            return jnp.asarray(a, jnp.float32)
        return a

    return jax.tree.map(up, tree)
