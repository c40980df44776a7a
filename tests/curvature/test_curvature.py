"""Curvature: Hessian/GGN-vector products, top eigenvalues, trace, diagonal, spectral density.

Checked against matrices known in closed form (quadratics) and against the dense Hessian of the
digits CNN (``jax.hessian``, float64).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from visjax import as_model
from visjax.curvature import (
    ggn_vp,
    hessian_diag,
    hvp,
    spectral_density,
    top_eigenvalues,
    trace,
)
from visjax.zoo import digits_cnn, load_digits

DIM = 30
KEY = jax.random.key(0)


def _symmetric(eigenvalues, seed=0):
    """``Q diag(λ) Qᵀ`` with a random orthogonal ``Q`` (float64 NumPy)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues),) * 2))
    return (q * np.asarray(eigenvalues, np.float64)) @ q.T


# A well-separated top of the spectrum, a bulk, and small negative eigenvalues.
EIGS = np.concatenate([[10.0, 7.0, 5.0], np.linspace(3.0, -1.0, DIM - 3)])
H = _symmetric(EIGS).astype(np.float32)
H = (H + H.T) / 2  # exactly symmetric in float32
BATCH = np.zeros((4, 1), np.float32)  # the data is unused but required
W0 = jnp.asarray(np.random.default_rng(1).normal(size=DIM), jnp.float32)


def quad_loss(w, batch):
    """``½ wᵀ H w``: Hessian ``H`` everywhere."""
    return 0.5 * w @ (jnp.asarray(H) @ w) + 0.0 * batch.sum()


# A data-dependent quadratic: mean_i ½|A w - y_i|², Hessian AᵀA.
A = np.random.default_rng(2).normal(size=(12, DIM)).astype(np.float32)
YS = np.random.default_rng(3).normal(size=(20, 12)).astype(np.float32)


def ls_loss(w, y):
    r = jnp.asarray(A) @ w - y
    return 0.5 * (r**2).sum(-1).mean()


def test_hvp_of_quadratic_is_H_v():
    v = jnp.asarray(np.random.default_rng(4).normal(size=DIM), jnp.float32)
    np.testing.assert_allclose(hvp(quad_loss, W0, v, data=BATCH), H @ v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_size", [None, 3, 20])
def test_hvp_of_data_dependent_quadratic_is_AtA_v(batch_size):
    v = jnp.asarray(np.random.default_rng(5).normal(size=DIM), jnp.float32)
    out = hvp(ls_loss, W0, v, data=YS, batch_size=batch_size)
    np.testing.assert_allclose(out, A.T @ (A @ v), rtol=1e-5, atol=1e-4)


def test_hvp_on_a_pytree():
    params = {"a": W0[:10], "b": W0[10:].reshape(4, 5)}

    def loss(p, batch):
        return quad_loss(jnp.concatenate([p["a"], p["b"].ravel()]), batch)

    v = {"a": jnp.ones(10), "b": jnp.arange(20.0).reshape(4, 5)}
    out = hvp(loss, params, v, data=BATCH)
    flat = H @ np.concatenate([np.ones(10), np.arange(20.0)]).astype(np.float32)
    np.testing.assert_allclose(out["a"], flat[:10], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out["b"], flat[10:].reshape(4, 5), rtol=1e-5, atol=1e-4)


def test_lanczos_top3_float32():
    res = top_eigenvalues(quad_loss, W0, data=BATCH, k=3, n_iter=DIM, tol=0.0, key=KEY)
    want = np.linalg.eigvalsh(H.astype(np.float64))[::-1][:3]
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-6)
    assert res.converged and res.n_hvp <= DIM
    vecs = np.asarray(res.eigenvectors)
    assert vecs.shape == (3, DIM)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    # H u = λ u
    np.testing.assert_allclose(vecs @ H, res.eigenvalues[:, None] * vecs, atol=1e-4)


def test_lanczos_top3_float64_default_tol():
    with jax.enable_x64(True):
        w = jnp.asarray(W0, jnp.float64)
        h = jnp.asarray(_symmetric(EIGS))

        def loss(w, batch):
            return 0.5 * w @ (h @ w) + 0.0 * batch.sum()

        res = top_eigenvalues(loss, w, data=BATCH.astype(np.float64), k=3, key=KEY)
        # the default stopping rule (error bound min(r, r²/gap) < tol = 1e-6) gives about tol
        np.testing.assert_allclose(res.eigenvalues, EIGS[:3], rtol=1e-6)
        vecs = np.asarray(res.eigenvectors)
        assert vecs.dtype == np.float64
        # eigenvector residual r ~ sqrt(tol |λ| gap) at this stopping rule (|λ| ~ 5-10, gap 2-3)
        np.testing.assert_allclose(vecs @ np.asarray(h), res.eigenvalues[:, None] * vecs, atol=5e-3)


