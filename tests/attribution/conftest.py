import jax
import jax.numpy as jnp
import pytest

import visjax


@pytest.fixture(scope="session")
def linear():
    """f(x) = x·W + c, three outputs, on inputs of shape (4, 4, 1)."""
    w = jax.random.normal(jax.random.key(1), (16, 3))
    c = jnp.array([0.5, -1.0, 2.0])

    def apply(p, x):
        return x.reshape(x.shape[0], -1) @ p["w"] + p["c"]

    return visjax.as_model(apply, {"w": w, "c": c}, input_shape=(4, 4, 1)), w


@pytest.fixture(scope="session")
def images():
    return jax.random.uniform(jax.random.key(2), (3, 4, 4, 1))


@pytest.fixture(scope="session")
def trained_cnn(trained_digits):
    return trained_digits.model


@pytest.fixture(scope="session")
def digits():
    from visjax.zoo import load_digits

    return load_digits()
