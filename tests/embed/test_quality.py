"""trustworthiness and knn_accuracy against scikit-learn (its function and a reference loop)."""

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.neighbors import KNeighborsClassifier

from visjax.embed.pca import pca
from visjax.embed.quality import knn_accuracy, trustworthiness


def _blobs(n=300, d=10, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    centres = rng.normal(scale=3.0, size=(4, d))
    x = (centres[labels] + rng.normal(size=(n, d))).astype(np.float32)
    return x, labels


@pytest.mark.parametrize(("k", "batch_size"), [(5, 37), (10, "auto"), (10, None)])
def test_trustworthiness_matches_sklearn(k, batch_size):
    x, _ = _blobs()
    y = (x[:, :2] + 0.3 * np.random.default_rng(1).normal(size=(len(x), 2))).astype(np.float32)
    ours = trustworthiness(x, y, k=k, batch_size=batch_size)
    ref = sk_trustworthiness(x, y, n_neighbors=k)
    assert abs(ours - ref) < 1e-6, (ours, ref)
    assert trustworthiness(x, x, k=k, batch_size=batch_size) == pytest.approx(1.0, abs=1e-9)


def test_trustworthiness_on_tied_integer_data_matches_sklearn():
    # digits are integer-valued: many tied input distances, ranked by index here
    from sklearn.datasets import load_digits

    x = load_digits().data[:400].astype(np.float32)
    y = np.asarray(pca(x, k=2).embedding)
    ours = trustworthiness(x, y, k=10, batch_size=64)
    assert abs(ours - sk_trustworthiness(x, y, n_neighbors=10)) < 2e-5


def _reference_loo(y, labels, k):
    hits = 0
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        clf = KNeighborsClassifier(n_neighbors=k).fit(y[rest], labels[rest])
        hits += clf.predict(y[i : i + 1])[0] == labels[i]
    return hits / len(y)


@pytest.mark.parametrize("k", [4, 7])  # an even k produces tied votes
def test_knn_accuracy_matches_sklearn_loop(k):
    x, labels = _blobs(n=120, d=2, seed=3)
    x = x * 0.25  # overlapping blobs: errors and ties
    ours = knn_accuracy(x, labels, k=k, batch_size=32)
    ref = _reference_loo(x.astype(np.float64), labels, k)
    assert ours == pytest.approx(ref, abs=1e-12), (ours, ref)
    assert knn_accuracy(x, labels.astype(str), k=k) == pytest.approx(ours)


def test_quality_refuses_bad_arguments():
    x, labels = _blobs(n=20, d=3)
    with pytest.raises(ValueError, match="`k`"):
        trustworthiness(x, x[:, :2], k=10)
    with pytest.raises(ValueError, match="`embedding`"):
        trustworthiness(x, x[:5, :2], k=2)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="`x`"):
        trustworthiness(bad, x, k=2)
    with pytest.raises(ValueError, match="`embedding`"):
        knn_accuracy(bad, labels)
    with pytest.raises(ValueError, match="`k`"):
        knn_accuracy(x, labels, k=20)
    with pytest.raises(ValueError, match="`labels`"):
        knn_accuracy(x, labels[:5])
    with pytest.raises(ValueError, match="`x`"):
        trustworthiness(x[:3], x[:3], k=1)
    with pytest.raises(ValueError, match="`batch_size`"):
        knn_accuracy(x, labels, batch_size=0)
