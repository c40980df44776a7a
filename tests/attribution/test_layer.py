"""at_layer by composition: every layer-capable method against an independent computation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax
from visjax.attribution import (
    at_layer,
    blur_integrated_gradients,
    deconvnet,
    deeplift,
    deeplift_shap,
    expected_gradients,
    feature_ablation,
    grad_cam,
    gradient_shap,
    gradient_x_input,
    guided_backprop,
    integrated_gradients,
    kernel_shap,
    noise_tunnel,
    saliency,
)

KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def relu_head():
    """``x -> h = relu(x W)`` (layer "h") ``-> relu(h) V + h U``: nonlinear after the layer, with a
    linear path (``h U``) and a ReLU on the layer's output."""
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    params = {
        "W": jax.random.normal(k1, (6, 5)),
        "V": jax.random.normal(k2, (5, 3)),
        "U": 0.3 * jax.random.normal(k3, (5, 3)),
    }

    def apply(p, x):
        h = visjax.tag(jnp.tanh(x @ p["W"]), "h")
        return jax.nn.relu(h) @ p["V"] + h @ p["U"]

    return visjax.as_model(apply, params, input_shape=(6,))


@pytest.fixture(scope="module")
def linear_head():
    """A layer followed by a linear head: the layer gradient is the same at every point."""
    k1, k2 = jax.random.split(jax.random.key(2))
    params = {"W": jax.random.normal(k1, (6, 5)), "V": jax.random.normal(k2, (5, 3))}

    def apply(p, x):
        return visjax.tag(jnp.tanh(x @ p["W"]), "h") @ p["V"]

    return visjax.as_model(apply, params, input_shape=(6,))


def batch(n=4):
    return jax.random.normal(jax.random.key(3), (n, 6))


def layer_grad(model, x, t, layer="h"):
    """``∂ f_t / ∂ a_layer`` via ``jax.grad`` of a zero perturbation (``model.perturbed``)."""
    z = model.activations(x, layer)[1][layer]

    def f(d):
        out = model.perturbed(x, {layer: d})
        return out[jnp.arange(x.shape[0]), t].sum()

    return jax.grad(f)(jnp.zeros_like(z)), z


def test_saliency_and_gradient_x_input_at_a_layer(relu_head):
    x, t = batch(), jnp.array([0, 1, 2, 0])
    g, z = layer_grad(relu_head, x, t)
    np.testing.assert_allclose(at_layer(saliency, "h")(relu_head, x, t), jnp.abs(g), rtol=1e-5)
    np.testing.assert_allclose(
        at_layer(saliency, "h")(relu_head, x, t, absolute=False), g, rtol=1e-5
    )
    np.testing.assert_allclose(at_layer(gradient_x_input, "h")(relu_head, x, t), g * z, rtol=1e-5)


def test_partial_keeps_its_arguments_and_ig_is_complete_at_the_layer(relu_head):
    x, t = batch(), 1
    base = 0.5 * jnp.ones_like(x)
    ig = functools.partial(integrated_gradients, n_steps=2048, rule="riemann_middle")
    phi = at_layer(ig, "h")(relu_head, x, t, baseline=base)
    direct = at_layer(integrated_gradients, "h")(
        relu_head, x, t, baseline=base, n_steps=2048, rule="riemann_middle"
    )
    np.testing.assert_allclose(phi, direct, rtol=1e-6)
    # completeness at the layer: f(x) − f(x with the layer replaced by the baseline's activation)
    zb = relu_head.activations(base, "h")[1]["h"]
    delta = relu_head(x)[:, t] - relu_head.run(x, replace={"h": zb})[0][:, t]
    np.testing.assert_allclose(phi.sum(1), delta, rtol=2e-3, atol=1e-5)  # ReLU kinks
    # a call's keyword overrides the partial's
    few = at_layer(ig, "h")(relu_head, x, t, baseline=base, n_steps=4)
    assert not np.allclose(few, phi)


def test_expected_gradients_at_a_layer(linear_head):
    x, t = batch(), jnp.array([2, 1, 0, 2])
    ref = 0.1 * jnp.ones((1, 6))
    g, z = layer_grad(linear_head, x, t)
    zr = linear_head.activations(ref, "h")[1]["h"]
    for method in (expected_gradients, functools.partial(gradient_shap, n_samples=3)):
        phi = at_layer(method, "h")(linear_head, x, t, references=ref, key=KEY)
        np.testing.assert_allclose(phi, g * (z - zr), rtol=1e-5, atol=1e-6)


