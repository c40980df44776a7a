import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.evaluation import predict


@pytest.mark.parametrize("batch_size", ["auto", None, 1, 2, 3, 64])
def test_predict_equals_one_batch(cnn_models, batch, batch_size):
    model = cnn_models["function"]
    got = predict(model, batch, batch_size=batch_size)
    assert isinstance(got, np.ndarray) and got.shape == (5, 10)
    np.testing.assert_allclose(got, np.asarray(model(batch)), rtol=1e-5, atol=1e-6)


def test_predict_on_a_callable_and_a_pytree_output():
    x = jnp.arange(14.0).reshape(7, 2)
    out = predict(lambda v: {"a": v * 2, "s": v.sum(1)}, x, batch_size=3)
    np.testing.assert_allclose(out["a"], 2 * np.asarray(x))
    np.testing.assert_allclose(out["s"], np.asarray(x).sum(1))


def test_one_compile_for_padded_chunks():
    traces = []

    def f(v):
        traces.append(v.shape)
        return v + 1

    predict(f, jnp.zeros((7, 2)), batch_size=3)
    assert traces == [(3, 2)]


def test_empty_batch(cnn_models):
    out = predict(cnn_models["nnx"], jnp.zeros((0, 8, 8, 1)))
    assert out.shape == (0, 10) and out.dtype == np.float32


def test_bad_input_refused(cnn_models):
    model = cnn_models["function"]
    with pytest.raises(ValueError, match="`x`"):
        predict(model, jnp.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="`x`"):
        predict(model, jnp.full((2, 8, 8, 1), jnp.nan))
    with pytest.raises(ValueError, match="`batch_size`"):
        predict(model, jnp.zeros((2, 8, 8, 1)), batch_size=0)
    with pytest.raises(TypeError, match="`model`"):
        predict("model", jnp.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match="`x`"):
        predict(jax.nn.relu, jnp.float32(1.0))
