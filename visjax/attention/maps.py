"""Attention maps: every head of every block's attention weights, stacked."""

from __future__ import annotations

import functools
from typing import Any

import jax

from visjax.attention._core import (
    Layers,
    empty_result,
    over_rows,
    prepare,
    resolve_layers,
    stack_weights,
)
from visjax.model import Model


@functools.partial(jax.jit, static_argnames=("layers", "batch_size"))
def _maps(model: Model, x, layers, batch_size):
    return over_rows(lambda xc: stack_weights(model, xc, layers)[1], batch_size, x, forward=True)


def attention_maps(
    model: Any, x: Any, *, layers: Layers = None, batch_size: int | str | None = "auto"
) -> jax.Array:
    """The attention weights of every head of the chosen blocks, ``(N, L, H, T, T)``.

    ``out[n, l, h, i, j]`` is how much query token ``i`` attends to key token ``j`` in head ``h``
    of the ``l``-th layer of ``layers`` (each row a probability vector, as the model computed
    it). The weights are the values the model tags with a path ending in ``attn_weights``
    (``visjax.tag(softmax(q k^T / sqrt(d)), "attn_weights")`` inside the attention module, or
    :class:`visjax.attention.TaggedMultiHeadAttention`), captured in one forward.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      layers: attention paths (static), or blocks holding one each (``"blocks.0"``), in the
        order given; None takes every one, in forward order.
      batch_size: examples per chunk (``"auto"``, an int, or None for one chunk; static).

    Returns:
      ``(N, L, H, T, T)``.

    Raises:
      ValueError: a layer without attention weights (the message lists those that have them),
        weights of different shapes, NaN/Inf in ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_vit
      >>> attention_maps(digits_vit(), jnp.zeros((3, 8, 8, 1))).shape
      (3, 2, 2, 17, 17)
    """
    model, x = prepare(model, x, batch_size)
    layers = resolve_layers(model, x, layers)
    if x.shape[0] == 0:
        return empty_result(lambda x1: _maps(model, x1, layers, None), x)
    return _maps(model, x, layers, batch_size)
