"""Attention flow (Abnar & Zuidema 2020): max-flow through the layered attention graph.

The graph has ``L + 1`` layers of ``T`` nodes (layer 0 the input tokens, layer ``l`` the tokens
after block ``l``); node ``i`` of layer ``l`` has an edge to node ``j`` of layer ``l − 1`` of
capacity ``Â_l[i, j]``, the residual-augmented attention of :mod:`visjax.attention.rollout`
(``rownormalise((A_l + I) / 2)``, heads fused). The flow of input token ``j`` is the maximum flow
from the class token at the top (node 0 of layer ``L``) to node ``j`` of layer 0. Unlike
rollout, flow takes the bottleneck of every path into account, not the product of weights.

The max-flows run on the host with :func:`scipy.sparse.csgraph.maximum_flow` (through
``jax.pure_callback``, so the whole method is one jitted program); scipy needs integer
capacities, so they are scaled by ``2^30`` and floored: the flows are exact to about ``L T 2^-30``.
One max-flow per (example, token): keep ``T`` and the batch small (the cost grows about as
``N T^2 L`` edges times ``T`` flows).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from visjax.attention._core import (
    HeadFusion,
    Layers,
    check_head_fusion,
    empty_result,
    prepare,
    resolve_layers,
    stack_weights,
)
from visjax.attention.rollout import fuse_heads, residual_normalise
from visjax.model import Model

SCALE = 2**30


def layered_graph(adjs: np.ndarray):
    """The capacity matrix (CSR, int32) of the layered graph of ``adjs`` ``(L, T, T)`` (float),
    node ``l T + i`` being token ``i`` of layer ``l``; edges run from layer ``l + 1`` to
    ``l``."""
    n_layers, t, _ = adjs.shape
    rows, cols, caps = [], [], []
    for li in range(n_layers):
        i, j = np.nonzero(adjs[li] > 0)
        rows.append((li + 1) * t + i)
        cols.append(li * t + j)
        caps.append(np.floor(adjs[li][i, j].astype(np.float64) * SCALE).astype(np.int64))
    size = (n_layers + 1) * t
    caps = np.minimum(np.concatenate(caps), np.iinfo(np.int32).max).astype(np.int32)
    return csr_matrix((caps, (np.concatenate(rows), np.concatenate(cols))), shape=(size, size))


def flows_from_class_token(adjs: np.ndarray) -> np.ndarray:
    """Max-flow from the class token at the top to every input token, ``(T,)`` float32, for one
    example's residual-augmented attention ``adjs`` ``(L, T, T)``."""
    n_layers, t, _ = adjs.shape
    graph = layered_graph(np.asarray(adjs))
    source = n_layers * t
    return np.array(
        [maximum_flow(graph, source, j).flow_value / SCALE for j in range(t)], np.float32
    )


def _host_flows(adjs: np.ndarray) -> np.ndarray:
    adjs = np.asarray(adjs)
    return np.stack([flows_from_class_token(a) for a in adjs]).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("layers", "head_fusion"))
def _flow(model: Model, x, layers, head_fusion):
    weights = stack_weights(model, x, layers)[1]
    adjs = residual_normalise(fuse_heads(weights, head_fusion))
    n, _, t, _ = adjs.shape
    spec = jax.ShapeDtypeStruct((n, t), jnp.float32)
    flows = jax.pure_callback(_host_flows, spec, adjs, vmap_method="sequential")
    return flows[:, 1:]


def attention_flow(
    model: Any, x: Any, *, layers: Layers = None, head_fusion: HeadFusion = "mean"
) -> jax.Array:
    """Attention flow: the max-flow from the class token at the top to each other input token.

    See the module docstring for the graph. The values lie in ``[0, 1]`` (the class token's
    outgoing capacity at the top is 1) and, unlike rollout's, need not sum to 1.

    Args:
      model: anything :func:`visjax.as_model` accepts, with attention weights tagged.
      x: a batch ``(N, ...)`` (small: one max-flow per example and token).
      layers: attention paths (static), or blocks holding one each; None takes every one.
      head_fusion: ``"mean"``, ``"max"`` or ``"min"`` (static).

    Returns:
      ``(N, T − 1)``.

    Raises:
      ValueError: a layer without attention weights, a bad ``head_fusion``, NaN/Inf in ``x``.

    References:
      Abnar, Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020.
      https://arxiv.org/abs/2005.00928 (their code uses networkx's max-flow on the same graph.)
    """
    model, x = prepare(model, x)
    check_head_fusion(head_fusion)
    layers = resolve_layers(model, x, layers)
    if x.shape[0] == 0:
        return empty_result(lambda x1: _flow(model, x1, layers, head_fusion), x)
    return _flow(model, x, layers, head_fusion)
