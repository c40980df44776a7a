import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.featviz import fourier, render
from visjax.zoo import digits_cnn


def test_bf16_render_float32_outputs_close_to_f32():
    model, key = digits_cnn("function"), jax.random.key(0)
    kw = dict(param=fourier((8, 8, 1)), n_steps=2, units=[("conv2", 0)], key=key, progress=False)
    f32 = render(model, **kw)
    b16 = render(model, dtype=jnp.bfloat16, **kw)
    assert b16.images.dtype == jnp.float32 and b16.traces.dtype == np.float32
    np.testing.assert_allclose(
        b16.traces, f32.traces, rtol=5e-2, atol=5e-2 * np.abs(f32.traces).max()
    )


def test_dtype_validated():
    with pytest.raises(ValueError, match="`dtype`"):
        render(
            digits_cnn("function"),
            param=fourier((8, 8, 1)),
            n_steps=1,
            key=jax.random.key(0),
            units=[3],
            dtype="int8",
        )
