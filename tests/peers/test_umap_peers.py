"""visjax.embed.umap against umap-learn called directly, and on digits: neighbourhoods kept.

umap-learn compiles with numba on first use (tens of seconds), so these tests are `slow` too.
"""

import numpy as np
import pytest

pytest.importorskip("umap", reason="umap-learn is not installed (`pip install visjax[umap]`)")

import umap as umap_learn

from visjax.embed import knn_accuracy, trustworthiness, umap

pytestmark = [pytest.mark.peers, pytest.mark.slow]


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data[:600].astype(np.float32), data.target[:600]


def test_umap_equals_umap_learn_for_a_seed(digits):
    x, _ = digits
    ours = umap(x, n_neighbors=10, min_dist=0.2, seed=3)
    ref = umap_learn.UMAP(n_neighbors=10, min_dist=0.2, random_state=3, n_jobs=1).fit_transform(x)
    assert ours.shape == (600, 2) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    np.testing.assert_array_equal(ours, umap(x, n_neighbors=10, min_dist=0.2, seed=3))


def test_umap_keeps_digit_neighbourhoods(digits):
    x, labels = digits
    y = umap(x, seed=0)
    assert trustworthiness(x, y, k=10) > 0.95
    assert knn_accuracy(y, labels, k=10) > 0.9


def test_umap_refuses_bad_arguments(digits):
    x, _ = digits
    with pytest.raises(ValueError, match="`n_neighbors`"):
        umap(x[:10], n_neighbors=10)
    with pytest.raises(ValueError, match="`x`"):
        umap(x[:3])
    with pytest.raises(ValueError, match="`min_dist`"):
        umap(x, min_dist=-1.0)


def test_embed_layer_umap_embeds_the_pooled_layer(digits):
    import jax.numpy as jnp

    from visjax.embed import embed_layer
    from visjax.embed.layer import layer_features
    from visjax.zoo import digits_cnn

    model = digits_cnn("function", seed=0)
    x = jnp.asarray(digits[0][:200].reshape(-1, 8, 8, 1) / 16.0)
    y = embed_layer(model, x, layer="conv2", algorithm="umap", n_neighbors=10, seed=1)
    feats = np.asarray(layer_features(model, x, layer="conv2"))
    np.testing.assert_array_equal(y, umap(feats, n_neighbors=10, seed=1))
