"""The estimators' products from the gradient linearised once (``jax.linearize``).

``Matvec`` linearises the dataset-mean gradient on its first product when the residuals fit in
``LINEARIZE_MAX_BYTES`` and then runs only tangent passes. The products must equal the
forward-over-reverse ones (float32 reordering aside: rel. 1e-5 on a tanh least-squares loss whose
Hessian is well conditioned) and finite differences of the gradient; with the budget at 0 the
full product runs instead.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.curvature import hvp, top_eigenvalues
from visjax.curvature import spectrum as sp

DIM = 12
A = jnp.asarray(np.random.default_rng(0).normal(size=(5, DIM)), jnp.float32)
W = jnp.asarray(np.random.default_rng(1).normal(size=DIM) * 0.3, jnp.float32)
Y = jnp.asarray(np.random.default_rng(2).normal(size=(64, 5)), jnp.float32)


def _loss(w, y):
    r = jnp.tanh(A @ w) - y
    return 0.5 * (r**2).sum(-1).mean()


@pytest.mark.parametrize("batch_size", [None, 16, "auto"])
def test_linearized_products_equal_the_full_ones(batch_size):
    xs = jax.random.normal(jax.random.key(0), (3, DIM))
    mv = sp.Matvec(_loss, W, Y, batch_size)
    got = mv(xs)
    assert mv._lin is not False  # linearised (tiny residuals)
    want = jnp.stack([hvp(_loss, W, x, data=Y, batch_size=batch_size) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(jnp.abs(want).max()))
    one = mv(xs[:1])  # the single-row path
    np.testing.assert_allclose(one[0], want[0], rtol=1e-5, atol=1e-6 * float(jnp.abs(want).max()))
    # Independent: central differences of the gradient along the unit vector u = x / |x|, step
    # 1e-3: truncation ~1e-6 relative, float32 rounding of the gradient (~1e-6 of its size)
    # over 2e-3 gives ~1e-3 of it, hence the tolerance.
    grad = jax.grad(lambda w: _loss(w, Y))
    u, eps = xs[0] / jnp.linalg.norm(xs[0]), 1e-3
    fd = (grad(W + eps * u) - grad(W - eps * u)) / (2 * eps)
    hu = got[0] / jnp.linalg.norm(xs[0])
    np.testing.assert_allclose(hu, fd, rtol=5e-3, atol=5e-3 * float(jnp.abs(fd).max()))


def test_budget_zero_runs_the_full_product_with_the_same_eigenvalue(monkeypatch):
    key = jax.random.key(1)
    lin = top_eigenvalues(_loss, W, data=Y, k=2, tol=1e-6, key=key)
    monkeypatch.setattr(sp, "LINEARIZE_MAX_BYTES", 0)
    mv = sp.Matvec(_loss, W, Y, None)
    mv(jnp.ones((1, DIM)))
    assert mv._lin is False
    full = top_eigenvalues(_loss, W, data=Y, k=2, tol=1e-6, key=key)
    np.testing.assert_allclose(lin.eigenvalues, full.eigenvalues, rtol=1e-5)
    assert lin.n_hvp == full.n_hvp


def test_auto_linearizes_the_data_as_one_chunk_when_it_fits(monkeypatch):
    # The residuals of every chunk are kept whatever the chunking, so "auto" compiles one copy
    # of the gradient (not one per unrolled chunk) when they fit the budget.
    from visjax.base import batching

    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 1024)  # auto alone would split the data
    seen = []
    real = sp.linearized_gradient

    def spy(loss_fn, params, data, batch_size):
        seen.append(batch_size)
        return real(loss_fn, params, data, batch_size)

    monkeypatch.setattr(sp, "linearized_gradient", spy)
    mv = sp.Matvec(_loss, W, Y, "auto")
    x = jnp.ones((1, DIM))
    got = mv(x)
    assert mv._lin is not False and set(seen) == {None}
    want = hvp(_loss, W, x[0], data=Y, batch_size=None)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6 * float(jnp.abs(want).max()))
