"""Non-finite params, losses, gradients and Hessian-vector products raise, saying what and where
(defect 4 of issue 26: LinAlgError from Lanczos, NaN from Hutchinson)."""

import jax
import jax.numpy as jnp
import pytest

from visjax.curvature import block_curvature, hessian_diag, spectral_density, top_eigenvalues, trace

KEY = jax.random.key(0)
X = jnp.array([[1.0], [2.0], [0.0], [3.0]])

TOOLS = {
    "top_eigenvalues": lambda f, p, **kw: top_eigenvalues(f, p, key=KEY, **kw),
    "top_eigenvalues_power": lambda f, p, **kw: top_eigenvalues(
        f, p, key=KEY, algorithm="power", **kw
    ),
    "spectral_density": lambda f, p, **kw: spectral_density(f, p, key=KEY, **kw),
    "trace": lambda f, p, **kw: trace(f, p, key=KEY, **kw),
    "hessian_diag": lambda f, p, **kw: hessian_diag(f, p, key=KEY, **kw),
    "block_curvature": lambda f, p, **kw: block_curvature(f, p, key=KEY, groups="layers", **kw),
}


def _nan_gradient(p, x):
    # finite value, but d/dp sqrt|p - x| is NaN where p = x (example 2 at p["w"][0] = 0)
    return jnp.mean(jnp.sqrt(jnp.abs(p["w"][0] - x[:, 0]))) + (p["w"] ** 2).sum()


def _log_zero(p, x):
    return jnp.mean(jnp.log(x[:, 0] * p["w"][0] ** 2)) + 0 * p["w"].sum()


@pytest.mark.parametrize("tool", list(TOOLS))
def test_a_nan_gradient_names_the_gradient_and_the_chunk(tool):
    p = {"w": jnp.array([0.0, 1.0])}
    with pytest.raises(ValueError, match=r"its gradient on data chunk \[2:3\] is not finite"):
        TOOLS[tool](_nan_gradient, p, data=X, batch_size=1)


@pytest.mark.parametrize("tool", ["top_eigenvalues", "trace"])
def test_a_non_finite_loss_names_the_loss_value_and_the_chunk(tool):
    p = {"w": jnp.array([1.0, 1.0])}
    with pytest.raises(ValueError, match=r"the loss value on data chunk \[2:4\] is not finite"):
        TOOLS[tool](_log_zero, p, data=X, batch_size=2)


@pytest.mark.parametrize("tool", ["top_eigenvalues", "spectral_density", "trace", "hessian_diag"])
def test_non_finite_params_are_refused_naming_the_leaf(tool):
    p = {"b": jnp.zeros(1), "w": jnp.array([jnp.nan, 1.0])}
    with pytest.raises(ValueError, match=r"`params\['w'\]` contains NaN or Inf"):
        TOOLS[tool](lambda q, x: (q["w"] ** 2).sum() + 0 * x.sum(), p, data=X)
