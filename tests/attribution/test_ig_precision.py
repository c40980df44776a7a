import jax
import jax.numpy as jnp
import pytest

from visjax.attribution import at_layer, completeness_error, integrated_gradients
from visjax.attribution.integrated import _integrated
from visjax.zoo import digits_cnn


@pytest.fixture(scope="module")
def setup():
    model = digits_cnn("function")
    x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1))
    return model, x


def test_bf16_close_to_f32(setup):
    model, x = setup
    f32 = integrated_gradients(model, x, 3, n_steps=16)
    b16 = integrated_gradients(model, x, 3, n_steps=16, dtype=jnp.bfloat16)
    assert b16.dtype == jnp.float32
    scale = jnp.abs(f32).max()
    assert jnp.abs(b16 - f32).max() <= 5e-2 * scale
    assert not jnp.array_equal(b16, f32)
    # completeness against the float32 model: bfloat16's rounding (~1e-2), not worse
    assert completeness_error(model, x, 3, attributions=b16).max() < 5e-2


def test_bf16_no_retrace_and_jit(setup):
    model, x = setup
    kw = dict(n_steps=8, dtype=jnp.bfloat16, batch_size=16)
    integrated_gradients(model, x, 3, **kw)
    size = _integrated._cache_size()
    integrated_gradients(model, x + 0.1, 3, **kw)
    assert _integrated._cache_size() == size
    jitted = jax.jit(lambda v: integrated_gradients(model, v, 3, **kw))
    assert jitted(x).dtype == jnp.float32


def test_bf16_at_layer(setup):
    model, x = setup
    out = at_layer(integrated_gradients, "conv2")(model, x, 3, n_steps=8, dtype=jnp.bfloat16)
    assert out.dtype == jnp.float32


def test_dtype_validated(setup):
    model, x = setup
    with pytest.raises(ValueError, match="`dtype`"):
        integrated_gradients(model, x, 3, n_steps=8, dtype=jnp.int32)
