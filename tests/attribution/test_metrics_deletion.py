"""Deletion, insertion and ROAD against reference loops and analytic cases."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution import gradient_x_input, saliency
from visjax.attribution.metrics import deletion, insertion, noisy_linear_impute, road
from visjax.zoo import digits_cnn


@pytest.fixture(scope="module")
def cnn():
    return digits_cnn("function", seed=3)


@pytest.fixture(scope="module")
def batch():
    x = jax.random.uniform(jax.random.key(4), (3, 8, 8, 1))
    a = jax.random.normal(jax.random.key(5), (3, 8, 8, 1))
    # ties: equal scores must be ordered by index
    a = a.at[0, :2].set(0.5)
    return x, a, jnp.array([1, 4, 7])


def reference(model, x, a, t, n_steps, baseline, insert, labels=None, logit=False):
    """One forward per perturbed input, in a Python loop."""
    x, a = np.asarray(x), np.asarray(a)
    model = jax.jit(model)
    out = np.zeros((x.shape[0], n_steps + 1))
    for e in range(x.shape[0]):
        if labels is None:
            lab = np.arange(a[e].size).reshape(a[e].shape)
        else:
            lab = np.broadcast_to(labels, a[e].shape)
        k = lab.max() + 1
        scores = np.array([a[e][lab == j].sum() for j in range(k)])
        order = np.argsort(-scores, kind="stable")
        for s in range(n_steps + 1):
            chosen = order[: s * k // n_steps]
            m = np.isin(lab, chosen)
            xp = np.where(m, x[e], baseline) if insert else np.where(m, baseline, x[e])
            y = model(jnp.asarray(xp[None], jnp.float32))[0]
            if not logit:
                y = jax.nn.softmax(y)
            out[e, s] = float(y[t[e]])
    return out


@pytest.mark.parametrize("insert", [False, True])
def test_equals_reference_loop(cnn, batch, insert):
    x, a, t = batch
    fn = insertion if insert else deletion
    r = fn(cnn, x, t, a, n_steps=7, baseline=0.25, batch_size=5)
    ref = reference(cnn, x, a, np.asarray(t), 7, 0.25, insert)
    np.testing.assert_allclose(r.curves, ref, rtol=1e-6, atol=1e-7)
    auc = (ref[:, 1:] + ref[:, :-1]).sum(1) / (2 * 7)
    np.testing.assert_allclose(r.auc, auc, rtol=1e-6)


def test_mask_groups_equal_reference_loop(cnn, batch):
    x, a, t = batch
    labels = np.arange(16).reshape(4, 4).repeat(2, 0).repeat(2, 1)[..., None]
    r = deletion(cnn, x, t, a, n_steps=5, mask=labels, output="logit")
    ref = reference(cnn, x, a, np.asarray(t), 5, 0.0, False, labels=labels, logit=True)
    np.testing.assert_allclose(r.curves, ref, rtol=1e-5, atol=1e-6)


def test_chunking_and_jit_agree(cnn, batch):
    x, a, t = batch
    full = deletion(cnn, x, t, a, n_steps=4, batch_size=None)
    for bs in (7, "auto"):
        np.testing.assert_allclose(
            deletion(cnn, x, t, a, n_steps=4, batch_size=bs).curves, full.curves, rtol=1e-6
        )


def test_linear_exact_contribution_is_optimal(linear):
    model, w = linear
    x = jax.random.uniform(jax.random.key(7), (2, 4, 4, 1))
    contrib = x * w[:, 0].reshape(4, 4, 1)
    r = deletion(model, x, 0, contrib, n_steps=16, output="logit")
    rng = np.random.default_rng(0)
    for _ in range(10):
        other = deletion(
            model, x, 0, jnp.asarray(rng.normal(size=x.shape)), n_steps=16, output="logit"
        )
        assert (np.asarray(r.curves) <= np.asarray(other.curves) + 1e-5).all()
        assert (np.asarray(r.auc) <= np.asarray(other.auc) + 1e-6).all()
    # all contributions positive: the curve only falls
    xp = jnp.abs(x) * jnp.sign(w[:, 0].reshape(4, 4, 1))
    pos = deletion(model, xp, 0, xp * w[:, 0].reshape(4, 4, 1), n_steps=16, output="logit")
    assert (np.diff(np.asarray(pos.curves), axis=1) <= 1e-5).all()


def test_method_partial_and_user_function(cnn, batch):
    x, _, t = batch
    maps = saliency(cnn, x, t)
    expect = deletion(cnn, x, t, maps, n_steps=4).curves
    np.testing.assert_allclose(deletion(cnn, x, t, saliency, n_steps=4).curves, expect)
    user = lambda m, xx, tt: saliency(m, xx, tt)  # noqa: E731
    np.testing.assert_allclose(deletion(cnn, x, t, user, n_steps=4).curves, expect)
    part = functools.partial(gradient_x_input)
    assert deletion(cnn, x, t, part, n_steps=4).curves.shape == (3, 5)


def test_baselines(cnn, batch):
    x, a, t = batch
    blur = insertion(cnn, x, t, a, n_steps=2, baseline="blur")
    fn = insertion(cnn, x, t, a, n_steps=2, baseline=lambda v: jnp.full_like(v, 0.3))
    val = insertion(cnn, x, t, a, n_steps=2, baseline=0.3)
    np.testing.assert_allclose(fn.curves, val.curves, rtol=1e-6)
    # the last step is x itself whatever the baseline
    np.testing.assert_allclose(blur.curves[:, -1], val.curves[:, -1], rtol=1e-6)
    pixel = deletion(cnn, x, t, a[..., :1], n_steps=2)  # (N, H, W, 1) maps broadcast
    assert pixel.curves.shape == (3, 3)


def test_bad_input(cnn, batch):
    x, a, t = batch
    with pytest.raises(ValueError, match="`attributions`"):
        deletion(cnn, x, t, a[:, :4])
    with pytest.raises(ValueError, match="`n_steps`"):
        deletion(cnn, x, t, a, n_steps=0)
    with pytest.raises(ValueError, match="`mask`"):
        deletion(cnn, x, t, a, mask=np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="`attributions` returned"):
        deletion(cnn, x, t, lambda m, xx, tt: jnp.full(xx.shape, jnp.nan))
    with pytest.raises(ValueError, match="`attributions`"):
        insertion(cnn, x, t, a.at[0, 0, 0, 0].set(jnp.inf))
    with pytest.raises(ValueError, match="`output`"):
        deletion(cnn, x, t, a, output="prob")
    with pytest.raises(ValueError, match="`baseline`"):
        deletion(cnn, x, t, a, baseline=lambda v: jnp.zeros((2, 2)))


def dense_impute(x, removed):
    """The ROAD linear system solved densely, per channel."""
    h, w, c = x.shape
    idx = {p: i for i, p in enumerate(zip(*np.nonzero(removed), strict=True))}
    a = np.zeros((len(idx), len(idx)))
    b = np.zeros((len(idx), c))
    for (i, j), r in idx.items():
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if (di or dj) and 0 <= i + di < h and 0 <= j + dj < w:
                    wt = 1 / 12 if di and dj else 1 / 6
                    a[r, r] += wt
                    q = (i + di, j + dj)
                    if q in idx:
                        a[r, idx[q]] -= wt
                    else:
                        b[r] += wt * x[q]
    out = x.copy()
    sol = np.linalg.solve(a, b)
    for (i, j), r in idx.items():
        out[i, j] = sol[r]
    return out


def test_noisy_linear_imputation_solves_rongs_system():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(6, 7, 2)).astype(np.float32)
    removed = rng.uniform(size=(6, 7)) < 0.5
    impute = jax.jit(noisy_linear_impute)
    ours = impute(jnp.asarray(x), jnp.asarray(removed), key=jax.random.key(0), noise=0.0)
    np.testing.assert_allclose(ours, dense_impute(x.astype(np.float64), removed), atol=1e-4)
    noisy = impute(jnp.asarray(x), jnp.asarray(removed), key=jax.random.key(0), noise=0.01)
    np.testing.assert_array_equal(np.asarray(noisy)[~removed], x[~removed])


def test_road_orders(cnn, batch):
    x, a, t = batch
    key = jax.random.key(2)
    morf = road(cnn, x, t, a, key=key, percentages=(0.0, 0.5, 1.0), noise=0.0)
    lerf = road(cnn, x, t, a, key=key, order="lerf", percentages=(0.0, 0.5, 1.0), noise=0.0)
    np.testing.assert_allclose(morf.curves[:, 0], lerf.curves[:, 0], rtol=1e-6)
    np.testing.assert_allclose(morf.curves[:, 2], lerf.curves[:, 2], rtol=1e-5)
    assert morf.curves.shape == (3, 3)
    with pytest.raises(ValueError, match="`order`"):
        road(cnn, x, t, a, key=key, order="up")
    with pytest.raises(ValueError, match="`percentages`"):
        road(cnn, x, t, a, key=key, percentages=(1.5,))
