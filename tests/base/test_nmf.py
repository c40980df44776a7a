"""Non-negative matrix factorisation: planted recovery, monotone descent, batching, jit, checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.base.nmf import nmf


def planted(seed=0, m=12, p=20, k=3):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.random((m, k)) @ rng.random((k, p)), jnp.float32)


def test_hals_recovers_a_planted_factorisation():
    v = planted()
    w, h, err = nmf(v, 3, algorithm="hals", n_iter=2000, tol=0)
    assert w.shape == (12, 3) and h.shape == (3, 20)
    assert float(err) <= 1e-4
    assert (w >= 0).all() and (h >= 0).all()
    np.testing.assert_allclose(float(err), np.linalg.norm(v - w @ h) / np.linalg.norm(v), 1e-3)


@pytest.mark.parametrize("algorithm", ["mu", "hals"])
def test_error_decreases_monotonically(algorithm):
    v = planted(1)
    w, h, err = nmf(v, 3, algorithm=algorithm, n_iter=0)
    errs = [float(err)]
    for _ in range(15):  # one iteration at a time from the previous factors: one compile
        w, h, err = nmf(v, 3, algorithm=algorithm, n_iter=1, init=(w, h), tol=0)
        errs.append(float(err))
    assert np.all(np.diff(errs) <= 1e-6 * errs[0]), errs
    assert errs[-1] < 0.5 * errs[0]


def test_batch_equals_single_and_the_key_decides():
    v = jnp.stack([planted(2), planted(3)])
    key = jax.random.key(4)
    init = nmf(v, 3, n_iter=0, key=key)[:2]
    wb, _, eb = nmf(v, 3, n_iter=30, init=init, tol=0)
    for i in range(2):
        w, _, e = nmf(v[i], 3, n_iter=30, init=(init[0][i], init[1][i]), tol=0)
        np.testing.assert_allclose(wb[i], w, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(eb[i], e, rtol=1e-4)
    again = nmf(v, 3, n_iter=30, key=key, tol=0)
    np.testing.assert_array_equal(again[0], wb)
    other = nmf(v, 3, n_iter=30, key=jax.random.key(5), tol=0)
    assert not np.allclose(other[0], wb)


def test_jit_equals_eager():
    v = planted(6)
    eager = nmf(v, 3, n_iter=20)
    jitted = jax.jit(lambda v: nmf(v, 3, n_iter=20))(v)
    for a, b in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_tol_stops_early():
    v = planted(7)
    loose = nmf(v, 3, algorithm="mu", n_iter=500, tol=0.5)[2]
    full = nmf(v, 3, algorithm="mu", n_iter=500, tol=0)[2]
    assert float(full) < float(loose)


def test_bad_inputs_name_the_argument():
    v = planted()
    with pytest.raises(ValueError, match="`k`"):
        nmf(v, 0)
    with pytest.raises(ValueError, match="`v` must be non-negative"):
        nmf(v - 1, 2)
    with pytest.raises(ValueError, match="`v`"):
        nmf(v[0], 2)
    with pytest.raises(ValueError, match="`algorithm`"):
        nmf(v, 2, algorithm="als")
    with pytest.raises(ValueError, match="`tol`"):
        nmf(v, 2, tol=-1)
    with pytest.raises(ValueError, match=r"`init\[1\]`"):
        nmf(v, 2, init=(jnp.ones((12, 2)), jnp.ones((3, 20))))
    with pytest.raises(TypeError, match="`key`"):
        nmf(v, 2, key=0)
