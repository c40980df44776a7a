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
def test_gradient_within_1e2_on_2000_points(n, dof):
    y = _embedding(n, 2, 3.0)
    forces, z = _brute(y, dof)
    f, zz = repulsion_fft(jnp.asarray(y, jnp.float32), dof=dof)
    assert abs(float(zz) - z) / z < 1e-3
    assert _rel(np.asarray(f) / float(zz), forces / z) < 1e-2


def test_wide_embedding_finer_grid():
    # Boxes of width 1 (openTSNE's default, and openTSNE's own error) leave 2-5 % on spreads of
    # 60-150; half-width boxes meet 1e-2.
    y = _embedding(1000, 2, 10.0, seed=1)
    forces, z = _brute(y, 1.0)
    f, zz = repulsion_fft(jnp.asarray(y, jnp.float32), ints_in_interval=0.5)
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
    assert fft_n_boxes(np.array([[0.0, 0.0], [49.0, 1.0]])) == 50
    assert fft_n_boxes(np.array([[0.0, 0.0], [51.0, 1.0]])) == 4 * BOX_MULTIPLE
    assert fft_n_boxes(np.array([[0.0, 0.0], [65.0, 1.0]])) == 5 * BOX_MULTIPLE


def test_bad_arguments():
    with pytest.raises(ValueError, match="`y`"):
        repulsion_fft(jnp.zeros((10, 3)))
    with pytest.raises(ValueError, match="`dof`"):
        repulsion_fft(jnp.zeros((10, 2)), dof=0.0)
    with pytest.raises(ValueError, match="`y`"):
        repulsion_fft(jnp.full((10, 2), jnp.nan))
