"""Attention maps and rollout against one capturing forward (issue 34: at most 1.2x).

256 random sequences of 64 tokens through a fresh text transformer (2 blocks, 2 heads, width 32,
:func:`visjax.zoo.text_transformer` with ``length=64``). The floor is one jitted forward that
captures every block's attention weights (``Model.activations``), one batch; the methods are
timed as users call them (``batch_size="auto"``, no jit around them: their checks included).

The floor stays the capturing forward for rollout too: ``attention_rollout`` needs only the class
token's row, which it evaluates as a row vector times each layer's ``(A + I) / 2`` (``O(T²)`` per
layer and example, no ``T x T`` matrix products), so its own work beyond the forward is a few
elementwise passes over the weights. Before 2026-12-05 (issue 34) it formed the full rollout
matrix (``L`` batched ``T x T`` products, the first with the identity) and ran 2.2x the floor
on a quiet machine; maps ran 1.5x (chunks of 22 rows padded to 264, and the whole
``(N, L, H, T, T)`` result copied to drop the padding: chunk counts that divide the batch are
now preferred, and "auto" takes chunks of at least 64 rows for forward work: its byte estimate
asked for 16-row chunks here, which ran 1.4x slower than 64-row ones).

``attention_maps`` returns the weights stacked ``(N, L, H, T, T)``, one copy of them that the
capturing forward (a dict of per-layer arrays) does not make: its floor is the capturing forward
followed by that stack (reported as a second floor; the ratio printed is against the first).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import measure, report, run_benchmark
from visjax.attention import attention_layers, attention_maps, attention_rollout
from visjax.zoo import text_transformer

N, T = 256, 64


def capturing_forward(model, x, layers):
    return model.activations(x, layers)[1]


def capturing_forward_stacked(model, x, layers):
    """The floor of ``attention_maps``: the same capture, in its ``(N, L, H, T, T)`` layout."""
    weights = model.activations(x, layers)[1]
    return jnp.stack([weights[p] for p in layers], axis=1)


def test_rollout_and_maps_vs_capturing_forward(benchmark):
    model = text_transformer(length=T, seed=0)
    x = np.random.default_rng(0).integers(0, 21, size=(N, T)).astype(np.int32)
    layers = attention_layers(model)
    floor = jax.jit(functools.partial(capturing_forward, layers=layers))
    stacked = jax.jit(functools.partial(capturing_forward_stacked, layers=layers))
    cases = {
        "attention_maps": (attention_maps, (model, x)),
        "attention_rollout": (attention_rollout, (model, x)),
        "floor (capturing forward)": (floor, (model, x)),
        "floor, stacked (maps' layout)": (stacked, (model, x)),
    }
    timings = measure(cases, rounds=20, warmup=2)
    ratios = report(
        f"attention on {N} sequences of {T} tokens", timings, baseline="floor (capturing forward)"
    )
    benchmark.extra_info.update(ratios)
    run_benchmark(benchmark, attention_rollout, model, x, rounds=10)
