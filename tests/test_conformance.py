"""The conformance suite: every public method, one line each, checked the same way.

Each case is ``fn(model, x, target) -> array`` with a batch-first result. For each case this
checks that it runs under ``jax.jit`` and agrees with the eager call, that a batch equals the
stack of single examples, that a second jitted call with new inputs does not trace again, and
that the output is finite with the documented shape. A new public method is covered by adding
one ``Case`` line.

Methods that draw random numbers (``random=True``) get the same key in every call; their noise is
drawn for the batch as a whole, so a single example sees another draw and the batch-versus-single
check is replaced by "same key, same result".
"""

from collections.abc import Callable
from functools import cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import attention
from visjax import attribution as va
from visjax.attribution import cam, deconvnet, deeplift, deeplift_shap, guided_backprop, metrics
from visjax.inspect import feature_maps
from visjax.zoo import digits_cnn, digits_vit


class Case(NamedTuple):
    name: str
    fn: Callable  # (model, x, target) -> batch-first array
    shape: Callable  # x.shape -> expected output shape
    rtol: float = 1e-5
    random: bool = False
    atol: float = 1e-6


KEY = jax.random.key(11)
GRID8 = np.arange(8).reshape(2, 4).repeat(4, 0).repeat(2, 1)[..., None]  # 8 features on 8x8x1


def SAME(s):
    return s


def MAP(s):  # a class activation map on conv2's 8 x 8 grid
    return s[:3]


@cache
def _vit():
    return digits_vit(seed=1)


# Built now, outside any trace: the cases first ask for it inside their jit traces, where building
# it would need `jax.ensure_compile_time_eval` (op-by-op initialisation: 3.1 s against 0.6 s).
_vit()


SMALL_MAPS = {  # the similarities' windows and cells for 8x8 maps
    "ssim_kw": {"win_size": 3},
    "hog_kw": {"pixels_per_cell": (2, 2), "cells_per_block": (2, 2)},
}


def _halve(params, x, y):  # data_randomisation's train_fn: a fixed change of the weights
    return jax.tree.map(lambda a: 0.5 * a - 0.01, params)


def _maps(model, x, target):  # two (N, 8, 8) maps, never constant (their similarity: NaN)
    ramp = jnp.arange(64.0).reshape(8, 8) / 64
    return va.saliency(model, x, target)[..., 0] + ramp, jnp.asarray(x)[..., 0] + ramp


def _stack(scores):
    return jnp.stack([scores[s] for s in sorted(scores)], axis=1)


def _layer_grad(model, x, target):
    spec = model.layer_shapes(x)["conv2"]
    zero = jnp.zeros(spec.shape, spec.dtype)

    def f(d):
        logits = model.perturbed(x, {"conv2": d})
        return jnp.take_along_axis(logits, target[:, None], axis=1).sum()

    return jax.grad(f)(zero)