def test_which_magnitude_finds_a_large_negative_eigenvalue():
    eigs = np.concatenate([[-12.0, 6.0, 4.0], np.linspace(3.0, -2.0, DIM - 3)])
    h = _symmetric(eigs, seed=7).astype(np.float32)
    h = (h + h.T) / 2

    def loss(w, batch):
        return 0.5 * w @ (jnp.asarray(h) @ w) + 0.0 * batch.sum()

    mag = top_eigenvalues(loss, W0, data=BATCH, k=2, which="magnitude", n_iter=DIM, key=KEY)
    np.testing.assert_allclose(mag.eigenvalues, [-12.0, 6.0], rtol=1e-5)
    u = np.asarray(mag.eigenvectors)[0]
    np.testing.assert_allclose(h @ u, -12.0 * u, atol=1e-4)
    big = top_eigenvalues(loss, W0, data=BATCH, k=2, which="largest", n_iter=DIM, key=KEY)
    np.testing.assert_allclose(big.eigenvalues, [6.0, 4.0], rtol=1e-5)


def test_power_iteration_top2():
    res = top_eigenvalues(
        quad_loss, W0, data=BATCH, k=2, algorithm="power", n_iter=500, tol=1e-7, key=KEY
    )
    np.testing.assert_allclose(res.eigenvalues, EIGS[:2], rtol=1e-4)
    vecs = np.asarray(res.eigenvectors)
    np.testing.assert_allclose(vecs @ H, res.eigenvalues[:, None] * vecs, atol=1e-2)


def test_hutchinson_trace_converges():
    true = float(np.trace(H.astype(np.float64)))
    few = trace(quad_loss, W0, data=BATCH, n_probes=20, key=KEY)
    many = trace(quad_loss, W0, data=BATCH, n_probes=400, key=KEY, probe_batch=50)
    assert many.samples.shape == (400,)
    for t in (few, many):
        assert abs(t.estimate - true) <= 3 * t.stderr
    assert many.stderr < few.stderr / 2


def test_deflated_trace_is_unbiased_and_cuts_the_variance():
    true = float(np.trace(H.astype(np.float64)))
    full = trace(quad_loss, W0, data=BATCH, n_probes=2, key=KEY, deflate=DIM)
    np.testing.assert_allclose(full.estimate, true, rtol=1e-4)  # the Krylov space is everything
    np.testing.assert_allclose(full.exact, true, rtol=1e-4)
    assert np.abs(full.samples).max() < 1e-3 * abs(true)
    assert full.n_hvp == DIM + 2
    plain = trace(quad_loss, W0, data=BATCH, n_probes=200, key=KEY, probe_batch=50)
    defl = trace(quad_loss, W0, data=BATCH, n_probes=200, key=KEY, probe_batch=50, deflate=8)
    assert defl.n_hvp == 208 and plain.n_hvp == 200
    assert abs(defl.estimate - true) <= 3 * defl.stderr
    np.testing.assert_allclose(defl.estimate, defl.exact + defl.samples.mean())
    # The outliers 10, 7, 5 carry ~3/4 of the squared spectrum: the s.e. about halves.
    assert defl.stderr < plain.stderr / 1.5
    with pytest.raises(ValueError, match="`deflate`"):
        trace(quad_loss, W0, data=BATCH, key=KEY, deflate=-1)


def test_hutchinson_trace_probe_batch_gives_same_statistics():
    one = trace(quad_loss, W0, data=BATCH, n_probes=8, key=KEY, probe_batch=8)
    np.testing.assert_allclose(one.estimate, one.samples.mean())
    np.testing.assert_allclose(one.stderr, one.samples.std(ddof=1) / np.sqrt(8))


