"""Argument checks shared by the method packages; every message names the argument it checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(a: Any) -> bool:
    """Whether ``a`` holds values (not a tracer inside a caller's ``jit``)."""
    return not isinstance(a, jax.core.Tracer)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int; raises ``ValueError`` naming ``name`` unless an int ``>= minimum``.

    ``bool`` is refused; NumPy integers are accepted.
    """
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int | str | None:
    """``batch_size`` as an int, ``"auto"`` (chosen from the shapes and the backend) or ``None``
    (one chunk); raises ``ValueError`` naming ``name`` otherwise."""
    if batch_size is None or (isinstance(batch_size, str) and batch_size == "auto"):
        return batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"`{name}` must be a positive int, 'auto' or None, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"`{name}` must be a positive int, 'auto' or None, got {batch_size!r}")
    return int(batch_size)


def check_finite(a: Any, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if a concrete array holds NaN or Inf (under jit the
    check is skipped)."""
    # NumPy, not jnp: under a caller's jit even ops on concrete arrays would be staged.
    if is_concrete(a) and not np.isfinite(np.asarray(a)).all():
        raise ValueError(f"`{name}` contains NaN or Inf")


def check_tree_like(tree: Any, ref: Any, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` (and the first differing leaf's key path) unless
    ``tree`` has the tree structure and leaf shapes of ``ref``."""
    t_leaves, t_def = jax.tree.flatten(tree)
    r_leaves, r_def = jax.tree.flatten(ref)
    if t_def != r_def:
        raise ValueError(f"`{name}` must have the model's tree structure {r_def}, got {t_def}")
    paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(ref)]
    for path, a, b in zip(paths, t_leaves, r_leaves, strict=True):
        if np.shape(a) != np.shape(b):
            path = jax.tree_util.keystr(path)
            raise ValueError(f"`{name}{path}` must have shape {np.shape(b)}, got {np.shape(a)}")


def scalar_loss(
    loss_fn: Callable[[Any, Any], jax.Array], name: str = "loss_fn"
) -> Callable[[Any, Any], jax.Array]:
    """``loss_fn`` wrapped to raise ``ValueError`` naming ``name`` (at trace time) unless it
    returns a scalar (the batch mean)."""

    def f(params, batch):
        value = loss_fn(params, batch)
        if jnp.shape(value) != ():
            raise ValueError(
                f"`{name}` must return a scalar (the batch mean), got shape {jnp.shape(value)}"
            )
        return value

    return f


def check_non_negative(value: Any, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if a concrete ``value`` (a scalar or an array) holds a
    negative, NaN or Inf entry (0 is allowed; under jit the check is skipped)."""
    if is_concrete(value):
        v = np.asarray(value, dtype=np.float64)
        if not (np.isfinite(v) & (v >= 0)).all():
            raise ValueError(f"`{name}` must be finite and >= 0, got {value!r}")


def check_key(key: Any, name: str = "key") -> None:
    """Raise ``TypeError`` naming ``name`` unless ``key`` is one PRNG key: a typed key
    (``jax.random.key``) of shape ``()`` or a legacy ``uint32`` key of shape ``(2,)``."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None:
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
            return
        if dtype == jnp.uint32 and shape == (2,):  # a legacy jax.random.PRNGKey
            return
        got = f"an array of dtype {dtype} and shape {shape}"
    else:
        got = f"{type(key).__name__} {key!r}"
    raise TypeError(f"`{name}` must be one PRNG key such as jax.random.key(0), got {got}")


def as_array_or_refuse(value: Any, name: str, expected: str) -> Any:
    """``value`` as an array (one with a dtype is returned as it is; NumPy gives a str or None a
    dtype); ``ValueError`` naming ``name`` ("`name` must be <expected>, got a ragged list: ...")
    for a ragged nested sequence such as ``[[1, 2], [3]]``."""
    if hasattr(value, "dtype"):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be {expected}, got a ragged {type(value).__name__}: {value!r}"
        ) from None


def check_floating_tree(tree: Any, name: str) -> None:
    """``TypeError`` naming ``name`` (and the first offending leaf) unless ``tree`` is a non-empty
    pytree of floating-point arrays; dtypes only (no values read: tracers are fine)."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        raise TypeError(f"`{name}` must be a non-empty pytree of floating-point arrays")
    for path, a in leaves:
        dtype = jnp.result_type(a)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"`{name}` must be a pytree of floating-point arrays; "
                f"`{name}{jax.tree_util.keystr(path)}` has dtype {dtype}"
            )


def check_finite_tree(tree: Any, name: str, *, floating: bool = True) -> int:
    """The entry count of ``tree``, a pytree of arrays checked leaf by leaf (errors name ``name``
    and the leaf's key path, e.g. "`params['w']`").

    With ``floating`` (parameters a derivative is taken in) ``TypeError`` unless it is a non-empty
    pytree of floating arrays; otherwise non-floating leaves are skipped. A concrete floating leaf
    holding NaN or Inf raises ``ValueError`` (under jit the value check is skipped). Leaves on an
    accelerator are reduced there and only one flag per leaf comes back to the host (one
    transfer for the whole tree, not a copy of the parameters); host leaves are read in NumPy.
    """
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    is_float = [jnp.issubdtype(jnp.result_type(a), jnp.floating) for _, a in leaves]
    if floating and (not leaves or not all(is_float)):
        raise TypeError(f"`{name}` must be a non-empty pytree of floating-point arrays")
    checked = [(path, a) for (path, a), f in zip(leaves, is_float, strict=True) if f]
    flags = [_finite_flag(a) for _, a in checked]
    if flags and not any(isinstance(f, jax.core.Tracer) for f in flags):
        for (path, _), ok in zip(checked, jax.device_get(flags), strict=True):
            if ok is not None and not ok:
                raise ValueError(f"`{name}{jax.tree_util.keystr(path)}` contains NaN or Inf")
    return int(sum(np.size(a) for _, a in leaves))


def _finite_flag(a: Any) -> Any:
    """Whether a concrete array is all finite: a device scalar for an array on an accelerator (no
    copy to the host), a NumPy bool otherwise; ``None`` for a tracer (not checked)."""
    if not is_concrete(a):
        return None
    if isinstance(a, jax.Array) and any(d.platform != "cpu" for d in a.devices()):
        return jnp.isfinite(a).all()
    return np.isfinite(np.asarray(a)).all()