def test_modified_gradients_at_a_layer(relu_head):
    """After the layer, the only ReLU is on the layer's output: guided/deconvnet change its
    backward, which a hand-written head reproduces."""
    x, t = batch(), jnp.array([0, 1, 2, 0])
    p = relu_head.params
    z = relu_head.activations(x, "h")[1]["h"]
    onehot = jax.nn.one_hot(t, 3)
    g_relu = onehot @ p["V"].T  # gradient arriving at relu(h)'s output
    guided = jnp.where((z > 0) & (g_relu > 0), g_relu, 0.0) + onehot @ p["U"].T
    deconv = jnp.maximum(g_relu, 0.0) + onehot @ p["U"].T
    np.testing.assert_allclose(at_layer(guided_backprop, "h")(relu_head, x, t), guided, rtol=1e-5)
    np.testing.assert_allclose(at_layer(deconvnet, "h")(relu_head, x, t), deconv, rtol=1e-5)


def test_deeplift_at_a_layer(relu_head):
    """Rescale rule on relu(h) by hand; every path goes through h, so the layer attributions sum
    to f(x) − f(baseline)."""
    x, t = batch(), jnp.array([0, 1, 2, 0])
    base = 0.3 * jnp.ones_like(x)
    p = relu_head.params
    h = relu_head.activations(x, "h")[1]["h"]
    hb = relu_head.activations(base, "h")[1]["h"]
    m = (jax.nn.relu(h) - jax.nn.relu(hb)) / (h - hb)
    onehot = jax.nn.one_hot(t, 3)
    expected = (m * (onehot @ p["V"].T) + onehot @ p["U"].T) * (h - hb)
    phi = at_layer(deeplift, "h")(relu_head, x, t, baseline=base)
    np.testing.assert_allclose(phi, expected, rtol=1e-4, atol=1e-6)
    rows = jnp.arange(4)
    delta = relu_head(x)[rows, t] - relu_head(base)[rows, t]
    np.testing.assert_allclose(phi.sum(1), delta, rtol=1e-4, atol=1e-6)
    refs = jnp.stack([base[0], -base[0]])
    shap = at_layer(deeplift_shap, "h")(relu_head, x, t, references=refs)
    each = [at_layer(deeplift, "h")(relu_head, x, t, baseline=r) for r in refs]
    np.testing.assert_allclose(shap, (each[0] + each[1]) / 2, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown layer"):
        at_layer(deeplift, "nope")(relu_head, x, t)


def test_noise_tunnel_at_a_layer_and_around_a_layer_method(relu_head):
    x, t = batch(), 0
    smooth = noise_tunnel(saliency, n_samples=5, stdev=0.2)
    a = at_layer(smooth, "h")(relu_head, x, t, key=KEY)
    b = noise_tunnel(at_layer(saliency, "h"), n_samples=5, stdev=0.2)(relu_head, x, t, key=KEY)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert a.shape == (4, 5)
    # noise_tunnel of a partial, then at a layer
    ig = noise_tunnel(functools.partial(integrated_gradients, n_steps=4), n_samples=2)
    assert at_layer(ig, "h")(relu_head, x, t, key=KEY).shape == (4, 5)


def test_refusals(relu_head):
    with pytest.raises(TypeError, match="no per-example core"):
        at_layer(len, "h")
    with pytest.raises(TypeError, match="no per-example core"):
        at_layer(functools.partial(lambda m, x, t: x), "h")
    for method, why in (
        (blur_integrated_gradients, "blurs the input image"),
        (grad_cam, "pass `layer=`"),
        (feature_ablation, "perturbs input features"),
        (kernel_shap, "surrogate"),
        (at_layer(saliency, "h"), "already attributes to layer 'h'"),
    ):
        with pytest.raises(ValueError, match=why):
            at_layer(method, "h")
    with pytest.raises(TypeError, match="`layer` must be a layer path string"):
        at_layer(saliency, 3)
    with pytest.raises(ValueError, match="unknown layer"):
        at_layer(guided_backprop, "nope")(relu_head, batch(), 0)
