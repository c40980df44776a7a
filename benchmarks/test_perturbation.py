"""Perturbation methods (occlusion, feature ablation) against their floor and Captum.

The floor is the fastest plain-JAX program doing the forward passes the method cannot avoid: one
jitted forward over exactly the perturbed inputs (all windows or features of all examples,
prepared beforehand and passed in), in the same chunks, summing the target logits. Both methods
(and Captum) also evaluate the unperturbed ``f(x)`` once, ``N`` more forwards: "floor + f(x)"
counts them too (25% more work with 4 features, 3% with 36 windows). Captum runs in the same
process on the same weights when the peers are installed.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.harness import measure, report, run_benchmark
from benchmarks.peers import bridge
from visjax.attribution.ablation import feature_ablation, occlusion
from visjax.attribution.masks import square_patches
from visjax.base.batching import FORWARD_UNROLL, chunked_sum
from visjax.zoo.pretrained import trained_digits_cnn

N, CHUNK = 256, 1024


@pytest.fixture(scope="module")
def setup(digits, tmp_path_factory):
    model = trained_digits_cnn(epochs=10, cache=tmp_path_factory.mktemp("cache")).model
    x = jnp.asarray(digits.test.x[:N])
    t = jnp.asarray(digits.test.y[:N])
    return model, x, t


def floor_fn(model, points, t, chunk):
    """Sum of the target logits over the given inputs (rows), in chunks: the unavoidable work."""

    def part(p, tt):
        return jnp.take_along_axis(model(p), tt[:, None], 1).sum()

    return chunked_sum(part, points, t, batch_size=chunk, max_unroll=FORWARD_UNROLL)


def perturbed(x, masks, baseline=0.0):
    """Every example with every mask ``(P, H, W, C)`` set to the baseline, example-major."""
    m = np.asarray(masks, bool)[None]
    xs = np.asarray(x)[:, None]
    return jnp.asarray(np.where(m, baseline, xs).reshape(-1, *x.shape[1:]))


def compare(benchmark, setup, title, method, kwargs, masks, peer):
    """``method(**kwargs)`` with ``batch_size=CHUNK``, with the default (``"auto"``) jitted, and
    as a user calls it (no jit around it: its eager checks included), against the floors."""
    model, x, t = setup
    fn = jax.jit(functools.partial(method, **kwargs, batch_size=CHUNK))
    points = perturbed(x, masks)
    tt = jnp.repeat(t, len(masks))
    floor = jax.jit(functools.partial(floor_fn, chunk=CHUNK))
    with_x = jnp.concatenate([x, points]), jnp.concatenate([t, tt])
    cases = {
        f"visjax batch_size={CHUNK}": (fn, (model, x, t)),
        "visjax default": (jax.jit(functools.partial(method, **kwargs)), (model, x, t)),
        "visjax default, eager call": (functools.partial(method, **kwargs), (model, x, t)),
        f"floor (chunks of {CHUNK})": (floor, (model, points, tt)),
        "floor + f(x)": (floor, (model, *with_x)),
    }
    if peer is not None:
        cases["Captum"] = (peer, ())
    timings = measure(cases, rounds=20, warmup=2)
    ratios = report(title, timings, baseline=f"floor (chunks of {CHUNK})")
    benchmark.extra_info.update(ratios)
    run_benchmark(benchmark, fn, model, x, t, rounds=5)


def test_occlusion_vs_floor_and_captum(benchmark, setup):
    kwargs = {"window": (3, 3, 1), "strides": 1}
    masks = []
    for i in range(6):
        for j in range(6):
            m = np.zeros((8, 8, 1), bool)
            m[i : i + 3, j : j + 3] = True
            masks.append(m)
    peer = bridge.captum_thunk(
        setup,
        "Occlusion",
        sliding_window_shapes=(1, 3, 3),
        no_grad=True,
        strides=1,
        perturbations_per_eval=CHUNK // N,
    )
    title = f"occlusion 3x3 stride 1 (36 windows), {N} digits"
    compare(benchmark, setup, title, occlusion, kwargs, masks, peer)


def test_feature_ablation_vs_floor_and_captum(benchmark, setup):
    mask = square_patches((8, 8, 1), 4)
    masks = [mask == k for k in range(int(mask.max()) + 1)]
    peer = None
    try:
        fm = bridge.to_torch_input(mask[None]).long()
        peer = bridge.captum_thunk(
            setup, "FeatureAblation", no_grad=True, feature_mask=fm, perturbations_per_eval=4
        )
    except ImportError:
        pass
    title = f"feature ablation 4x4 patches (4 features), {N} digits"
    compare(benchmark, setup, title, feature_ablation, {"mask": mask}, masks, peer)
