import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax
from visjax.attribution.cam._core import (
    activation_and_grad,
    grid_shape,
    resolve_layer,
    scores_from_layer,
    target_scores,
    to_grid,
)
from visjax.zoo import digits_vit


def test_grid_shape_rules():
    assert grid_shape((2, 4, 5, 3)) == (2, 4, 5, 3)
    assert grid_shape((2, 17, 8)) == (2, 4, 4, 8)  # class token + 4x4 patches
    assert grid_shape((2, 16, 8)) == (2, 4, 4, 8)  # patches only
    assert grid_shape((2, 7, 8)) is None
    assert grid_shape((2, 10)) is None
    assert grid_shape((2, 6, 8), lambda a: a.reshape(2, 2, 3, 8)) == (2, 2, 3, 8)


def test_to_grid_drops_the_class_token_and_lays_out_rows():
    a = jnp.arange(2 * 17 * 3.0).reshape(2, 17, 3)
    g = to_grid(a)
    np.testing.assert_array_equal(g[:, 0, 1], a[:, 2])
    np.testing.assert_array_equal(g[:, 1, 0], a[:, 5])
    np.testing.assert_array_equal(to_grid(a[:, 1:]), g)


def test_resolve_layer(cnn_models, batch):
    model = cnn_models["linen"]
    assert resolve_layer(model, batch, None) == "conv2"
    assert resolve_layer(model, batch, "conv1") == "conv1"
    assert resolve_layer(digits_vit(), batch, None) == "norm"
    with pytest.raises(ValueError, match="known layers"):
        resolve_layer(model, batch, "conv9")
    with pytest.raises(ValueError, match=r"\(5, 10\)"):
        resolve_layer(model, batch, "fc")
    flat = visjax.as_model(lambda p, x: visjax.tag(x @ p, "h"), jnp.ones((3, 2)), input_shape=(3,))
    with pytest.raises(ValueError, match="no layer with a spatial"):
        resolve_layer(flat, jnp.ones((2, 3)), None)


def test_activation_and_grad_agree_with_a_hand_split(cnn_models, batch):
    model = cnn_models["function"]
    p = model.params
    t = jnp.array([1, 2, 3, 4, 5])
    a, g, s = activation_and_grad(model, batch, t, None, "conv2")

    def head(a):
        out = jax.nn.relu(a).mean((1, 2)) @ p["fc"]["kernel"] + p["fc"]["bias"]
        return out[jnp.arange(5), t].sum()

    np.testing.assert_allclose(a, model.activations(batch, "conv2")[1]["conv2"], rtol=1e-6)
    np.testing.assert_allclose(g, jax.grad(head)(a), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(s, target_scores(model, batch, t, None), rtol=1e-6)
    np.testing.assert_allclose(scores_from_layer(model, batch, t, None, "conv2", a), s, rtol=1e-5)
