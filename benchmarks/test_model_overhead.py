"""The model interface's layer gradient against the same gradient written by hand in JAX.

The interface evaluates the traced program with visjax's jaxpr interpreter; under ``jit`` that
interpretation happens once, at trace time, so the compiled program should cost the same as a
hand-written split of the network (the floor). Each case asserts at most 1.05x (median of
interleaved rounds): the digits CNN in its three forms, and the digits ResNet (NNX, depth 8, with
skip connections) with the gradient taken at a convolution in the middle of the network.
"""

import jax
import jax.numpy as jnp
import pytest

from benchmarks.harness import measure, report, run_benchmark
from visjax.zoo import digits_cnn, digits_resnet
from visjax.zoo.cnn import _conv

TARGET = 3
RESNET_LAYER = "stages.1.blocks.0.conv1"  # the first convolution of the middle stage
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


# --------------------------------------------------------------------------- the digits ResNet


def _resnet_conv(x, p, stride, padding):
    # As flax.nnx.Conv computes it: NHWC input, HWIO kernel, then the bias.
    y = jax.lax.conv_general_dilated(
        x, p["kernel"], (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["bias"]


def hand_resnet(params, x, deltas, *, skip=True):
    """The digits ResNet (``visjax/zoo/resnet.py``) as a plain function of its params dict.

    ``deltas[path]`` is added to the output of the convolution at ``path`` (``"stem"``,
    ``"stages.1.blocks.0.conv1"``, ...), where visjax's ``model.perturbed`` adds it. With no
    deltas the logits equal the NNX module's bit for bit (same operations in the same order).
    """
    pad1 = ((1, 1), (1, 1))  # Flax's `padding=1`; the 1x1 projection keeps Flax's "SAME"

    def conv(h, path, p, stride, padding=pad1):
        y = _resnet_conv(h, p, stride, padding)
        return y + deltas[path] if path in deltas else y

    h = jax.nn.relu(conv(x, "stem", params["stem"], 1))
    for s, stage in sorted(params["stages"].items()):
        for b, p in sorted(stage["blocks"].items()):
            path = f"stages.{s}.blocks.{b}"
            stride = 2 if s > 0 and b == 0 else 1
            a = jax.nn.relu(conv(h, f"{path}.conv1", p["conv1"], stride))
            a = conv(a, f"{path}.conv2", p["conv2"], 1)
            if skip:
                a = a + (
                    h if "proj" not in p else conv(h, f"{path}.proj", p["proj"], stride, "SAME")
                )
            h = jax.nn.relu(a)
    return h.mean(axis=(1, 2)) @ params["fc"]["kernel"] + params["fc"]["bias"]


def interface_resnet_layer_grad(model, x):
    shape = model.layer_shapes(x)[RESNET_LAYER]
    zero = jnp.zeros(shape.shape, shape.dtype)
    return jax.grad(lambda d: model.perturbed(x, {RESNET_LAYER: d})[:, TARGET].sum())(zero)


def hand_resnet_layer_grad(params, x):
    def f(d):
        return hand_resnet(params, x, {RESNET_LAYER: d})[:, TARGET].sum()

    width = params["stages"][1]["blocks"][0]["conv1"]["kernel"].shape[-1]
    h, w = -(-x.shape[1] // 2), -(-x.shape[2] // 2)  # stage 1 runs at half the resolution
    return jax.grad(f)(jnp.zeros((x.shape[0], h, w, width), x.dtype))


def test_digits_resnet_layer_gradient_overhead(benchmark, digits):
    model = digits_resnet(skip=True, depth=8, seed=0)
    assert model.kind == "nnx"
    x = jnp.asarray(digits.train.x[:256])
    # the hand-written forward is the same network
    assert jnp.allclose(hand_resnet(model.params, x, {}), model(x), rtol=1e-5, atol=1e-6)
    interface = jax.jit(interface_resnet_layer_grad)
    floor = jax.jit(hand_resnet_layer_grad)
    timings = measure(
        {
            "visjax layer grad": (interface, (model, x)),
            "hand-written floor": (floor, (model.params, x)),
        },
        rounds=60,
    )
    ratios = report(
        f"digits ResNet (nnx, depth 8), grad of logit {TARGET} w.r.t. {RESNET_LAYER}, batch 256",
        timings,
        baseline="hand-written floor",
    )
    got, want = interface(model, x), floor(model.params, x)
    assert got.shape == want.shape == (256, 4, 4, 32)
    assert jnp.abs(want).max() > 0
    assert jnp.allclose(got, want, rtol=1e-5, atol=1e-7)
    benchmark.extra_info.update(
        {
            "ratio_to_floor": ratios["visjax layer grad"],
            "floor_ms": timings["hand-written floor"].median_s * 1e3,
        }
    )
    run_benchmark(benchmark, interface, model, x)
    assert ratios["visjax layer grad"] <= MAX_RATIO
