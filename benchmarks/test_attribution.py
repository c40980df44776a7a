"""Attribution methods against their floor (and Captum, when the peers are installed).

The floor of a path method is the fastest plain-JAX program computing exactly the input gradients
it needs (here: the per-example gradients at all ``N * n_steps`` points, in unrolled chunks
inside one jit, the fastest driver measured on XLA:CPU) plus nothing else. Each case also times
the user's default call (no jit, no ``batch_size``: ``"auto"``) in the same interleaved run, and
the first call (compile + run) of every visjax and peer case.
"""

import functools
import time

import jax
import jax.numpy as jnp
import pytest

from benchmarks.harness import measure, report, run_benchmark
from benchmarks.peers import bridge
from visjax import attribution as va
from visjax.base.batching import chunked_sum
from visjax.zoo.pretrained import trained_digits_cnn

N, STEPS, CHUNK = 256, 64, 256


@pytest.fixture(scope="module")
def setup(digits, tmp_path_factory):
    model = trained_digits_cnn(epochs=10, cache=tmp_path_factory.mktemp("cache")).model
    x = jnp.asarray(digits.test.x[:N])
    t = jnp.asarray(digits.test.y[:N])
    return model, x, t


def floor_fn(model, points, t, chunk):
    """Sum of input gradients at the given points (rows), in chunks: the unavoidable work."""

    def f(xi, ti):
        return model(xi[None])[0, ti]

    g = jax.vmap(jax.grad(f))
    return chunked_sum(lambda p, tt: g(p, tt).sum(0), points, t, batch_size=chunk)


def captum_ig(setup, steps, internal_batch_size):
    """Captum's IntegratedGradients on the same weights, or None when the peers are absent."""
    try:
        from benchmarks.peers import bridge

        bridge.import_torch()
    except ImportError:
        return None
    import torch

    model, x, t = setup
    tm = bridge.torch_digits_cnn(model.params)
    ig = bridge.import_peer("captum.attr").IntegratedGradients(tm)
    xt = bridge.to_torch_input(x)
    tt = torch.as_tensor(t.__array__().astype("int64"))

    def run():
        return ig.attribute(
            xt,
            target=tt,
            n_steps=steps,
            method="riemann_trapezoid",  # Captum calls the rule `method`
            internal_batch_size=internal_batch_size,
        )

    return run


def first_calls(cases: dict) -> dict[str, float]:
    """Seconds of each case's first call (compile + run for JAX; call it before any other call of
    the case in the process, or the caches hide the compile)."""
    out = {}
    for name, (fn, args) in cases.items():
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out[name] = time.perf_counter() - t
    return out


def print_first_calls(first: dict[str, float]) -> None:
    print("  first call (compile + run), s: " + ", ".join(f"{k} {v:.2f}" for k, v in first.items()))


def test_integrated_gradients_vs_floor(benchmark, setup):
    """The user's default call (no ``batch_size``: ``"auto"``) next to explicit sizes, the floors
    and Captum (its default call and ``internal_batch_size=256``), in one interleaved run."""
    model, x, t = setup
    kw = {"n_steps": STEPS, "rule": "riemann_trapezoid"}

    def default(m, x, t):  # the user's call, as the quick start shows: no jit, no tuning
        return va.integrated_gradients(m, x, t, **kw)

    tuned = {
        bs: jax.jit(functools.partial(va.integrated_gradients, **kw, batch_size=bs))
        for bs in (CHUNK, None)
    }
    points = jnp.repeat(x, STEPS, axis=0)
    tt = jnp.repeat(t, STEPS)
    floor = jax.jit(functools.partial(floor_fn, chunk=CHUNK))
    floor_batched = jax.jit(functools.partial(floor_fn, chunk=None))
    visjax_cases = {
        "visjax IG default": (default, (model, x, t)),
        f"visjax IG batch_size={CHUNK}": (tuned[CHUNK], (model, x, t)),
        "visjax IG batch_size=None": (tuned[None], (model, x, t)),
    }
    cases = {
        **visjax_cases,
        "floor (chunks of 256)": (floor, (model, points, tt)),
        "floor (one batch)": (floor_batched, (model, points, tt)),
    }
    for name, internal in (("Captum IG default", None), (f"Captum IG {CHUNK}", CHUNK)):
        peer = captum_ig(setup, STEPS, internal)
        if peer is not None:
            cases[name] = (peer, ())
    first = first_calls({k: v for k, v in cases.items() if not k.startswith("floor")})
    timings = measure(cases, rounds=10, warmup=1)
    best = min(("floor (chunks of 256)", "floor (one batch)"), key=lambda k: timings[k].median_s)
    ratios = report(f"IG, {STEPS} riemann_trapezoid steps, {N} digits", timings, baseline=best)
    print_first_calls(first)
    benchmark.extra_info.update(ratios)
    benchmark.extra_info.update({f"first call s: {k}": v for k, v in first.items()})
    run_benchmark(benchmark, default, model, x, t, rounds=5)


