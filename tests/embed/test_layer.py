"""embed_layer: a layer's activations pooled as documented, then embedded; bad arguments refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import as_model
from visjax.embed import layer as layer_module
from visjax.embed.layer import embed_layer, layer_features
from visjax.embed.pca import pca
from visjax.model import tag


def _model():
    w1 = jax.random.normal(jax.random.key(0), (3, 3, 1, 4)) * 0.5
    w2 = jax.random.normal(jax.random.key(1), (4, 5)) * 0.5

    def forward(params, x):
        h = jax.lax.conv_general_dilated(
            x, params["w1"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        h = tag(h, "conv")
        z = tag(jnp.tanh(h).mean((1, 2)) @ params["w2"], "dense")
        return z

    return as_model(forward, {"w1": w1, "w2": w2}, input_shape=(6, 6, 1))


X = np.random.default_rng(0).normal(size=(21, 6, 6, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def reference():
    """The model and its conv and dense activations for X, from one compiled forward."""
    model = _model()
    acts = jax.jit(lambda m, x: m.activations(x, ("conv", "dense"))[1])(model, jnp.asarray(X))
    return model, np.asarray(acts["conv"]), np.asarray(acts["dense"])


@pytest.mark.parametrize("batch_size", [None, 8])
def test_layer_features_pooling(reference, batch_size):
    model, conv, dense = reference
    feats = layer_features(model, X, layer="conv", batch_size=batch_size)
    np.testing.assert_allclose(feats, conv.mean((1, 2)), atol=1e-5)
    flat = layer_features(model, X, layer="conv", pool="flatten", batch_size=batch_size)
    np.testing.assert_allclose(flat, conv.reshape(21, -1), atol=1e-5)
    np.testing.assert_allclose(layer_features(model, X, layer="dense"), dense, atol=1e-5)


def test_embed_layer_pca_matches_pca_of_features(reference):
    model, conv, _ = reference
    result = embed_layer(model, X, layer="conv", algorithm="pca", k=2, batch_size=5)
    ref = pca(conv.mean((1, 2)), k=2)
    np.testing.assert_allclose(result.embedding, ref.embedding, atol=1e-4)
    np.testing.assert_allclose(result.explained_variance, ref.explained_variance, rtol=1e-4)


def test_embed_layer_tsne_gets_the_pooled_features(reference, monkeypatch):
    # tsne itself is tested in test_tsne.py; here: what embed_layer hands it (fast, no compile)
    calls = {}

    def fake_tsne(features, **kwargs):
        calls.update(kwargs, features=np.asarray(features))
        return "result"

    monkeypatch.setattr(layer_module, "tsne", fake_tsne)
    (model, conv, _), key = reference, jax.random.key(0)
    out = embed_layer(model, X, layer="conv", key=key, perplexity=5.0, batch_size=7)
    assert out == "result"
    np.testing.assert_allclose(calls["features"], conv.mean((1, 2)), atol=1e-5)
    assert calls["perplexity"] == 5.0 and calls["batch_size"] == 7 and calls["key"] is key


def test_embed_layer_refuses_bad_arguments(reference):
    model = reference[0]
    with pytest.raises(ValueError, match="known"):
        embed_layer(model, X, layer="nope", algorithm="pca")
    with pytest.raises(ValueError, match="`algorithm`"):
        embed_layer(model, X, layer="conv", algorithm="isomap")
    with pytest.raises(ValueError, match="`pool`"):
        embed_layer(model, X, layer="conv", algorithm="pca", pool="max")
    with pytest.raises(ValueError, match="`key`"):
        embed_layer(model, X, layer="conv")
    with pytest.raises(TypeError, match="`key`"):
        embed_layer(model, X, layer="conv", key=3)
    bad = X.copy()
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`x`"):
        embed_layer(model, bad, layer="conv", algorithm="pca")
    with pytest.raises(ValueError, match="`x`"):
        embed_layer(model, X[:3], layer="conv", algorithm="pca")
    with pytest.raises(ValueError, match="`batch_size`"):
        embed_layer(model, X, layer="conv", algorithm="pca", batch_size=0)
