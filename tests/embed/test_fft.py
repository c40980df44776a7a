"""The FFT-interpolated t-SNE repulsion against a brute-force NumPy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.embed.fft import BOX_MULTIPLE, fft_n_boxes, repulsion_fft


def _brute(y, dof):
    diff = y[:, None, :] - y[None, :, :]
    d2 = np.sum(diff * diff, axis=-1)
    w = (1 + d2 / dof) ** -dof
    kern = (1 + d2 / dof) ** -(dof + 1)
    np.fill_diagonal(w, 0)
    np.fill_diagonal(kern, 0)
    return np.sum(kern[:, :, None] * diff, axis=1), w.sum()


def _embedding(n, dim, scale, seed=0):
    y = np.random.default_rng(seed).normal(size=(n, dim)) * scale
    y[: n // 4] += 2 * scale  # two clusters
    return y


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize(("n", "dof"), [(2000, 1.0), (600, 0.5)])
def test_repulsion_close_on_a_two_cluster_cloud(n, dof):
    y = _embedding(n, 2, 3.0)
    forces, z = _brute(y, dof)
    f, zz = repulsion_fft(jnp.asarray(y, jnp.float32), dof=dof)
    assert abs(float(zz) - z) / z < 1e-3
    assert _rel(np.asarray(f) / float(zz), forces / z) < 1e-2


def test_gradient_within_1e2_on_an_optimised_digits_embedding():
    # The test: 2,000 points (the 1,797 digits and 203 of them again with noise) embedded
    # by t-SNE with its full schedule (exact gradients), spread ~140: the realistic case, wide
    # and clustered. The FFT approximates the repulsive term -F / Z; the whole gradient (attraction
    # minus repulsion) nearly cancels at convergence, so its relative error says nothing about the
    # approximation and the repulsive term is compared.
    from sklearn.datasets import load_digits

    from visjax.embed import tsne
    from visjax.embed.tsne import repulsion_exact

    data = load_digits().data.astype(np.float32)
    noisy = data[:203] + np.random.default_rng(0).normal(0, 0.5, (203, 64)).astype(np.float32)
    x = np.concatenate([data, noisy])
    y = tsne(x, key=jax.random.key(0), method="exact", progress=False).embedding
    assert float(jnp.max(y) - jnp.min(y)) > 60  # wide: over 60 boxes of openTSNE's width 1
    fe, ze = repulsion_exact(y)
    exact = np.asarray(fe) / float(ze)
    f, z = repulsion_fft(y)  # the defaults tsne uses
    assert _rel(np.asarray(f) / float(z), exact) < 1e-2
    assert abs(float(z) - float(ze)) / float(ze) < 5e-3
    # openTSNE's grid (3 nodes in boxes of width 1) misses here: the reason for the defaults.
    f3, z3 = repulsion_fft(y, n_interpolation_points=3, ints_in_interval=1.0)
    assert _rel(np.asarray(f3) / float(z3), exact) > 1e-2


def test_wide_embedding_finer_grid():
    # Finer grids converge: half-width boxes with openTSNE's 3 nodes also meet 1e-2.
    y = _embedding(1000, 2, 10.0, seed=1)
    forces, z = _brute(y, 1.0)
    f, zz = repulsion_fft(
        jnp.asarray(y, jnp.float32), n_interpolation_points=3, ints_in_interval=0.5
    )
    assert _rel(np.asarray(f) / float(zz), forces / z) < 1e-2


def test_one_dimensional():
    y = _embedding(1000, 1, 3.0)
    forces, z = _brute(y, 1.0)
    f, zz = repulsion_fft(jnp.asarray(y, jnp.float32))
    assert f.shape == (1000, 1)
    assert _rel(np.asarray(f) / float(zz), forces / z) < 1e-2


def test_tiny_spread_is_exact():
    y = _embedding(300, 2, 0.01)
    forces, z = _brute(y, 1.0)
    f, zz = repulsion_fft(jnp.asarray(y, jnp.float32))
    assert _rel(np.asarray(f), forces) < 1e-4
    assert abs(float(zz) - z) / z < 1e-5


def test_matches_tsne_repulsion_exact():
    tsne = pytest.importorskip("visjax.embed.tsne")
    y = jnp.asarray(_embedding(500, 2, 2.0), jnp.float32)
    fe, ze = tsne.repulsion_exact(y, dof=1.0)
    f, z = repulsion_fft(y, dof=1.0)
    assert abs(float(z) - float(ze)) / float(ze) < 1e-3
    assert _rel(np.asarray(f), np.asarray(fe)) < 1e-2


def test_jit_with_static_boxes():
    y = jnp.asarray(_embedding(200, 2, 1.0), jnp.float32)
    boxes = fft_n_boxes(y)
    assert boxes == 50
    f = jax.jit(lambda y: repulsion_fft(y, n_boxes=boxes))
    np.testing.assert_allclose(f(y)[0], repulsion_fft(y)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="n_boxes"):
        jax.jit(lambda y: repulsion_fft(y))(y)


def test_box_bucketing():
    one = {"ints_in_interval": 1.0}  # openTSNE's box width
    assert fft_n_boxes(np.array([[0.0, 0.0], [49.0, 1.0]]), **one) == 50
    assert fft_n_boxes(np.array([[0.0, 0.0], [51.0, 1.0]]), **one) == 4 * BOX_MULTIPLE
    assert fft_n_boxes(np.array([[0.0, 0.0], [65.0, 1.0]]), **one) == 5 * BOX_MULTIPLE
    assert fft_n_boxes(np.array([[0.0, 0.0], [44.0, 1.0]])) == 50  # default width 0.9: 49 boxes
    assert fft_n_boxes(np.array([[0.0, 0.0], [49.0, 1.0]])) == 4 * BOX_MULTIPLE  # 55 boxes


def test_bad_arguments():
    with pytest.raises(ValueError, match="`y`"):
        repulsion_fft(jnp.zeros((10, 3)))
    with pytest.raises(ValueError, match="`dof`"):
        repulsion_fft(jnp.zeros((10, 2)), dof=0.0)
    with pytest.raises(ValueError, match="`y`"):
        repulsion_fft(jnp.full((10, 2), jnp.nan))