def test_hessian_diag_converges():
    diag = np.diag(H)
    errors = [
        np.linalg.norm(
            hessian_diag(quad_loss, W0, data=BATCH, n_probes=n, key=KEY, probe_batch=25) - diag
        )
        for n in (25, 400, 3200)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1 * np.linalg.norm(diag)


def test_hessian_diag_of_diagonal_hessian_is_exact():
    d = np.linspace(-2, 5, DIM).astype(np.float32)

    def loss(w, batch):
        return 0.5 * (jnp.asarray(d) * w**2).sum() + 0.0 * batch.sum()

    np.testing.assert_allclose(
        hessian_diag(loss, W0, data=BATCH, n_probes=1, key=KEY), d, rtol=1e-6
    )


def test_spectral_density_full_lanczos_recovers_the_spectrum():
    sd = spectral_density(quad_loss, W0, data=BATCH, n_probes=3, n_iter=DIM, key=KEY)
    assert sd.nodes.shape == sd.weights.shape == (3, DIM)
    # n_iter >= dim: the nodes ARE the eigenvalues, weights sum to 1 per probe
    for p in range(3):
        np.testing.assert_allclose(np.sort(sd.nodes[p]), np.sort(EIGS), atol=1e-4)
    np.testing.assert_allclose(sd.weights.sum(1), 1.0, rtol=1e-6)
    step = np.diff(sd.grid).mean()
    np.testing.assert_allclose(sd.density.sum() * step, 1.0, rtol=1e-6)
    assert sd.grid[0] < EIGS.min() and sd.grid[-1] > EIGS.max()
    # the density has a peak at the isolated top eigenvalue
    near = np.abs(sd.grid - 10.0) < 0.01
    far = np.abs(sd.grid - 8.5) < 0.5
    assert sd.density[near].max() > 100 * sd.density[far].max()


def test_spectral_density_few_steps_heavy_nodes_near_eigenvalues():
    sd = spectral_density(quad_loss, W0, data=BATCH, n_probes=4, n_iter=12, key=KEY)
    assert sd.nodes.shape == (4, 12)
    np.testing.assert_allclose(sd.weights.sum(1), 1.0, rtol=1e-6)
    # Ritz values lie inside the spectrum, the extreme ones converge first
    assert np.all(sd.nodes <= EIGS.max() + 1e-4) and np.all(sd.nodes >= EIGS.min() - 1e-4)
    np.testing.assert_allclose(sd.nodes.max(1), 10.0, rtol=1e-3)
    heavy = sd.weights > 0.1
    dist = np.abs(sd.nodes[heavy][:, None] - EIGS[None]).min(1)
    assert np.all(dist < 0.25)
    grid = np.linspace(-2, 11, 2001)
    custom = spectral_density(quad_loss, W0, data=BATCH, n_probes=4, n_iter=12, key=KEY, grid=grid)
    np.testing.assert_array_equal(custom.grid, grid)
    np.testing.assert_allclose(custom.density.sum() * (grid[1] - grid[0]), 1.0, rtol=1e-6)


# -- ggn_vp


def test_ggn_of_linear_model_with_mse_is_the_hessian():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(16, 6)).astype(np.float32)
    y = rng.normal(size=(16, 3)).astype(np.float32)
    w = rng.normal(size=(6, 3)).astype(np.float32)
    v = rng.normal(size=(6, 3)).astype(np.float32)

    def apply(params, x):
        return x @ params

    def loss(params, batch):
        xb, yb = batch
        return ((apply(params, xb) - yb) ** 2).sum(-1).mean()

    for bs in (None, 5):
        g = ggn_vp(as_model(apply, w), w, v, data=(x, y), loss="mse", batch_size=bs)
        np.testing.assert_allclose(g, hvp(loss, w, v, data=(x, y)), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g, 2 * x.T @ (x @ v) / 16, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def cnn():
    return digits_cnn("function", seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_digits().train


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_ggn_of_cnn_is_psd_and_equals_explicit_JtHJ(cnn, digits):
    x, y = jnp.asarray(digits[0][:3]), jnp.asarray(digits[1][:3])
    params = cnn.params
    flat, unravel = ravel_pytree(params)
    keys = jax.random.split(jax.random.key(1), 3)
    for key in keys:
        v = unravel(jax.random.normal(key, flat.shape))
        gv = ggn_vp(cnn, params, v, data=(x, y))
        quad = float(jnp.vdot(ravel_pytree(v)[0], ravel_pytree(gv)[0]))
        assert quad >= -1e-6
    # explicit Jᵀ H_ℓ J v
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64 = jnp.asarray(x, jnp.float64)
        f64, unravel64 = ravel_pytree(p64)
        v64 = jax.random.normal(keys[0], f64.shape, jnp.float64)

        def out(flat_p):
            return cnn.apply(unravel64(flat_p), x64).ravel()  # (3*10,)

        def ce(o):
            return optax.softmax_cross_entropy_with_integer_labels(o.reshape(3, 10), y).mean()

        jac = jax.jacrev(out)(f64)  # (30, dim): 30 outputs, reverse mode
        h_l = jax.hessian(ce)(out(f64))  # (30, 30)
        want = jac.T @ (h_l @ (jac @ v64))
        got = ravel_pytree(ggn_vp(cnn, p64, unravel64(v64), data=(x64, y)))[0]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        assert float(v64 @ want) > 0


# -- the digits CNN against its dense Hessian


def _ce_loss(model):
    def loss(params, batch):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, x), y).mean()

    return loss


