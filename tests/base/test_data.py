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
