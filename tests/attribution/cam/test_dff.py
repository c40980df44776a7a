"""Deep feature factorisation on the digits CNN: shapes, non-negative maps, heads, the rank rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution.cam import deep_feature_factorization
from visjax.attribution.cam.dff import THRESHOLD
from visjax.zoo import digits_cnn


@pytest.fixture(scope="module")
def setup():
    model = digits_cnn("function", seed=1)
    x = jax.random.uniform(jax.random.key(0), (3, 8, 8, 1))
    return model, x


@pytest.fixture(scope="module")
def result(setup):
    model, x = setup
    return deep_feature_factorization(model, x, layer="conv2", n_components=3, head="conv2")


def test_shapes_and_non_negative_maps(result):
    assert result.concepts.shape == (3, 3, 8, 8)
    assert result.weights.shape == (3, 3, 32)
    assert result.scores.shape == (3, 3, 10)
    assert result.rel_error.shape == (3,)
    assert (result.concepts >= 0).all()
    assert ((result.rel_error > 0) & (result.rel_error < 1)).all()


def test_layer_head_equals_the_classifier_on_the_embeddings(setup, result):
    model, _ = setup
    fc = model.params["fc"]
    # conv2 -> ReLU -> global mean -> fc: a uniform activation pools to itself.
    expected = jax.nn.relu(result.weights) @ fc["kernel"] + fc["bias"]
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5, atol=1e-5)


def test_embeddings_reconstruct_the_activations(setup, result):
    model, x = setup
    a = np.asarray(model.activations(x, "conv2")[1]["conv2"]).reshape(3, 64, 32)
    offset = a.min(axis=1)  # (N, C)
    grid = np.asarray(result.concepts)  # the layer's grid is the input's: no resize
    w = np.asarray(result.weights) - offset[:, None]  # (N, k, C)
    recon = np.einsum("nkp,nkc->npc", grid.reshape(3, 3, 64), w)
    err = np.linalg.norm(a - offset[:, None] - recon, axis=(1, 2))
    err /= np.linalg.norm(a - offset[:, None], axis=(1, 2))
    np.testing.assert_allclose(err, result.rel_error, rtol=1e-3)
    # NMF's scale is fixed so that every concept's map peaks at 1 (its embedding is then the
    # activation where the concept is strongest)
    np.testing.assert_allclose(grid.reshape(3, 3, 64).max(-1), 1.0, rtol=1e-6)


def test_rank_chosen_by_reconstruction_error(setup):
    model, x = setup
    r = deep_feature_factorization(model, x, layer="conv2", max_components=6, threshold=0.3)
    k = r.concepts.shape[1]
    assert (r.rel_error <= 0.3).all() or k == 6
    if k > 1:  # the rank below fails the threshold for some image
        smaller = deep_feature_factorization(model, x, layer="conv2", n_components=k - 1)
        assert (smaller.rel_error > 0.3).any()
    assert 0 < THRESHOLD < 1


def test_callable_head_and_batch_size(setup, result):
    model, x = setup
    r = deep_feature_factorization(
        model, x, layer="conv2", n_components=3, head=lambda c: c[:4], batch_size=1
    )
    np.testing.assert_allclose(r.weights, result.weights, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r.scores, result.weights[..., :4], rtol=1e-4, atol=1e-5)


def test_empty_batch(setup):
    model, x = setup
    r = deep_feature_factorization(model, x[:0], layer="conv2", n_components=2)
    assert r.concepts.shape == (0, 2, 8, 8) and r.weights.shape == (0, 2, 32)
    assert r.scores is None and r.rel_error.shape == (0,)


def test_bad_inputs(setup):
    model, x = setup
    with pytest.raises(ValueError, match="`n_components`"):
        deep_feature_factorization(model, x, layer="conv2", n_components=0)
    with pytest.raises(ValueError, match=r"`layer` 'nope'.*known layers"):
        deep_feature_factorization(model, x, layer="nope", n_components=2)
    with pytest.raises(ValueError, match="`head` layer 'conv1'"):
        deep_feature_factorization(model, x, layer="conv2", n_components=2, head="conv1")
    with pytest.raises(TypeError, match="`head`"):
        deep_feature_factorization(model, x, layer="conv2", n_components=2, head=3)
    with pytest.raises(ValueError, match="`threshold`"):
        deep_feature_factorization(model, x, layer="conv2", threshold=0)
    with pytest.raises(ValueError, match="`x`"):
        deep_feature_factorization(model, jnp.full_like(x, jnp.nan), layer="conv2")
