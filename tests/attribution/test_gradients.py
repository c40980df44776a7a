import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax
from visjax.attribution import at_layer, gradient_x_input, saliency


def two_layer():
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"W": jax.random.normal(k1, (5, 4)), "V": jax.random.normal(k2, (4, 3))}

    def apply(p, x):
        return jnp.tanh(x @ p["W"]) @ p["V"]

    return visjax.as_model(apply, params, input_shape=(5,)), params


def test_saliency_and_gradient_x_input_by_hand():
    model, p = two_layer()
    x = jax.random.normal(jax.random.key(3), (6, 5))
    t = jnp.array([0, 1, 2, 0, 1, 2])
    h = jnp.tanh(x @ p["W"])
    expected = ((1 - h**2) * p["V"][:, t].T) @ p["W"].T  # d f_t / d x, per example
    np.testing.assert_allclose(saliency(model, x, t, absolute=False), expected, rtol=1e-5)
    np.testing.assert_allclose(saliency(model, x, t), jnp.abs(expected), rtol=1e-5)
    np.testing.assert_allclose(gradient_x_input(model, x, t), x * expected, rtol=1e-5)


def test_callable_target_and_int_target(linear, images):
    model, w = linear
    diff = saliency(model, images, lambda out: out[2] - out[0], absolute=False)
    np.testing.assert_allclose(
        diff, jnp.broadcast_to((w[:, 2] - w[:, 0]).reshape(4, 4, 1), diff.shape), rtol=1e-6
    )
    np.testing.assert_allclose(
        saliency(model, images, 1, absolute=False)[0].ravel(), w[:, 1], rtol=1e-6
    )


def test_layer_gradient_and_gradient_x_activation(trained_cnn, digits):
    x = jnp.asarray(digits.test.x[:4])
    p = trained_cnn.params

    def head(a2):
        h = jax.nn.relu(a2).mean(axis=(1, 2))
        return (h @ p["fc"]["kernel"] + p["fc"]["bias"])[:, 5].sum()

    _, acts = trained_cnn.activations(x, "conv2")
    g = jax.grad(head)(acts["conv2"])
    np.testing.assert_allclose(
        at_layer(saliency, "conv2")(trained_cnn, x, 5, absolute=False), g, rtol=1e-5, atol=1e-8
    )
    np.testing.assert_allclose(
        at_layer(gradient_x_input, "conv2")(trained_cnn, x, 5),
        g * acts["conv2"],
        rtol=1e-5,
        atol=1e-8,
    )


def test_bad_targets(linear, images):
    model, _ = linear
    with pytest.raises(ValueError, match=r"`target` must be in \[0, 3\)"):
        saliency(model, images, 3)
    with pytest.raises(ValueError, match=r"`target` must be in \[0, 3\), got \[-1\]"):
        saliency(model, images, jnp.array([0, -1, 2]))
    with pytest.raises(ValueError, match=r"`target` must have shape \(3,\)"):
        saliency(model, images, jnp.array([0, 1]))
    with pytest.raises(TypeError, match="`target`"):
        saliency(model, images, jnp.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match="scalar"):
        saliency(model, images, lambda out: out)


def test_nan_and_bad_x(linear, images):
    model, _ = linear
    with pytest.raises(ValueError, match="`x` contains NaN or Inf"):
        saliency(model, images.at[0, 0, 0, 0].set(jnp.nan), 0)
    with pytest.raises(ValueError, match="`x` must be a batch"):
        gradient_x_input(model, images[0], 0)


def test_at_layer_rejects_unsupported_methods_and_unknown_layers(trained_cnn):
    with pytest.raises(TypeError, match="no per-example core"):
        at_layer(len, "conv2")
    with pytest.raises(ValueError, match="unknown layer"):
        at_layer(saliency, "conv9")(trained_cnn, jnp.ones((1, 8, 8, 1)), 0)


def test_checks_on_closed_over_arrays_inside_a_callers_jit(linear, images):
    model, _ = linear
    bad = images.at[0, 0, 0, 0].set(jnp.inf)
    with pytest.raises(ValueError, match="`x` contains NaN or Inf"):
        jax.jit(lambda m: saliency(m, bad, 0))(model)
    with pytest.raises(ValueError, match="`target` must be in"):
        jax.jit(lambda m, x: saliency(m, x, np.array([0, 1, 5])))(model, images)
