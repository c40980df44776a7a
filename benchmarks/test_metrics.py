"""Deletion curves (32 steps, 256 digits) against their floor and a per-example Python loop.

The floor is one jitted forward over exactly the perturbed inputs deletion evaluates (every step
of every example, built beforehand and passed in), in the same chunks, summing the target
probabilities. The loop is Quantus' way: per example, per step, one forward of one input.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.harness import measure, report, run_benchmark
from visjax.attribution import integrated_gradients
from visjax.attribution.metrics import deletion
from visjax.attribution.metrics.deletion import feature_ranks
from visjax.base.batching import FORWARD_UNROLL, chunked_sum
from visjax.zoo.pretrained import trained_digits_cnn

N, STEPS, CHUNK = 256, 32, 1024


@pytest.fixture(scope="module")
def setup(digits, tmp_path_factory):
    model = trained_digits_cnn(epochs=10, cache=tmp_path_factory.mktemp("cache")).model
    x = jnp.asarray(digits.test.x[:N])
    t = jnp.asarray(digits.test.y[:N])
    return model, x, t, integrated_gradients(model, x, t)


def perturbed_inputs(x, attributions, n_steps):
    rank, count = feature_ranks(attributions)
    s = jnp.arange(n_steps + 1)
    removed = (s[None, :] * count[:, None] // n_steps)[..., None, None, None]
    pts = jnp.where(rank[:, None] < removed, 0.0, x[:, None])
    return pts.reshape(-1, *x.shape[1:])


def floor_fn(model, points, t, chunk):
    def part(p, tt):
        return jnp.take_along_axis(jax.nn.softmax(model(p)), tt[:, None], 1).sum()

    return chunked_sum(part, points, t, batch_size=chunk, max_unroll=FORWARD_UNROLL)


def python_loop(model, x, t, attributions, n_steps):
    f = jax.jit(lambda v: jax.nn.softmax(model(v)))
    x, a, t = np.asarray(x), np.asarray(attributions), np.asarray(t)
    out = np.zeros((x.shape[0], n_steps + 1))
    for e in range(x.shape[0]):
        order = np.argsort(-a[e].ravel(), kind="stable")
        for s in range(n_steps + 1):
            m = np.zeros(a[e].size, bool)
            m[order[: s * a[e].size // n_steps]] = True
            xp = np.where(m.reshape(a[e].shape), 0.0, x[e])[None]
            out[e, s] = float(f(xp)[0, t[e]])
    return out


def test_deletion_vs_floor_and_loop(benchmark, setup):
    model, x, t, a = setup
    points = perturbed_inputs(x, a, STEPS)
    tt = jnp.repeat(t, STEPS + 1)
    fn = jax.jit(functools.partial(deletion, n_steps=STEPS, batch_size=CHUNK))
    floor = jax.jit(functools.partial(floor_fn, chunk=CHUNK))
    cases = {
        f"deletion batch_size={CHUNK}": (fn, (model, x, t, a)),
        "deletion default, eager call": (
            functools.partial(deletion, n_steps=STEPS),
            (model, x, t, a),
        ),
        f"floor (chunks of {CHUNK})": (floor, (model, points, tt)),
        "python loop (per example)": (
            functools.partial(python_loop, n_steps=STEPS),
            (model, x[:16], t[:16], a[:16]),
        ),
    }
    timings = measure(cases, rounds=5, warmup=1)
    ratios = report(
        f"deletion {STEPS} steps, {N} digits (loop on 16)",
        timings,
        baseline=f"floor (chunks of {CHUNK})",
    )
    benchmark.extra_info.update(ratios)
    run_benchmark(benchmark, fn, model, x, t, a, rounds=5)
