"""The gradient family: saliency and gradient x input (at the input or, via ``at_layer``, a layer).

The core of each method is written for one example (``f(x_i) -> scalar``) and vmapped over the
batch; the public functions check their inputs eagerly, then run one jitted program.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from visjax.attribution._target import Target, attributed_space, empty_batch, prepare, resolve
from visjax.attribution.layer import layer_builder
from visjax.model import Model


def input_gradients(f: Callable, x: jax.Array, ctx: Any) -> jax.Array:
    """``∂f(x_i, ctx_i)/∂x_i`` for every example: the per-example gradient, vmapped."""
    return jax.vmap(jax.grad(f), in_axes=(0, 0))(x, ctx)


@functools.partial(jax.jit, static_argnames=("target_fn", "layer", "absolute", "times_input"))
def _gradient_method(model: Model, x, t, target_fn, layer, absolute: bool, times_input: bool):
    f, z, _, ctx = attributed_space(model, x, None, t, target_fn, layer)
    g = input_gradients(f, z, ctx)
    if times_input:
        g = g * z
    return jnp.abs(g) if absolute else g


def _saliency(
    model: Any, x: Any, target: Target, *, layer: str | None, absolute: bool = True
) -> jax.Array:
    model, x = prepare(model, x)
    target_fn, t = resolve(model, x, target)
    return _gradient_method(model, x, t, target_fn, layer, bool(absolute), False)


def _gradient_x_input(model: Any, x: Any, target: Target, *, layer: str | None) -> jax.Array:
    model, x = prepare(model, x)
    target_fn, t = resolve(model, x, target)
    return _gradient_method(model, x, t, target_fn, layer, False, True)


@layer_builder(lambda layer: functools.partial(_saliency, layer=layer))
@empty_batch
def saliency(model: Any, x: Any, target: Target, *, absolute: bool = True) -> jax.Array:
    """Saliency: the gradient of the target with respect to the input.

    ``φ(x) = |∂f(x)/∂x|`` (or the signed gradient with ``absolute=False``). At a layer
    (``at_layer(saliency, "conv2")``) it is the gradient with respect to the layer's activation.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar. A callable is a static argument: pass the same function object to avoid
        recompiling.
      absolute: return the absolute value (Captum's default; Captum calls it ``abs``).

    Returns:
      Attributions shaped like ``x`` (like the layer's activation at a layer).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> saliency(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8, 1)

    References:
      Simonyan, Vedaldi, Zisserman, "Deep Inside Convolutional Networks: Visualising Image
      Classification Models and Saliency Maps", 2014. https://arxiv.org/abs/1312.6034
      (Captum's ``Saliency``; the paper takes the maximum over colour channels, Captum and visjax
      keep every channel.)
    """
    return _saliency(model, x, target, layer=None, absolute=absolute)


@layer_builder(lambda layer: functools.partial(_gradient_x_input, layer=layer))
@empty_batch
def gradient_x_input(model: Any, x: Any, target: Target) -> jax.Array:
    """Gradient times input: ``φ(x) = x ⊙ ∂f(x)/∂x``.

    At a layer (``at_layer(gradient_x_input, "conv2")``) it is gradient times activation.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable (see :func:`saliency`).

    Returns:
      Attributions shaped like ``x``.

    References:
      Shrikumar, Greenside, Shcherbina, Kundaje, "Not Just a Black Box: Learning Important
      Features Through Propagating Activation Differences", 2016.
      https://arxiv.org/abs/1605.01713 (Captum's ``InputXGradient``).
    """
    return _gradient_x_input(model, x, target, layer=None)