CASES = [
    Case("Model.__call__", lambda m, x, t: m(x), lambda s: (s[0], 10)),
    Case("Model.apply", lambda m, x, t: m.apply(m.params, x), lambda s: (s[0], 10)),
    Case(
        "Model.activations",
        lambda m, x, t: m.activations(x, "conv1")[1]["conv1"],
        lambda s: (*s[:3], 16),
    ),
    Case("Model.perturbed (layer gradient)", _layer_grad, lambda s: (*s[:3], 32)),
    Case("saliency", lambda m, x, t: va.saliency(m, x, t), SAME),
    Case("gradient_x_input", lambda m, x, t: va.gradient_x_input(m, x, t), SAME),
    Case("guided_backprop", lambda m, x, t: guided_backprop(m, x, t), SAME),
    Case("deconvnet", lambda m, x, t: deconvnet(m, x, t), SAME),
    Case(
        "integrated_gradients",
        lambda m, x, t: va.integrated_gradients(m, x, t, n_steps=8, batch_size=12),
        SAME,
        rtol=1e-4,
    ),
    Case(
        "at_layer(integrated_gradients)",
        lambda m, x, t: va.at_layer(va.integrated_gradients, "conv1")(m, x, t, n_steps=4),
        lambda s: (*s[:3], 16),
        rtol=1e-4,
    ),
    Case(
        "at_layer(gradient_x_input)",
        lambda m, x, t: va.at_layer(va.gradient_x_input, "conv2")(m, x, t),
        lambda s: (*s[:3], 32),
    ),
    Case(
        "at_layer(partial(integrated_gradients))",
        lambda m, x, t: va.at_layer(partial(va.integrated_gradients, n_steps=4), "conv1")(m, x, t),
        lambda s: (*s[:3], 16),
        rtol=1e-4,
    ),
    Case(
        "at_layer(guided_backprop)",
        lambda m, x, t: va.at_layer(guided_backprop, "conv2")(m, x, t),
        lambda s: (*s[:3], 32),
    ),
    Case(
        "at_layer(deeplift)",
        lambda m, x, t: va.at_layer(deeplift, "conv2")(m, x, t, baseline=0.2),
        lambda s: (*s[:3], 32),
    ),
    Case(
        "at_layer(expected_gradients)",
        lambda m, x, t: va.at_layer(va.expected_gradients, "conv1")(
            m, x, t, references=jnp.zeros((2, 8, 8, 1)) + 0.5, n_samples=4, key=KEY
        ),
        lambda s: (*s[:3], 16),
        random=True,
    ),
    Case(
        "at_layer(noise_tunnel(saliency))",
        lambda m, x, t: va.at_layer(va.noise_tunnel(va.saliency, n_samples=3, stdev=0.1), "conv2")(
            m, x, t, key=KEY
        ),
        lambda s: (*s[:3], 32),
        random=True,
    ),
    Case(
        "blur_integrated_gradients",
        lambda m, x, t: va.blur_integrated_gradients(m, x, t, n_steps=8, max_sigma=2.0),
        SAME,
        rtol=1e-3,
    ),
    Case(
        "expected_gradients",
        lambda m, x, t: va.expected_gradients(
            m, x, t, references=jnp.zeros((2, 8, 8, 1)) + 0.5, n_samples=4, key=KEY
        ),
        SAME,
        random=True,
    ),
    Case("deeplift", lambda m, x, t: deeplift(m, x, t, baseline=0.2), SAME),
    # LRP divides by each layer's (stabilised) output: float32 rounding of a batched vs a single
    # convolution is amplified to ~3e-5 relative
    Case("lrp", lambda m, x, t: va.lrp(m, x, t), SAME, rtol=1e-4, atol=1e-5),
    Case(
        "lrp(epsilon_alpha2_beta1)",
        lambda m, x, t: va.lrp(m, x, t, composite="epsilon_alpha2_beta1"),
        SAME,
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "at_layer(lrp)",
        lambda m, x, t: va.at_layer(va.lrp, "conv2")(m, x, t),
        lambda s: (*s[:3], 32),
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "deeplift_shap",
        lambda m, x, t: deeplift_shap(m, x, t, references=jnp.zeros((2, 8, 8, 1)) + 0.5),
        SAME,
    ),
    Case(
        "noise_tunnel(saliency)",
        lambda m, x, t: va.noise_tunnel(va.saliency, n_samples=3, stdev=0.1)(m, x, t, key=KEY),
        SAME,
        random=True,
    ),
    Case(
        "occlusion",
        lambda m, x, t: va.occlusion(m, x, t, window=(3, 3, 1), batch_size=50),
        SAME,
        rtol=1e-4,
    ),
    Case(
        "occlusion (stride 2, baseline)",
        lambda m, x, t: va.occlusion(m, x, t, window=(2, 2), strides=2, baseline=0.3),
        SAME,
        rtol=1e-4,
    ),
    Case(
        "feature_ablation",
        lambda m, x, t: va.feature_ablation(
            m, x, t, mask=va.square_patches((8, 8, 1), 2), batch_size=24
        ),
        SAME,
        rtol=1e-4,
    ),
    Case(
        "feature_ablation (per element)",
        lambda m, x, t: va.feature_ablation(m, x, t, baseline=0.5),
        SAME,
        rtol=1e-4,
    ),
    Case(
        "shapley_value_sampling",
        lambda m, x, t: va.shapley_value_sampling(
            m, x, t, mask=GRID8, n_samples=4, key=KEY, batch_size=40
        ),
        SAME,
        rtol=1e-4,
        random=True,
    ),
    Case(
        "exact_shapley",
        lambda m, x, t: va.exact_shapley(m, x, t, mask=GRID8, batch_size=128),
        SAME,
        rtol=1e-4,
    ),
    Case(
        "kernel_shap",
        lambda m, x, t: va.kernel_shap(m, x, t, mask=GRID8, n_samples=64, key=KEY, batch_size=40),
        SAME,
        rtol=1e-4,
        random=True,
    ),
    Case(
        "lime",
        lambda m, x, t: va.lime(m, x, t, mask=GRID8, n_samples=64, key=KEY, batch_size=40),
        SAME,
        rtol=1e-4,
        random=True,
    ),
    Case("grad_cam", lambda m, x, t: cam.grad_cam(m, x, t, layer="conv2"), MAP),
    Case("grad_cam_plus_plus", lambda m, x, t: cam.grad_cam_plus_plus(m, x, t, layer="conv2"), MAP),
    Case("xgrad_cam", lambda m, x, t: cam.xgrad_cam(m, x, t, layer="conv2"), MAP),
    Case("hires_cam", lambda m, x, t: cam.hires_cam(m, x, t, layer="conv2"), MAP),
    Case("layer_cam", lambda m, x, t: cam.layer_cam(m, x, t, layer="conv2"), MAP),
    Case("guided_grad_cam", lambda m, x, t: cam.guided_grad_cam(m, x, t, layer="conv2"), SAME),
    Case(
        "score_cam",
        lambda m, x, t: cam.score_cam(m, x, t, layer="conv2", batch_size=40),
        MAP,
        rtol=1e-4,
    ),
    Case(
        "ablation_cam",
        lambda m, x, t: cam.ablation_cam(m, x, t, layer="conv2", batch_size=40),
        MAP,
        rtol=1e-4,
    ),
    Case("full_grad", lambda m, x, t: cam.full_grad(m, x, t), MAP, rtol=1e-4),
    # A float32 SVD fixes the map to eps32 ‖M‖_F (1 + s₁/(s₁ − s₂)) ≈ 1.4e-5 here (conv2's gap is
    # 7% of s₁), and batch vs single examples round differently (OPENBLAS_CORETYPE changes it too).
    Case("eigen_cam", lambda m, x, t: cam.eigen_cam(m, x, t, layer="conv2"), MAP, atol=5e-5),
    Case("eigen_grad_cam", lambda m, x, t: cam.eigen_grad_cam(m, x, t, layer="conv2"), MAP),
    Case(
        "multi_layer(grad_cam)",
        lambda m, x, t: cam.multi_layer(cam.grad_cam, ["conv1", "conv2"])(m, x, t),
        MAP,
    ),
    # attribution metrics (visjax.attribution.metrics): the curves or scores per example
    Case(
        "deletion",
        lambda m, x, t: metrics.deletion(m, x, t, va.saliency, n_steps=4).curves,
        lambda s: (s[0], 5),
    ),
    Case(
        "insertion",
        lambda m, x, t: metrics.insertion(m, x, t, va.saliency, n_steps=4).auc,
        lambda s: (s[0],),
    ),
    Case(
        "road",
        lambda m, x, t: metrics.road(m, x, t, va.saliency, key=KEY).curves,
        lambda s: (s[0], 9),
        random=True,
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "infidelity",
        lambda m, x, t: metrics.infidelity(m, x, t, va.saliency, key=KEY),
        lambda s: (s[0],),
        random=True,
        rtol=1e-4,
        atol=1e-7,
    ),
    Case(
        "sensitivity_max",
        lambda m, x, t: metrics.sensitivity_max(va.saliency, m, x, t, key=KEY),
        lambda s: (s[0],),
        random=True,
        rtol=1e-4,
    ),
    Case(
        "relevance_rank",
        lambda m, x, t: metrics.relevance_rank(va.saliency(m, x, t), GRID8[..., 0] < 2),
        lambda s: (s[0],),
    ),
    # the similarities of the sanity checks (similarity.py); the checks: SLOW_CONFORMANCE
    Case("spearman", lambda m, x, t: metrics.spearman(*_maps(m, x, t)), lambda s: (s[0],)),
    Case(
        "ssim",
        lambda m, x, t: metrics.ssim(*_maps(m, x, t), win_size=3),
        lambda s: (s[0],),
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "hog_similarity",
        lambda m, x, t: metrics.hog_similarity(*_maps(m, x, t), **SMALL_MAPS["hog_kw"]),
        lambda s: (s[0],),
        rtol=1e-4,
        atol=1e-5,
    ),
    # visjax.inspect: feature_maps is per example; activation_stats and activation_maps reduce
    # over the dataset into NumPy arrays (no batch-first output, not traced), see tests/inspect.
    Case(
        "inspect.feature_maps",
        lambda m, x, t: feature_maps(m, x, layer="conv2"),
        lambda s: (*s[:3], 32),
    ),
    # visjax.attention runs on a tiny ViT (same 8x8x1 input) instead of the CNN `m`.
    Case(
        "attention.maps",
        lambda m, x, t: attention.attention_maps(_vit(), x),
        lambda s: (s[0], 2, 2, 17, 17),
    ),
    Case(
        "attention.rollout",
        lambda m, x, t: attention.attention_rollout(_vit(), x, discard_ratio=0.2),
        lambda s: (s[0], 16),
    ),
    Case(
        "attention.gradient_rollout",
        lambda m, x, t: attention.gradient_rollout(_vit(), x, t),
        lambda s: (s[0], 16),
    ),
]


