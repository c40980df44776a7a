"""k-nearest neighbours: the exact search against NumPy, the forest's recall against exact."""

import jax
import numpy as np
import pytest

from visjax.embed.neighbors import knn


def _clustered(n, dim=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dim)) * 5
    latent = rng.normal(size=(n, 5)) @ rng.normal(size=(5, dim))
    x = centres[rng.integers(0, 10, n)] + 0.5 * latent + 0.3 * rng.normal(size=(n, dim))
    return x.astype(np.float32)


def _brute(x, k):
    d = np.sum((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2, axis=-1)
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


@pytest.mark.parametrize("batch_size", ["auto", 37, None])
def test_exact_matches_numpy(batch_size):
    x = _clustered(300)
    idx, dist = knn(x, 7, method="exact", batch_size=batch_size)
    ref_idx, ref_dist = _brute(x, 7)
    assert idx.shape == (300, 7) and idx.dtype == np.int32 and dist.dtype == np.float32
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-3)
    assert np.mean(np.asarray(idx) == ref_idx) > 0.99  # ties aside
    assert not (np.asarray(idx) == np.arange(300)[:, None]).any()
    assert (np.diff(np.asarray(dist), axis=1) >= 0).all()


def test_approx_recall_and_determinism():
    x = _clustered(2000)
    exact, _ = knn(x, 15, method="exact")
    a1, d1 = knn(x, 15, method="approx", key=jax.random.key(1))
    a2, _ = knn(x, 15, method="approx", key=jax.random.key(1))
    np.testing.assert_array_equal(a1, a2)
    a1, exact = np.asarray(a1), np.asarray(exact)
    recall = np.mean((a1[:, :, None] == exact[:, None, :]).any(-1))
    assert recall >= 0.9
    assert not (a1 == np.arange(2000)[:, None]).any()
    assert (np.diff(np.asarray(d1), axis=1) >= 0).all()
    # No duplicates within a row.
    assert all(len(set(row)) == 15 for row in a1[:200])


def test_auto_is_exact_for_small_n():
    x = _clustered(200)
    np.testing.assert_array_equal(knn(x, 5)[0], knn(x, 5, method="exact")[0])


def test_bad_arguments():
    x = _clustered(20)
    with pytest.raises(ValueError, match="`k`"):
        knn(x, 20)
    with pytest.raises(ValueError, match="`k`"):
        knn(x, 0)
    with pytest.raises(ValueError, match="`method`"):
        knn(x, 3, method="ball_tree")
    x[[3, 7]] = np.nan
    with pytest.raises(ValueError, match=r"`x` has NaN or Inf in 2 row\(s\), first rows \[3, 7\]"):
        knn(x, 3)
    with pytest.raises(ValueError, match="`x`"):
        knn(np.zeros(5), 2)
