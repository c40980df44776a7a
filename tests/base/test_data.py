import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.base.data import check_data, data_mesh, data_sum


def test_check_data():
    assert check_data({"x": np.ones((5, 2)), "y": np.ones(5)}) == 5
    with pytest.raises(ValueError, match=r"`data` must be one batch"):
        check_data({"x": np.ones((5, 2)), "y": np.ones(4)})
    with pytest.raises(ValueError, match=r"`batch` must be one batch"):
        check_data(np.ones((0, 2)), "batch")
    with pytest.raises(ValueError, match=r"`data` must be one batch"):
        check_data({})


@pytest.mark.parametrize("batch_size", [None, 1, 3, 7, 100])
def test_data_sum_is_the_dataset_mean_of_batch_means(batch_size):
    x = jnp.arange(7.0)
    mean = data_sum(lambda b: jnp.mean(b**2), x, batch_size)
    np.testing.assert_allclose(mean, np.mean(np.arange(7.0) ** 2), rtol=1e-6)


def test_data_mesh():
    assert data_mesh([jax.devices()[0]]) is None
    with pytest.raises(ValueError, match=r"`devices` must be None"):
        data_mesh([])


def test_check_data_refuses_nan_naming_the_leaf_and_the_first_example():
    x = np.ones((6, 2, 2), np.float32)
    x[4, 1, 0] = np.nan
    x[5] = np.inf
    with pytest.raises(ValueError, match=r"`data\['x'\]` contains NaN or Inf \(first at example 4"):
        check_data({"x": x, "y": np.arange(6)})
    with pytest.raises(ValueError, match=r"`data\[0\]` contains NaN"):
        check_data((x, np.arange(6)))
    assert check_data((x, np.arange(6)), finite=False) == 6


def test_check_data_refuses_other_dtypes_and_skips_values_under_jit():
    with pytest.raises(TypeError, match=r"`data\[1\]` must have a boolean, integer or floating"):
        check_data((np.ones((2, 1)), np.array(["a", "b"])))
    assert check_data((np.ones((2, 1)), np.array([True, False]))) == 2
    x = jnp.full((3, 2), jnp.nan)
    # tracers: the shapes are checked, the values cannot be
    assert jax.jit(lambda d: jnp.float32(check_data(d)))(x) == 3


def _quadratic(p, x):
    return 0.5 * jnp.mean((x @ p) ** 2)


def _tools():
    from visjax.curvature import hessian_diag, spectral_density, top_eigenvalues, trace
    from visjax.gradstats import per_example_grads, per_example_stats
    from visjax.landscape.slices import plane

    key = jax.random.key(0)
    d = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    grid = np.linspace(-1, 1, 3)
    return {
        "plane": lambda p, x: plane(_quadratic, p, *d, grid, grid, data=x),
        "top_eigenvalues": lambda p, x: top_eigenvalues(_quadratic, p, data=x, key=key),
        "spectral_density": lambda p, x: spectral_density(_quadratic, p, data=x, key=key),
        "trace": lambda p, x: trace(_quadratic, p, data=x, key=key),
        "hessian_diag": lambda p, x: hessian_diag(_quadratic, p, data=x, key=key),
        "per_example_grads": lambda p, x: per_example_grads(_quadratic, p, data=x),
        "per_example_stats": lambda p, x: per_example_stats(_quadratic, p, data=x),
    }


@pytest.mark.parametrize("tool", list(_tools()))
def test_every_parameter_space_tool_refuses_nan_and_empty_data(tool):
    # defect 3 of issue 26: NaN data gave a finite surface, [nan] eigenvalues or a nan trace
    run = _tools()[tool]
    p = jnp.array([1.0, -1.0])
    x = np.ones((5, 2), np.float32)
    x[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"`data` contains NaN or Inf \(first at example 2"):
        run(p, x)
    with pytest.raises(ValueError, match=r"`data` must be one batch"):
        run(p, np.ones((0, 2), np.float32))
