"""visjax's NMF and DFF factorisation against scikit-learn's NMF, from one NumPy initialisation.

pytorch-grad-cam's ``DeepFeatureFactorization`` is scikit-learn's ``NMF`` (``init="random"``,
``random_state=0``, the default ``cd`` solver, 200 iterations at most, ``tol=1e-4``) on the
per-channel shifted activations. pytorch-grad-cam does not import in this environment (its
torchvision does not match the pinned torch: ``operator torchvision::nms does not exist``), so the
peer here is the scikit-learn NMF it calls, given the same initialisation by ``init="custom"``
(drawn with NumPy as its ``init="random"``), on the activation matrices visjax's DFF factorises.
Both sides run exactly 200 iterations (``tol=0``: their stopping rules differ, scikit-learn's
``cd`` watching the projected gradient, visjax the error), neither to convergence: the test asks for
reconstruction errors within 1 % and matched factors correlated >= 0.99, not equality. (With each
side's own ``tol=1e-4`` the errors still agree within 1 %, but one map of one image correlates
only 0.98: they stop at different iterations.)
"""

import warnings

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is not installed (`make test-peers`)")
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning

from visjax.attribution.cam.dff import _matrices
from visjax.base.nmf import nmf
from visjax.zoo import digits_cnn, load_digits

pytestmark = pytest.mark.peers
K = 4


def _numpy_random_init(x, k, seed):
    """scikit-learn's ``init="random"``: H first, then W, from one RandomState."""
    rng = np.random.RandomState(seed)
    avg = np.sqrt(x.mean() / k)
    h = avg * np.abs(rng.standard_normal((k, x.shape[1])))
    w = avg * np.abs(rng.standard_normal((x.shape[0], k)))
    return w, h


def _corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.fixture(scope="module")
def matrices():
    model = digits_cnn("function", seed=5)
    x = load_digits().test.x[:4]
    a = model.activations(x, "conv2")[1]["conv2"]
    m, _ = _matrices(a)  # (N, C, P): the shifted (C, H*W) matrices pytorch-grad-cam factorises
    return np.asarray(m, np.float64)


def test_dff_matrices_are_pytorch_grad_cams(matrices):
    model = digits_cnn("function", seed=5)
    x = load_digits().test.x[:4]
    a = np.asarray(model.activations(x, "conv2")[1]["conv2"]).transpose(0, 3, 1, 2)  # NCHW
    for i in range(len(a)):  # its dff on one image: (C, H*W) minus each channel's minimum
        r = a[i : i + 1].transpose((1, 0, 2, 3)).reshape(a.shape[1], -1)
        np.testing.assert_allclose(matrices[i], r - r.min(axis=-1)[:, None], atol=1e-6)


@pytest.mark.parametrize("ours", ["hals", "mu"])
def test_nmf_agrees_with_scikit_learn(matrices, ours):
    solver = "cd" if ours == "hals" else "mu"
    for i, m in enumerate(matrices):
        w0, h0 = _numpy_random_init(m, K, seed=i)
        peer = NMF(n_components=K, init="custom", solver=solver, max_iter=200, tol=0)
        with warnings.catch_warnings():  # it stops at max_iter, unconverged: expected here
            warnings.simplefilter("ignore", ConvergenceWarning)
            pw = peer.fit_transform(m, W=w0.copy(), H=h0.copy())
        ph = peer.components_
        peer_err = np.linalg.norm(m - pw @ ph) / np.linalg.norm(m)
        w, h, err = nmf(m.astype(np.float32), K, algorithm=ours, n_iter=200, init=(w0, h0), tol=0)
        w, h = np.asarray(w, np.float64), np.asarray(h, np.float64)
        assert abs(float(err) - peer_err) <= 0.01 * peer_err, (i, float(err), peer_err)
        # Match components by the correlation of their maps (NMF's order is arbitrary).
        c = np.array([[_corr(h[a], ph[b]) for b in range(K)] for a in range(K)])
        rows, cols = linear_sum_assignment(-c)
        for a, b in zip(rows, cols, strict=True):
            assert _corr(h[a], ph[b]) >= 0.99, (i, a, b, c)
            assert _corr(w[:, a], pw[:, b]) >= 0.99, (i, a, b, c)


def test_jax_key_is_deterministic(matrices):
    a = nmf(matrices[:2].astype(np.float32), K, key=jax.random.key(1))
    b = nmf(matrices[:2].astype(np.float32), K, key=jax.random.key(1))
    np.testing.assert_array_equal(a[0], b[0])
