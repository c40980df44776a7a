"""Shapley value sampling, Kernel SHAP and LIME against their floor (and Captum, when installed).

The floor of a perturbation method is one jitted forward pass over exactly the perturbed inputs it
must evaluate (built beforehand, so the floor does not pay for building them), in the same chunks,
or as one batch when that is faster. Case: 64 test digits of the trained digits CNN, 16 features
(2x2-pixel patches), baseline 0. Each case also times the user's default call (no jit, no
``batch_size``: ``"auto"``) in the same interleaved run, and the first call (compile + run).
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.harness import measure, report, run_benchmark
from benchmarks.peers import bridge
from visjax.attribution.shapley import shapley_value_sampling
from visjax.attribution.surrogate import kernel_shap, lime
from visjax.base.batching import FORWARD_UNROLL, chunked_sum
from visjax.zoo.pretrained import trained_digits_cnn

N, CHUNK = 64, 1024
MASK = (np.arange(16).reshape(4, 4).repeat(2, 0).repeat(2, 1))[..., None]
K = 16
KEY = jax.random.key(0)

# method: (visjax function, n_samples, forward passes per example, Captum class, Captum kwargs)
CASES = {
    "shapley_value_sampling": (
        shapley_value_sampling,
        25,
        25 * K + 1,
        "ShapleyValueSampling",
        {"n_samples": 25, "perturbations_per_eval": 16},
    ),
    "kernel_shap": (
        kernel_shap,
        256,
        256 + 2,
        "KernelShap",
        {"n_samples": 256, "perturbations_per_eval": 64},
    ),
    "lime": (lime, 256, 256, "Lime", {"n_samples": 256, "perturbations_per_eval": 64}),
}


@pytest.fixture(scope="module")
def setup(digits, tmp_path_factory):
    model = trained_digits_cnn(epochs=10, cache=tmp_path_factory.mktemp("cache")).model
    x = jnp.asarray(digits.test.x[:N])
    t = jnp.asarray(digits.test.y[:N])
    return model, x, t


def floor_fn(model, points, t, chunk):
    """Sum of the target logits at the given inputs (rows), in chunks: the unavoidable work."""
    return chunked_sum(
        lambda p, tt: model(p)[jnp.arange(p.shape[0]), tt].sum(),
        points,
        t,
        batch_size=chunk,
        max_unroll=FORWARD_UNROLL,
    )


@pytest.mark.parametrize("name", list(CASES))
def test_surrogate_vs_floor_and_captum(benchmark, setup, name):
    model, x, t = setup
    fn, n_samples, per_example, captum_name, captum_kwargs = CASES[name]
    method = jax.jit(
        lambda m, x, t, k: fn(m, x, t, mask=MASK, n_samples=n_samples, key=k, batch_size=CHUNK)
    )
    rows = N * per_example
    points = jnp.tile(x, (per_example, 1, 1, 1)) * jax.random.bernoulli(KEY, 0.5, (rows, 1, 1, 1))
    tt = jnp.tile(t, per_example)
    floor = jax.jit(functools.partial(floor_fn, chunk=CHUNK))
    floor_batched = jax.jit(functools.partial(floor_fn, chunk=None))

    def default(m, x, t, k):  # the user's call: no jit, no batch_size ("auto")
        return fn(m, x, t, mask=MASK, n_samples=n_samples, key=k)

    cases = {
        f"visjax {name} default": (default, (model, x, t, KEY)),
        f"visjax {name} {CHUNK}": (method, (model, x, t, KEY)),
        f"floor (chunks of {CHUNK})": (floor, (model, points, tt)),
        "floor (one batch)": (floor_batched, (model, points, tt)),
    }
    first = {}
    for case in list(cases)[:2]:  # compile + run, before any other call of the case
        start = time.perf_counter()
        jax.block_until_ready(cases[case][0](*cases[case][1]))
        first[case] = time.perf_counter() - start
    timings = measure(cases, rounds=5, warmup=1)
    try:
        mask = bridge.to_torch_input(MASK[None]).long()
        peer = bridge.captum_thunk(
            setup, captum_name, no_grad=True, feature_mask=mask, **captum_kwargs
        )
    except ImportError:
        peer = None
    if peer is not None:
        # Captum's Lime / KernelShap fit one surrogate per example in Python: seconds per call,
        # so fewer rounds, measured right after the JAX cases in the same process.
        timings.update(measure({f"Captum {captum_name}": (peer, ())}, rounds=2, warmup=0))
    best = min(
        (f"floor (chunks of {CHUNK})", "floor (one batch)"), key=lambda k: timings[k].median_s
    )
    ratios = report(
        f"{name}, n_samples={n_samples}, {N} digits, {K} features ({rows} forward passes)",
        timings,
        baseline=best,
    )
    print("  first call (compile + run), s: " + ", ".join(f"{k} {v:.2f}" for k, v in first.items()))
    benchmark.extra_info.update(ratios)
    benchmark.extra_info.update({f"first call s: {k}": v for k, v in first.items()})
    run_benchmark(benchmark, method, model, x, t, KEY, rounds=3)
