"""The model interface's layer gradient against the same gradient written by hand in JAX.

The interface evaluates the traced program with visjax's jaxpr interpreter; under ``jit`` that
interpretation happens once, at trace time, so the compiled program should cost the same as a
hand-written split of the network (the floor). The case asserts at most 1.05x (median of
interleaved rounds).
"""

import jax
import jax.numpy as jnp
import pytest

from benchmarks.harness import measure, report, run_benchmark
from visjax.zoo import digits_cnn
from visjax.zoo.cnn import _conv

TARGET = 3
MAX_RATIO = 1.05


def interface_layer_grad(model, x):
    shape = model.layer_shapes(x)["conv2"]
    zero = jnp.zeros(shape.shape, shape.dtype)
    return jax.grad(lambda d: model.perturbed(x, {"conv2": d})[:, TARGET].sum())(zero)


def hand_layer_grad(params, x):
    def f(d):
        h = jax.nn.relu(_conv(x, params["conv1"]))
        a2 = _conv(h, params["conv2"]) + d
        h = jax.nn.relu(a2).mean(axis=(1, 2))
        return (h @ params["fc"]["kernel"] + params["fc"]["bias"])[:, TARGET].sum()

    return jax.grad(f)(jnp.zeros((x.shape[0], *x.shape[1:3], 32), x.dtype))


@pytest.mark.parametrize("form", ["nnx", "linen", "function"])
def test_digits_cnn_layer_gradient_overhead(benchmark, digits, form):
    model = digits_cnn(form, seed=0)
    x = jnp.asarray(digits.train.x[:256])
    interface = jax.jit(interface_layer_grad)
    floor = jax.jit(hand_layer_grad)
    timings = measure(
        {
            "visjax layer grad": (interface, (model, x)),
            "hand-written floor": (floor, (model.params, x)),
        },
        rounds=60,
    )
    ratios = report(
        f"digits CNN ({form}), grad of logit {TARGET} w.r.t. conv2, batch 256",
        timings,
        baseline="hand-written floor",
    )
    assert jnp.allclose(interface(model, x), floor(model.params, x), rtol=1e-5, atol=1e-7)
    benchmark.extra_info.update(
        {
            "ratio_to_floor": ratios["visjax layer grad"],
            "floor_ms": timings["hand-written floor"].median_s * 1e3,
        }
    )
    run_benchmark(benchmark, interface, model, x)
    assert ratios["visjax layer grad"] <= MAX_RATIO
