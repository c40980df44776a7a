"""visjax.embed.pca against scikit-learn's PCA: variances, ratios, signs, embedding, whitening."""

import numpy as np
import pytest
from sklearn.decomposition import PCA as SkPCA

from visjax.embed.pca import pca


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.5, d)
    return (rng.normal(size=(n, d)) * scales + rng.normal(size=d)).astype(np.float32)


@pytest.mark.parametrize(("n", "d"), [(60, 20), (400, 12)])  # wide (SVD) and tall (covariance)
@pytest.mark.parametrize("whiten", [False, True])
def test_pca_matches_sklearn(n, d, whiten):
    x = _data(n, d)
    ours = pca(x, k=3, whiten=whiten)
    ref = SkPCA(n_components=3, whiten=whiten, svd_solver="full").fit(x.astype(np.float64))
    np.testing.assert_allclose(ours.explained_variance, ref.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(
        ours.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-4
    )
    np.testing.assert_allclose(ours.components, ref.components_, atol=1e-4)
    np.testing.assert_allclose(ours.mean, ref.mean_, atol=1e-5)
    np.testing.assert_allclose(ours.embedding, ref.transform(x), atol=2e-3, rtol=1e-3)
    assert ours.embedding.shape == (n, 3)


def test_pca_signs_deterministic():
    x = _data(50, 6, seed=1)
    a = pca(x, k=4)
    b = pca(-x + 1.0, k=4)  # the same axes up to sign: the convention picks the same signs
    np.testing.assert_allclose(a.components, b.components, atol=1e-5)
    top = np.argmax(np.abs(np.asarray(a.components)), axis=1)
    assert (np.asarray(a.components)[np.arange(4), top] > 0).all()


def test_pca_refuses_bad_arguments():
    x = _data(10, 3)
    with pytest.raises(ValueError, match="`k`"):
        pca(x, k=4)
    with pytest.raises(ValueError, match="`k`"):
        pca(x, k=0)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="`x`"):
        pca(bad)
    with pytest.raises(ValueError, match="`x`"):
        pca(x[:, 0])
    with pytest.raises(ValueError, match="`x`"):
        pca(x[:1])
