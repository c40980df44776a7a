"""A drop-in ``nnx.MultiHeadAttention`` whose attention weights are tagged for visjax.

visjax finds attention weights as values tagged with a path ending in ``attn_weights`` (see
:mod:`visjax.attention`). In your own attention module, tag the softmax output::

    weights = visjax.tag(jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(d), -1), "attn_weights")

(``(N, heads, T, T)``; inside an NNX/Linen submodule at ``"blocks.0.attn"`` the layer is
``"blocks.0.attn.attn_weights"``; a plain function names the full path itself). Flax's own
``nnx.MultiHeadAttention`` takes an ``attention_fn``: :func:`tagged_attention` is one that tags,
and :class:`TaggedMultiHeadAttention` is the module with it as the default.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn.attention import dot_product_attention_weights

from visjax.model import tag


def tagged_attention(
    query: Any,
    key: Any,
    value: Any,
    bias: Any = None,
    mask: Any = None,
    broadcast_dropout: bool = True,
    dropout_rng: Any = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: Any = None,
    precision: Any = None,
    module: Any = None,
    **kwargs: Any,
) -> jax.Array:
    """``nnx.dot_product_attention`` with its weights tagged ``"attn_weights"``.

    The weights are tagged as flax's ``dot_product_attention_weights`` returns them (after the
    softmax and any dropout; in inference mode there is none), shape ``(..., heads, q, k)``.
    """
    weights = dot_product_attention_weights(
        query,
        key,
        bias,
        mask,
        broadcast_dropout,
        dropout_rng,
        dropout_rate,
        deterministic,
        dtype,
        precision,
        module,
        **{k: v for k, v in kwargs.items() if k in ("promote_dtype", "is_causal")},
    )
    weights = tag(weights, "attn_weights")
    return jnp.einsum("...hqk,...khd->...qhd", weights, value, precision=precision)


class TaggedMultiHeadAttention(nnx.MultiHeadAttention):
    """``nnx.MultiHeadAttention`` with :func:`tagged_attention` as its ``attention_fn``.

    A drop-in replacement: same arguments and parameters, so weights load unchanged; the module
    at ``"blocks.0.attn"`` gets the layer ``"blocks.0.attn.attn_weights"``.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import visjax
      >>> attn = TaggedMultiHeadAttention(2, 8, decode=False, rngs=nnx.Rngs(0))
      >>> m = visjax.as_model(attn, input_shape=(5, 8))
      >>> [p for p in m.layers if p.endswith("attn_weights")]
      ['attn_weights']
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("attention_fn", tagged_attention)
        super().__init__(*args, **kwargs)