@pytest.mark.slow
def test_cnn_top_eigenvalues_and_trace_match_dense_hessian(cnn, digits):
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), cnn.params)
        data = (jnp.asarray(digits[0][:64], jnp.float64), jnp.asarray(digits[1][:64]))
        loss = _ce_loss(cnn)
        flat, unravel = ravel_pytree(params)
        assert flat.size == 5130
        # jax.hessian (jacfwd of jacrev) at once needs > 23 GB here: the same forward-over-reverse
        # product, a block of columns per jitted call driven from Python (HVPs inside lax.map
        # are many times slower on XLA:CPU)
        grad = jax.grad(lambda f: loss(unravel(f), data))
        columns = jax.jit(jax.vmap(lambda e: jax.jvp(grad, (flat,), (e,))[1]))
        eye = np.eye(flat.size)
        dense = np.concatenate(
            [np.asarray(columns(jnp.asarray(eye[i : i + 256]))) for i in range(0, flat.size, 256)]
        )
        np.testing.assert_allclose(dense, dense.T, atol=1e-10)
        want = np.linalg.eigvalsh(dense)[::-1][:3]
        res = top_eigenvalues(loss, params, data=data, k=3, n_iter=200, tol=1e-10, key=KEY)
        np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-6)
        u = ravel_pytree(jax.tree.map(lambda a: a[0], res.eigenvectors))[0]
        np.testing.assert_allclose(dense @ u, want[0] * u, atol=1e-6 * want[0])
        t = trace(loss, params, data=data, n_probes=100, key=KEY, probe_batch=20)
        assert abs(t.estimate - np.trace(dense)) <= 3 * t.stderr


# -- chunking, tracing, jit


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_chunked_data_equals_one_batch(cnn, digits):
    data = (jnp.asarray(digits[0][:100]), jnp.asarray(digits[1][:100]))
    loss = _ce_loss(cnn)
    flat, unravel = ravel_pytree(cnn.params)
    v = unravel(jax.random.normal(jax.random.key(2), flat.shape))
    outs = [
        ravel_pytree(hvp(loss, cnn.params, v, data=data, batch_size=bs))[0] for bs in (None, 7, 64)
    ]
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=1e-5, atol=1e-6)


def test_second_call_with_new_values_does_not_retrace(cnn, digits):
    data = (jnp.asarray(digits[0][:32]), jnp.asarray(digits[1][:32]))
    traces = []
    base = _ce_loss(cnn)

    def loss(params, batch):
        traces.append(1)
        return base(params, batch)

    flat, unravel = ravel_pytree(cnn.params)
    v = unravel(jax.random.normal(jax.random.key(3), flat.shape))
    hvp(loss, cnn.params, v, data=data, batch_size=8)
    n = len(traces)
    assert n > 0
    params2 = jax.tree.map(lambda a: a * 0.9, cnn.params)
    v2 = jax.tree.map(lambda a: a + 1.0, v)
    data2 = (data[0] + 0.5, data[1][::-1])
    hvp(loss, params2, v2, data=data2, batch_size=8)
    assert len(traces) == n


def test_hvp_under_outer_jit(cnn, digits):
    data = (jnp.asarray(digits[0][:16]), jnp.asarray(digits[1][:16]))
    loss = _ce_loss(cnn)
    flat, unravel = ravel_pytree(cnn.params)
    v = unravel(jax.random.normal(jax.random.key(4), flat.shape))
    eager = hvp(loss, cnn.params, v, data=data, batch_size=4)
    jitted = jax.jit(lambda p, v, d: hvp(loss, p, v, data=d, batch_size=4))(cnn.params, v, data)
    np.testing.assert_allclose(
        ravel_pytree(jitted)[0], ravel_pytree(eager)[0], rtol=1e-5, atol=1e-6
    )
    # and agrees with a direct forward-over-reverse product
    direct = jax.jvp(lambda p: jax.grad(loss)(p, data), (cnn.params,), (v,))[1]
    np.testing.assert_allclose(
        ravel_pytree(eager)[0], ravel_pytree(direct)[0], rtol=1e-4, atol=1e-5
    )


# -- bad input


def test_k_larger_than_parameter_count():
    with pytest.raises(ValueError, match="`k`"):
        top_eigenvalues(quad_loss, W0, data=BATCH, k=DIM + 1, key=KEY)
    with pytest.raises(ValueError, match="`k`"):
        top_eigenvalues(quad_loss, W0, data=BATCH, k=0, key=KEY)


