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


def test_bytes_per_row_counts_intermediates_not_constants():
    from visjax.base.batching import tree_bytes_per_row

    w = jnp.ones((16, 32))  # closed over: no per-row cost

    def fn(x):
        h = jnp.tanh(x @ w)  # two (rows, 32) float32 values
        return h.sum(0)  # the (32,) sum does not grow with the rows

    assert tree_bytes_per_row(fn, jnp.ones((5, 16))) == 2 * 32 * 4


def test_bytes_per_row_sees_nested_jaxprs():
    from visjax.base.batching import tree_bytes_per_row

    inner = jax.jit(lambda x: jnp.sin(x) * 2.0)
    plain = tree_bytes_per_row(lambda x: (jnp.sin(x) * 2.0).sum(0), jnp.ones((3, 10)))
    nested = tree_bytes_per_row(lambda x: inner(x).sum(0), jnp.ones((3, 10)))
    assert nested >= plain == 2 * 10 * 4


@pytest.mark.parametrize(
    ("n", "row_bytes", "cap", "backend", "expected"),
    [
        (1000, 2**20, None, "cpu", 8),  # 8 MiB / 1 MiB = 8 rows: 125 chunks of 8
        (1000, 3 * 2**20, None, "cpu", 2),  # 8 // 3 = 2 rows: 500 chunks of 2
        (1000, 5 * 2**20, None, "cpu", 1),  # over budget: still at least one row
        (1000, 2**10, None, "cpu", None),  # 8,192 rows fit: one batch
        (1000, 2**20, 16, "cpu", 63),  # the cap: 16 chunks of ceil(1000 / 16) = 63
        (1000, 2**20, None, "gpu", 500),  # 512 rows fit: evened out to 2 chunks of 500
        (100_000, 2**20, None, "gpu", 511),  # 196 chunks: ceil(100000 / 196) = 511
    ],
)
def test_auto_rows_rule(n, row_bytes, cap, backend, expected):
    from visjax.base.batching import auto_rows

    got = auto_rows(n, row_bytes, max_chunks=cap, backend=backend)
    assert got == expected
    if got is not None:  # evened out: the last chunk is nearly as large as the others
        chunks = -(-n // got)
        assert n - (chunks - 1) * got > got - chunks


def test_auto_equals_explicit_and_one_batch(monkeypatch):
    from visjax.base import batching

    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 4 * 64 * 4)  # 4 rows of 64 floats
    monkeypatch.setattr(batching, "CPU_FORWARD_CHUNK_BYTES", 4 * 64 * 4)
    x = jax.random.normal(jax.random.key(0), (37, 64))

    def fn(c):
        return jnp.tanh(c).sum(0)

    picked = batching.resolve_batch_size("auto", fn, x)
    assert picked is not None and picked < 37
    auto = jax.jit(lambda x: chunked_sum(fn, x, batch_size="auto"))(x)
    one = chunked_sum(fn, x, batch_size=None)
    explicit = chunked_sum(fn, x, batch_size=picked)
    np.testing.assert_allclose(auto, one, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(auto, explicit)


def test_auto_caps_unrolled_chunks(monkeypatch):
    from visjax.base import batching

    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 1)  # one row per chunk before the cap
    monkeypatch.setattr(batching, "CPU_FORWARD_CHUNK_BYTES", 1)
    x = jnp.ones((100, 3))

    def sines(c):
        return jnp.sin(c).sum(0)

    jaxpr = jax.make_jaxpr(lambda x: chunked_sum(sines, x, batch_size="auto"))(x)
    assert "scan" not in str(jaxpr)
    # at most 16 chunks: ceil(100 / 16) = 7 rows, i.e. 15 chunks (the last of 2 rows)
    assert str(jaxpr).count("sin") == 15 <= batching.AUTO_MAX_UNROLLED
    # the scan driver (forward-only work) takes the rule's size uncapped: 100 rows of 1
    jaxpr = jax.make_jaxpr(lambda x: chunked_sum(sines, x, batch_size="auto", max_unroll=1))(x)
    assert "scan" in str(jaxpr)


def test_forward_work_gets_the_larger_cpu_budget():
    from visjax.base.batching import auto_rows

    assert auto_rows(1000, 2**20, backend="cpu") == 8
    assert auto_rows(1000, 2**20, backend="cpu", forward=True) == 32  # 32 chunks of 32 -> 1000
    assert auto_rows(1000, 2**20, backend="gpu", forward=True) == 500
