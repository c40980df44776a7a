import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.base.checks import (
    check_batch_size,
    check_finite,
    check_positive_int,
    check_tree_like,
    is_concrete,
    scalar_loss,
)
from visjax.base.grids import check_grid, check_surface


def test_positive_int():
    assert check_positive_int(3, "n") == 3
    assert check_positive_int(np.int64(2), "n", minimum=2) == 2
    for bad in (0, -1, 1.0, True, "2", None):
        with pytest.raises(ValueError, match=r"`n_steps` must be an int >= 1"):
            check_positive_int(bad, "n_steps")
    with pytest.raises(ValueError, match=r"`n` must be an int >= 2, got 1"):
        check_positive_int(1, "n", minimum=2)


def test_batch_size():
    assert check_batch_size(None) is None
    assert check_batch_size(4) == 4
    assert type(check_batch_size(np.int32(4))) is int
    for bad in (0, -3, 2.0, True, "8"):
        with pytest.raises(ValueError, match=r"`batch_size` must be a positive int, .auto."):
            check_batch_size(bad)
    with pytest.raises(ValueError, match=r"`probe_batch`"):
        check_batch_size(0, "probe_batch")


def test_finite_checks_concrete_values_only():
    check_finite(jnp.ones(3), "x")
    with pytest.raises(ValueError, match=r"`x` contains NaN or Inf"):
        check_finite(np.array([1.0, np.nan]), "x")
    with pytest.raises(ValueError, match=r"`baseline` contains NaN or Inf"):
        check_finite(jnp.array([np.inf]), "baseline")

    @jax.jit
    def f(a):
        assert not is_concrete(a)
        check_finite(a, "x")  # skipped under jit
        return a

    f(jnp.array([np.nan]))
    assert is_concrete(jnp.ones(2))


def test_tree_like():
    ref = {"a": jnp.ones((2, 3)), "b": [jnp.ones(4)]}
    check_tree_like({"a": np.zeros((2, 3)), "b": [np.zeros(4)]}, ref, "params")
    with pytest.raises(ValueError, match=r"`state` must have the model's tree structure"):
        check_tree_like({"a": jnp.ones((2, 3))}, ref, "state")
    with pytest.raises(ValueError, match=r"`params\['a'\]` must have shape \(2, 3\), got \(3, 2\)"):
        check_tree_like({"a": jnp.ones((3, 2)), "b": [jnp.ones(4)]}, ref, "params")


def test_scalar_loss():
    good = scalar_loss(lambda p, b: jnp.mean(p * b))
    assert float(good(2.0, jnp.ones(3))) == 2.0
    bad = scalar_loss(lambda p, b: p * b)
    with pytest.raises(ValueError, match=r"`loss_fn` must return a scalar \(the batch mean\)"):
        bad(2.0, jnp.ones(3))
    with pytest.raises(ValueError, match=r"`objective` must return a scalar"):
        scalar_loss(lambda p, b: p * b, "objective")(2.0, jnp.ones(3))


def test_grid():
    np.testing.assert_array_equal(check_grid([0, 1, 2], "alphas"), [0, 1, 2])
    assert check_grid([0.5], "alphas").dtype == np.float32
    with pytest.raises(ValueError, match=r"`alphas` must be a non-empty 1-D grid"):
        check_grid([], "alphas")
    with pytest.raises(ValueError, match=r"`betas` must be finite"):
        check_grid([0, np.nan], "betas")
    with pytest.raises(ValueError, match=r"`alphas` must be strictly increasing"):
        check_grid([0, 0], "alphas")


def test_surface():
    xs, _, z = check_surface([0, 1], [0, 1, 2], np.zeros((2, 3)))
    assert z.shape == (2, 3) and xs.dtype == np.float64
    with pytest.raises(ValueError, match=r"`xs` and `ys` must be 1-D"):
        check_surface([0], [0, 1], np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"`surface` must have shape"):
        check_surface([0, 1], [0, 1, 2], np.zeros((3, 2)))
