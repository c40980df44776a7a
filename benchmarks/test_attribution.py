"""Attribution methods against their floor (and Captum, when the peers are installed).

The floor of a path method is the fastest plain-JAX program computing exactly the input gradients
it needs (here: the per-example gradients at all ``N * n_steps`` points, in unrolled chunks
inside one jit, the fastest driver measured on XLA:CPU) plus nothing else.
"""

import functools

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
            rule="riemann_trapezoid",
            internal_batch_size=internal_batch_size,
        )

    return run


@pytest.mark.parametrize("batch_size", [None, CHUNK])
def test_integrated_gradients_vs_floor(benchmark, setup, batch_size):
    model, x, t = setup
    ig = jax.jit(
        functools.partial(
            va.integrated_gradients,
            n_steps=STEPS,
            rule="riemann_trapezoid",
            batch_size=batch_size,
        )
    )
    points = jnp.repeat(x, STEPS, axis=0)
    tt = jnp.repeat(t, STEPS)
    floor = jax.jit(functools.partial(floor_fn, chunk=CHUNK))
    floor_batched = jax.jit(functools.partial(floor_fn, chunk=None))
    cases = {
        "visjax IG": (ig, (model, x, t)),
        "floor (chunks of 256)": (floor, (model, points, tt)),
        "floor (one batch)": (floor_batched, (model, points, tt)),
    }
    peer = captum_ig(setup, STEPS, batch_size)
    if peer is not None:
        cases["Captum IG"] = (peer, ())
    timings = measure(cases, rounds=10, warmup=1)
    best = min(("floor (chunks of 256)", "floor (one batch)"), key=lambda k: timings[k].median_s)
    ratios = report(
        f"IG, {STEPS} riemann_trapezoid steps, {N} digits, batch_size={batch_size}",
        timings,
        baseline=best,
    )
    benchmark.extra_info.update(ratios)
    run_benchmark(benchmark, ig, model, x, t, rounds=5)


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
    points = jnp.repeat(x, samples, axis=0)
    tt = jnp.repeat(t, samples)
    floor = jax.jit(functools.partial(floor_fn, chunk=CHUNK))
    key = jax.random.key(0)
    timings = measure(
        {
            "visjax SmoothGrad": (smooth, (model, x, t, key)),
            "visjax expected grads": (eg, (model, x, t, key)),
            "floor (chunks of 256)": (floor, (model, points, tt)),
        },
        rounds=10,
        warmup=1,
    )
    ratios = report(
        f"SmoothGrad / expected gradients, {samples} samples, {N} digits",
        timings,
        baseline="floor (chunks of 256)",
    )
    benchmark.extra_info.update(ratios)
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