def test_smoothgrad_and_expected_gradients_vs_floor(benchmark, setup, digits):
    model, x, t = setup
    samples = STEPS
    smooth = jax.jit(
        lambda m, x, t, k: va.noise_tunnel(
            va.saliency, n_samples=samples, stdev=0.1, batch_size=CHUNK
        )(m, x, t, key=k, absolute=False)
    )
    refs = jnp.asarray(digits.train.x[:200])
    eg = jax.jit(
        lambda m, x, t, k: va.expected_gradients(
            m, x, t, references=refs, n_samples=samples, batch_size=CHUNK, key=k
        )
    )

    def smooth_default(m, x, t, k):  # the user's calls: no jit, no batch_size
        return va.noise_tunnel(va.saliency, n_samples=samples, stdev=0.1)(
            m, x, t, key=k, absolute=False
        )

    def eg_default(m, x, t, k):
        return va.expected_gradients(m, x, t, references=refs, n_samples=samples, key=k)

    points = jnp.repeat(x, samples, axis=0)
    tt = jnp.repeat(t, samples)
    floor = jax.jit(functools.partial(floor_fn, chunk=CHUNK))
    key = jax.random.key(0)
    cases = {
        "visjax SmoothGrad default": (smooth_default, (model, x, t, key)),
        f"visjax SmoothGrad {CHUNK}": (smooth, (model, x, t, key)),
        "visjax expected grads default": (eg_default, (model, x, t, key)),
        f"visjax expected grads {CHUNK}": (eg, (model, x, t, key)),
        "floor (chunks of 256)": (floor, (model, points, tt)),
    }
    first = first_calls({k: v for k, v in cases.items() if not k.startswith("floor")})
    timings = measure(cases, rounds=10, warmup=1)
    ratios = report(
        f"SmoothGrad / expected gradients, {samples} samples, {N} digits",
        timings,
        baseline="floor (chunks of 256)",
    )
    print_first_calls(first)
    benchmark.extra_info.update(ratios)
    benchmark.extra_info.update({f"first call s: {k}": v for k, v in first.items()})
    run_benchmark(benchmark, eg, model, x, t, key, rounds=5)


@pytest.mark.parametrize(
    "method, captum_name",
    [
        ("guided_backprop", "GuidedBackprop"),
        ("deconvnet", "Deconvolution"),
        ("deeplift", "DeepLift"),
    ],
)
def test_modified_backward_vs_gradient_and_captum(benchmark, setup, method, captum_name):
    """Modified-backward methods against the plain input gradient (their floor) and Captum."""
    if not hasattr(va, method):
        pytest.skip(f"visjax.attribution.{method} not available")
    model, x, t = setup
    fn = jax.jit(getattr(va, method))
    floor = jax.jit(functools.partial(floor_fn, chunk=None))
    cases = {
        f"visjax {method}": (fn, (model, x, t)),
        "floor (plain gradient)": (floor, (model, x, t)),
    }
    peer = bridge.captum_thunk(setup, captum_name)
    if peer is not None:
        cases[f"Captum {captum_name}"] = (peer, ())
    timings = measure(cases, rounds=20, warmup=2)
    ratios = report(f"{method}, {N} digits", timings, baseline="floor (plain gradient)")
    benchmark.extra_info.update(ratios)
    run_benchmark(benchmark, fn, model, x, t, rounds=5)
