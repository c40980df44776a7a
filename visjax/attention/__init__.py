"""Attention: maps, rollout, flow and gradient-weighted rollout of a transformer's attention.

Attention weights are the values a model tags with a path whose last part is ``attn_weights``,
``(N, heads, T, T)`` (:mod:`visjax.attention.modules` says how to tag them, and offers a tagged
``nnx.MultiHeadAttention``). Every method finds them itself (``layers=None``) or takes paths.
"""

from visjax.attention._core import attention_layers as attention_layers
from visjax.attention.flow import attention_flow as attention_flow
from visjax.attention.maps import attention_maps as attention_maps
from visjax.attention.modules import TaggedMultiHeadAttention as TaggedMultiHeadAttention
from visjax.attention.modules import tagged_attention as tagged_attention
from visjax.attention.rollout import attention_rollout as attention_rollout
from visjax.attention.rollout import attention_rollout_matrix as attention_rollout_matrix
from visjax.attention.rollout import gradient_rollout as gradient_rollout
from visjax.attention.rollout import rollout as rollout
from visjax.attention.rollout import rollout_row as rollout_row

__all__ = [
    "TaggedMultiHeadAttention",
    "attention_flow",
    "attention_layers",
    "attention_maps",
    "attention_rollout",
    "attention_rollout_matrix",
    "gradient_rollout",
    "rollout",
    "rollout_row",
    "tagged_attention",
]
