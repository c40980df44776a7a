"""visjax.embed.tsne against openTSNE 1.0.4: affinities, the gradient (openTSNE's exact
Barnes-Hut, theta=0) and the KL divergence on the same embedding, and the digits embedding's
quality (trustworthiness, 10-NN accuracy) on the same data."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

openTSNE = pytest.importorskip("openTSNE", reason="openTSNE is not installed")

from visjax.embed._affinity import affinities  # noqa: E402
from visjax.embed.tsne import _attraction, _kl, repulsion_exact, tsne  # noqa: E402

pytestmark = pytest.mark.peers


def _digits(n=None):
    from sklearn.datasets import load_digits

    x, t = load_digits(return_X_y=True)
    return x[:n].astype(np.float32), t[:n]


def _csr(p, n):
    import scipy.sparse as sp

    rows, cols, vals = (np.asarray(a) for a in p)
    return sp.csr_matrix((vals.astype(np.float64), (rows, cols)), shape=(n, n))


def test_affinities_equal_opentsne_exact():
    x, _ = _digits(400)
    ours = _csr(affinities(jnp.asarray(x), 30.0, neighbors="exact"), 400).toarray()
    theirs = openTSNE.affinity.PerplexityBasedNN(
        x.astype(np.float64), perplexity=30, method="exact", random_state=0
    ).P.toarray()
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    np.testing.assert_allclose(ours.sum(), 1.0, atol=1e-5)


@pytest.mark.parametrize("dof", [1.0, 0.5])
def test_gradient_and_kl_equal_opentsne(dof):
    from openTSNE.tsne import kl_divergence_bh

    x, _ = _digits(300)
    p = affinities(jnp.asarray(x), 30.0, neighbors="exact")
    y = np.random.default_rng(0).normal(scale=2.0, size=(300, 2))
    kl, grad = kl_divergence_bh(
        y.copy(), _csr(p, 300), dof, bh_params={"theta": 0.0}, should_eval_error=True
    )
    yj = jnp.asarray(y, jnp.float32)
    forces, z = repulsion_exact(yj, dof=dof)
    ours = np.asarray(_attraction(yj, p, dof) - forces / z)
    np.testing.assert_allclose(ours, grad, rtol=1e-3, atol=1e-3 * np.abs(grad).max())
    ours_kl = float(_kl(yj, p, dof=dof, method="exact", batch_size=None))
    np.testing.assert_allclose(ours_kl, kl, rtol=1e-3)


@pytest.mark.slow
def test_digits_quality_matches_opentsne():
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    x, t = _digits()

    def knn_acc(e):
        idx = NearestNeighbors(n_neighbors=11).fit(e).kneighbors(e, return_distance=False)[:, 1:]
        return float(np.mean([np.bincount(t[i]).argmax() == t[j] for j, i in enumerate(idx)]))

    start = time.perf_counter()
    theirs = np.asarray(openTSNE.TSNE(random_state=0, n_jobs=2).fit(x))
    their_time = time.perf_counter() - start
    start = time.perf_counter()
    result = tsne(x, key=jax.random.key(0), progress=False)
    ours = np.asarray(result.embedding)
    our_time = time.perf_counter() - start
    t_ours, t_theirs = (
        trustworthiness(x, ours, n_neighbors=10),
        trustworthiness(x, theirs, n_neighbors=10),
    )
    a_ours, a_theirs = knn_acc(ours), knn_acc(theirs)
    print(f"visjax {our_time:.2f} s trust {t_ours:.4f} acc {a_ours:.4f} kl {result.kl_divergence}")
    print(f"openTSNE {their_time:.2f} s trust {t_theirs:.4f} acc {a_theirs:.4f}")
    assert t_ours >= t_theirs - 0.005
    assert a_ours >= a_theirs - 0.01
