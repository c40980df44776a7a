import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax
from visjax.attribution import saliency
from visjax.attribution.modified import (
    deconvnet,
    guided_backprop,
    modified_forward,
    modified_method,
    relu_rules,
)

METHODS = (guided_backprop, deconvnet)


def relu_net(relu):
    """f(x) = relu(x W + b) V: three outputs, inputs of shape (5,)."""
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    params = {
        "W": jax.random.normal(k1, (5, 4)),
        "b": jax.random.normal(k2, (4,)),
        "V": jax.random.normal(k3, (4, 3)),
    }

    def apply(p, x):
        return relu(x @ p["W"] + p["b"]) @ p["V"]

    return visjax.as_model(apply, params, input_shape=(5,)), params


# one example's hidden shape: methods trace the forward per example, so no broadcast is staged
ZEROS = np.zeros((1, 4), np.float32)
RELUS = {
    "jax.nn.relu": jax.nn.relu,
    "max(h, 0.0)": lambda h: jnp.maximum(h, 0.0),
    "max(0, h)": lambda h: jnp.maximum(0.0, h),
    "max(h, numpy zeros)": lambda h: jnp.maximum(h, ZEROS),
    "relu in a user jit": jax.jit(lambda h: jax.nn.relu(h) * 1.0),
}


def by_hand(p, x, t):
    """NumPy: saliency, guided backprop and deconvnet of logit t, per example."""
    W, b, V = (np.asarray(p[k], np.float64) for k in ("W", "b", "V"))
    x = np.asarray(x, np.float64)
    pre = x @ W + b  # (N, 4)
    v = V[:, np.asarray(t)].T  # (N, 4): the gradient arriving at the ReLU's output
    plain = ((pre > 0) * v) @ W.T
    guided = ((pre > 0) * (v > 0) * v) @ W.T
    deconv = np.maximum(v, 0) @ W.T
    return plain, guided, deconv


@pytest.mark.parametrize("relu", list(RELUS.values()), ids=list(RELUS))
def test_two_layer_relu_network_by_hand(relu):
    model, p = relu_net(relu)
    x = jax.random.normal(jax.random.key(3), (8, 5))
    t = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])
    plain, guided, deconv = by_hand(p, x, t)
    np.testing.assert_allclose(guided_backprop(model, x, t), guided, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(deconvnet(model, x, t), deconv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(saliency(model, x, t, absolute=False), plain, rtol=1e-5, atol=1e-6)
    # the three differ on this network, so the test would see a missed ReLU
    assert np.abs(guided - plain).max() > 1e-2
    assert np.abs(deconv - plain).max() > 1e-2
    assert np.abs(deconv - guided).max() > 1e-2


def test_forward_is_unchanged_and_callable_target():
    model, p = relu_net(jax.nn.relu)
    x = jax.random.normal(jax.random.key(4), (4, 5))
    for backward in ("guided", "deconvnet"):
        np.testing.assert_allclose(modified_forward(model, backward)(x), model(x), rtol=1e-6)
    _, guided, _ = by_hand(p, x, jnp.full((4,), 2))
    got = guided_backprop(model, x, lambda out: out[2])
    np.testing.assert_allclose(got, guided, rtol=1e-5, atol=1e-6)


def test_unrecognised_activation_keeps_the_plain_gradient():
    model, _ = relu_net(jax.nn.relu6)
    x = jax.random.normal(jax.random.key(5), (4, 5))
    np.testing.assert_allclose(
        guided_backprop(model, x, 1), saliency(model, x, 1, absolute=False), rtol=1e-6
    )


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_same_for_nnx_linen_and_function(method, cnn_models, batch):
    results = {form: method(m, batch, 4) for form, m in cnn_models.items()}
    for form in ("nnx", "linen"):
        np.testing.assert_allclose(results[form], results["function"], rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(results["function"]).max()) > 0


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_jit_batch_and_no_retrace(method, cnn_models, batch):
    model = cnn_models["nnx"]
    t = jnp.array([0, 3, 5, 7, 9])
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return method(m, x, t)

    jitted = jax.jit(traced)
    out = jitted(model, batch, t)
    np.testing.assert_allclose(out, method(model, batch, t), rtol=1e-5, atol=1e-7)
    singles = [method(model, batch[i : i + 1], t[i : i + 1]) for i in range(batch.shape[0])]
    np.testing.assert_allclose(out, jnp.concatenate(singles), rtol=1e-5, atol=1e-7)
    new = model.replace(params=jax.tree.map(lambda a: a * 0.9, model.params))
    jitted(new, batch + 0.5, t[::-1]).block_until_ready()
    assert len(traces) == 1
    # the eager entry point compiles once per shape too
    size = modified_method._cache_size()
    method(new, batch * 2.0, t).block_until_ready()
    assert modified_method._cache_size() == size


def test_differs_from_the_plain_gradient_where_expected(cnn_models, batch):
    model = cnn_models["function"]
    plain = saliency(model, batch, 2, absolute=False)
    guided = guided_backprop(model, batch, 2)
    deconv = deconvnet(model, batch, 2)
    assert np.abs(guided - plain).max() > 1e-4
    assert np.abs(deconv - plain).max() > 1e-4
    assert np.abs(deconv - guided).max() > 1e-4


def test_bad_input(linear, images):
    model, _ = linear
    for method in METHODS:
        with pytest.raises(ValueError, match=r"`target` must be in \[0, 3\)"):
            method(model, images, 3)
        with pytest.raises(ValueError, match=r"`target` must have shape \(3,\)"):
            method(model, images, jnp.array([0, 1]))
        with pytest.raises(TypeError, match="`target`"):
            method(model, images, jnp.array([0.5, 1.0, 2.0]))
        with pytest.raises(ValueError, match="scalar"):
            method(model, images, lambda out: out)
        with pytest.raises(ValueError, match="`x` contains NaN or Inf"):
            method(model, images.at[0, 0, 0, 0].set(jnp.nan), 0)
        with pytest.raises(ValueError, match="`x` must be a batch"):
            method(model, images[0], 0)
    with pytest.raises(ValueError, match="`backward` must be one of"):
        relu_rules("lrp")


def test_relu_inside_a_branch_raises():
    def apply(p, x):
        h = x @ p
        return jax.lax.cond(h.sum() > 0, jax.nn.relu, jnp.tanh, h)

    model = visjax.as_model(apply, jnp.eye(3), input_shape=(3,))
    with pytest.raises(ValueError, match="loop or branch"):
        guided_backprop(model, jnp.ones((2, 3)), 0)
