"""Targets and input checks shared by the attribution methods.

A target is an int class (the same for every example), an int array of shape ``(N,)``, or a
callable mapping one example's output to a scalar (vmapped over the batch). Values are checked
eagerly when concrete (a target out of range, NaN/Inf in ``x``); under a caller's ``jit`` they are
tracers and only shapes and dtypes are checked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import as_array_or_refuse, check_key
from visjax.base.checks import check_batch_size as check_batch_size
from visjax.base.checks import check_finite as check_finite
from visjax.base.checks import check_positive_int as check_positive_int
from visjax.base.checks import is_concrete as is_concrete
from visjax.model import Model, as_model

Target = int | jax.Array | np.ndarray | Callable[[jax.Array], jax.Array]
ExampleFn = Callable[[jax.Array, jax.Array], jax.Array]


def prepare(model: Any, x: Any) -> tuple[Model, jax.Array]:
    """The model as a :class:`Model` and ``x`` checked (rank, dtype, finite); for a model with
    ``wrt`` (a pytree input), the model bound to ``x``'s fixed leaves and the ``wrt`` leaf."""
    model, x = as_model(model).bind(x)
    check_finite(x, "x")
    return model, x


def select_output(target_fn: Callable | None, out_i: jax.Array, t_i: jax.Array) -> jax.Array:
    """One example's scalar: ``out_i[t_i]``, or ``target_fn(out_i)`` (checked to be a scalar)."""
    if target_fn is None:
        return out_i[t_i]
    s = target_fn(out_i)
    if jnp.shape(s) != ():
        raise ValueError(f"`target` must return a scalar per example, got shape {jnp.shape(s)}")
    return s


def example_fn(model: Model, target_fn: Callable | None) -> ExampleFn:
    """The per-example scalar ``f(x_i, t_i)``: logit ``t_i``, or ``target_fn(output_i)``."""
    return lambda xi, ti: select_output(target_fn, model(xi[None])[0], ti)


def layer_example_fn(model: Model, target_fn: Callable | None, layer: str) -> ExampleFn:
    """``f(a_i, (t_i, x_i))``: the target as a function of layer ``layer``'s activation ``a_i``.

    The network runs on ``x_i`` with the layer's value replaced by ``a_i``, so paths that bypass
    the layer (skip connections) still see ``x_i``.
    """

    def f(ai, ctx):
        ti, xi = ctx
        out = model.run(xi[None], replace={layer: ai[None]})[0]
        return select_output(target_fn, out[0], ti)

    return f


def check_layer(model: Model, x: Any, layer: str) -> None:
    """Raise ``ValueError`` naming ``layer`` unless it is a layer path of ``model`` (shapes
    only: works under jit)."""
    known = model.layer_shapes(x)
    if layer not in known:
        raise ValueError(f"`layer` names an unknown layer {layer!r}; known layers: {list(known)}")


def attributed_space(model: Model, x, baseline, t, target_fn, layer):
    """``(f, z, z_baseline, ctx)``: what a method attributes to, in input or layer space."""
    if layer is None:
        return example_fn(model, target_fn), x, baseline, t
    check_layer(model, x, layer)
    z = model.activations(x, layer)[1][layer]
    zb = None if baseline is None else model.activations(baseline, layer)[1][layer]
    return layer_example_fn(model, target_fn, layer), z, zb, (t, x)


def resolve(model: Model, x: jax.Array, target: Target) -> tuple[Callable | None, jax.Array]:
    """Check ``target`` and return ``(target_fn or None, per-example class indices (N,))``.

    A callable target gives ``(target, zeros)``; an int or int array gives ``(None, t)``.
    """
    n = x.shape[0]
    if callable(target):
        return target, jnp.zeros((n,), jnp.int32)
    out = model.output_shape(x)
    if not isinstance(out, jax.ShapeDtypeStruct) or out.ndim != 2:
        raise ValueError(
            "an integer `target` needs a model output of shape (N, classes); got "
            f"{getattr(out, 'shape', type(out).__name__)}: pass a callable `target`"
        )
    n_classes = out.shape[1]
    t = target
    if isinstance(t, bool) or t is None:
        raise TypeError(
            f"`target` must be an int, an int array of shape (N,) or a callable, got {t!r}"
        )
    if isinstance(t, int | np.integer):
        t = jnp.full((n,), int(t), jnp.int32)
    t = _as_array(t)
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(
            "`target` must be an int, an int array of shape (N,) or a callable, "
            f"got dtype {t.dtype}"
        )
    if t.shape == ():
        t = jnp.broadcast_to(t, (n,))
    if t.shape != (n,):
        raise ValueError(f"`target` must have shape ({n},) (one class per example), got {t.shape}")
    if is_concrete(t):
        tv = np.asarray(t)
        bad = (tv < 0) | (tv >= n_classes)
        if bad.any():
            raise ValueError(f"`target` must be in [0, {n_classes}), got {tv[bad].tolist()}")
    return None, jnp.asarray(t, jnp.int32)


def _as_array(target: Any) -> Any:
    """``target`` as an array (NumPy: a str or None gets a dtype); ``ValueError`` naming it for
    a ragged nested sequence such as ``[[1, 2], [3]]``."""
    return as_array_or_refuse(target, "target", "an int, an int array of shape (N,) or a callable")


def _one_target(target: Any) -> Any:
    """An empty batch's ``target`` for one stand-in example: ``(0,)`` classes become ``(1,)``."""
    if callable(target) or np.ndim(_as_array(target)) != 1:
        return target
    if np.shape(target) != (0,):
        raise ValueError(
            f"`target` must have shape (0,) (one class per example), got {np.shape(target)}"
        )
    return jnp.zeros((1,), getattr(target, "dtype", jnp.int32))


def empty_batch(method: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Decorator: ``method(model, x, target, ...)`` on an empty batch (``N = 0``) returns an empty
    result of its documented shape (like ``x``, the layer's, or the CAM grid's) without compiling
    the method's program.

    The shape is the method's own, found by tracing it (``jax.eval_shape``, no compilation) on one
    example of zeros with the same arguments, so every argument is checked as for a real batch.
    """

    @functools.wraps(method)
    def wrapped(model: Any, x: Any, *args: Any, **kwargs: Any) -> jax.Array:
        if np.ndim(x) == 0 or np.shape(x)[0] != 0:
            return method(model, x, *args, **kwargs)
        model, x = prepare(model, x)
        args, kwargs = list(args), dict(kwargs)
        if args:
            args[0] = _one_target(args[0])
        elif "target" in kwargs:
            kwargs["target"] = _one_target(kwargs["target"])
        one = jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)
        spec = jax.eval_shape(lambda x1: method(model, x1, *args, **kwargs), one)
        return jnp.asarray(np.zeros((0, *spec.shape[1:]), spec.dtype))

    return wrapped


def require_key(key: Any, method: str) -> jax.Array:
    if key is None:
        raise ValueError(
            f"`key` is required: {method} draws random numbers (pass jax.random.key(...))"
        )
    check_key(key)
    return key