def test_n_iter_smaller_than_k():
    with pytest.raises(ValueError, match="`n_iter`"):
        top_eigenvalues(quad_loss, W0, data=BATCH, k=3, n_iter=2, key=KEY)
    with pytest.raises(ValueError, match="`n_iter`"):
        spectral_density(quad_loss, W0, data=BATCH, n_iter=0, key=KEY)


def test_v_with_a_mismatched_tree():
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}

    def loss(p, batch):
        return (p["a"] ** 2).sum() + (p["b"] ** 2).sum() + 0.0 * batch.sum()

    with pytest.raises(ValueError, match="`v"):
        hvp(loss, params, {"a": jnp.ones(3)}, data=BATCH)
    with pytest.raises(ValueError, match=r"`v\['b'\]`"):
        hvp(loss, params, {"a": jnp.ones(3), "b": jnp.ones(3)}, data=BATCH)
    with pytest.raises(ValueError, match="`v"):
        model = as_model(lambda p, x: x * p["a"].sum(), params)
        ggn_vp(model, params, jnp.ones(5), data=(BATCH, BATCH), loss="mse")


def test_non_scalar_loss():
    def loss(w, batch):
        return w * batch.sum()

    with pytest.raises(ValueError, match=r"`loss_fn`.*scalar"):
        hvp(loss, W0, W0, data=BATCH)
    with pytest.raises(ValueError, match=r"`loss_fn`.*scalar"):
        top_eigenvalues(loss, W0, data=BATCH, key=KEY)
    with pytest.raises(ValueError, match=r"`loss_fn`.*scalar"):
        trace(loss, W0, data=BATCH, key=KEY)


def test_nan_loss_at_params():
    def loss(w, batch):
        return jnp.log(w[0] - 10.0) + 0.0 * batch.sum()

    for fn in (top_eigenvalues, trace, hessian_diag, spectral_density):
        with pytest.raises(ValueError, match="`loss_fn` is not finite at `params`"):
            fn(loss, W0, data=BATCH, key=KEY)


def test_unknown_algorithm_which_and_loss_name(cnn):
    with pytest.raises(ValueError, match="`algorithm`"):
        top_eigenvalues(quad_loss, W0, data=BATCH, algorithm="arnoldi", key=KEY)
    with pytest.raises(ValueError, match="`which`"):
        top_eigenvalues(quad_loss, W0, data=BATCH, which="smallest", key=KEY)
    with pytest.raises(ValueError, match="`loss` must be one of"):
        ggn_vp(cnn, cnn.params, cnn.params, data=(BATCH, BATCH), loss="hinge")


@pytest.mark.parametrize(
    "data",
    [None, (), np.float32(1.0), np.zeros((0, 3), np.float32), (np.zeros((4, 1)), np.zeros((5,)))],
    ids=["none", "empty-tuple", "scalar", "no-examples", "ragged"],
)
def test_bad_data(data):
    with pytest.raises(ValueError, match="`data`"):
        hvp(quad_loss, W0, W0, data=data)
    with pytest.raises(ValueError, match="`data`"):
        trace(quad_loss, W0, data=data, key=KEY)


def test_bad_batch_size_n_probes_and_params():
    with pytest.raises(ValueError, match="`batch_size`"):
        hvp(quad_loss, W0, W0, data=BATCH, batch_size=0)
    with pytest.raises(ValueError, match="`n_probes`"):
        trace(quad_loss, W0, data=BATCH, n_probes=0, key=KEY)
    with pytest.raises(ValueError, match="`probe_batch`"):
        hessian_diag(quad_loss, W0, data=BATCH, probe_batch=0, key=KEY)
    with pytest.raises(TypeError, match="`params`"):
        trace(quad_loss, jnp.arange(DIM), data=BATCH, key=KEY)


def test_timing_sanity():
    """Lanczos on the 30-dim quadratic is cheap once compiled (guards against recompiling)."""
    top_eigenvalues(quad_loss, W0, data=BATCH, k=1, n_iter=5, tol=0.0, key=KEY)
    start = time.perf_counter()
    top_eigenvalues(quad_loss, W0 + 1.0, data=BATCH, k=1, n_iter=5, tol=0.0, key=KEY)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_spectral_density_refuses_a_non_positive_sigma(sigma):
    with pytest.raises(ValueError, match="`sigma`"):
        spectral_density(quad_loss, W0, data=BATCH, n_probes=1, n_iter=4, key=KEY, sigma=sigma)