# Sanity checks (randomisation.py): over 3 s each (every call compiles the randomised models'
# program), so their lines run in a slow test of their own (tests/conftest.py SLOW_CASES).
SLOW_CONFORMANCE = [
    Case(
        "model_randomisation",
        lambda m, x, t: metrics.model_randomisation(
            m, x, t, va.saliency, key=KEY, layers=["fc", "conv2"], similarity=("spearman",)
        ).scores["spearman"].T,
        lambda s: (s[0], 2),
        rtol=1e-4,
        atol=1e-5,
    ),
    Case(
        "data_randomisation",
        lambda m, x, t: _stack(
            metrics.data_randomisation(
                m, x, t, t, va.saliency, train_fn=_halve, key=KEY, **SMALL_MAPS
            ).scores
        ),
        lambda s: (s[0], 4),
        rtol=1e-4,
        atol=1e-5,
    ),
]


@pytest.fixture(scope="module")
def model():
    return digits_cnn("nnx", seed=3)


@pytest.fixture(scope="module")
def inputs():
    x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1))
    return x, jnp.array([0, 3, 7, 9])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conformance(case, model, inputs):
    x, target = inputs
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return case.fn(m, x, t)

    jitted = jax.jit(traced)
    out = jitted(model, x, target)
    # documented shape, finite
    assert out.shape == case.shape(x.shape)
    assert bool(jnp.all(jnp.isfinite(out)))
    # jit agrees with the eager call
    np.testing.assert_allclose(out, case.fn(model, x, target), rtol=case.rtol, atol=case.atol)
    if case.random:
        np.testing.assert_array_equal(out, jitted(model, x, target))
    else:  # a batch equals the stack of single examples
        singles = [case.fn(model, x[i : i + 1], target[i : i + 1]) for i in range(x.shape[0])]
        np.testing.assert_allclose(out, jnp.concatenate(singles), rtol=case.rtol, atol=case.atol)
    # a second call with new values and new weights of the same shapes does not trace again
    new_model = model.replace(params=jax.tree.map(lambda a: a * 0.9, model.params))
    jitted(new_model, x + 0.5, target[::-1]).block_until_ready()
    assert len(traces) == 1


@pytest.mark.parametrize("case", SLOW_CONFORMANCE, ids=lambda c: c.name)
def test_conformance_slow(case, model, inputs):
    test_conformance(case, model, inputs)
