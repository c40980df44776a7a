import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.base.batching import chunked_sum


@pytest.mark.parametrize("batch_size", [None, 1, 3, 4, 10, 64])
@pytest.mark.parametrize("max_unroll", [2, 64])
def test_chunked_sum_equals_one_sum(batch_size, max_unroll):
    x = jnp.arange(23.0)
    w = jnp.linspace(0, 1, 23)

    def fn(x, w):
        return {"a": (x * w).sum(), "b": jnp.stack([x.sum(), w.sum()])}

    out = jax.jit(lambda x, w: chunked_sum(fn, x, w, batch_size=batch_size, max_unroll=max_unroll))(
        x, w
    )
    np.testing.assert_allclose(out["a"], (x * w).sum(), rtol=1e-6)
    np.testing.assert_allclose(out["b"], [x.sum(), w.sum()], rtol=1e-6)


def test_many_chunks_go_through_lax_map():
    x = jnp.ones(40)
    jaxpr = jax.make_jaxpr(lambda x: chunked_sum(lambda c: c.sum(), x, batch_size=2, max_unroll=4))(
        x
    )
    assert "scan" in str(jaxpr)  # lax.map over groups of 4 unrolled chunks
    jaxpr = jax.make_jaxpr(lambda x: chunked_sum(lambda c: c.sum(), x, batch_size=10))(x)
    assert "scan" not in str(jaxpr)
