"""Per-example gradients and their noise statistics.

Checked against a Python loop of single-example ``jax.grad`` (digits CNN, linear regression),
closed forms on a linear regression (``g_i = (w·x_i − y_i) x_i`` for ``½(w·x − y)²``), and a
direct NumPy computation of Cockpit's norm and inner-product tests.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from visjax.gradstats.per_example import (
    GradientNoise,
    PerExampleStats,
    per_example_grads,
    per_example_stats,
)
from visjax.zoo import digits_cnn

RNG = np.random.default_rng(0)
N, D = 10, 3
X = RNG.normal(size=(N, D)).astype(np.float32)
Y = RNG.normal(size=N).astype(np.float32)
PARAMS = {"lin": {"w": jnp.asarray(RNG.normal(size=D), jnp.float32), "b": jnp.float32(0.3)}}


def lin_loss(p, batch):
    x, y = batch
    r = x @ p["lin"]["w"] + p["lin"]["b"] - y
    return (0.5 * r**2).mean()


def lin_grads_np():
    """Analytic per-example gradients, float64: ``r_i x_i`` and ``r_i``."""
    w, b = np.asarray(PARAMS["lin"]["w"], np.float64), float(PARAMS["lin"]["b"])
    r = X.astype(np.float64) @ w + b - Y
    return r[:, None] * X, r  # (N, D), (N,)


def cnn_loss(apply):
    def loss(p, batch):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, x), y).mean()

    return loss


def test_per_example_grads_match_a_loop_on_the_digits_cnn():
    model = digits_cnn("function")
    loss = cnn_loss(model.apply_fn)
    x = jax.random.uniform(jax.random.key(1), (5, 8, 8, 1))
    y = jnp.arange(5) % 10
    got = per_example_grads(loss, model.params, data=(x, y))
    single = jax.jit(jax.grad(loss))
    for i in range(5):
        want = single(model.params, (x[i : i + 1], y[i : i + 1]))
        jax.tree.map(
            lambda g, w, i=i: np.testing.assert_allclose(g[i], w, rtol=1e-4, atol=1e-6),
            got,
            want,
        )
    chunked = per_example_grads(loss, model.params, data=(x, y), batch_size=2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, chunked)


def test_per_example_grads_linear_regression_analytic_and_chunked():
    gw, gb = lin_grads_np()
    got = per_example_grads(lin_loss, PARAMS, data=(X, Y))
    np.testing.assert_allclose(got["lin"]["w"], gw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["lin"]["b"], gb, rtol=1e-5, atol=1e-6)
    chunked = per_example_grads(lin_loss, PARAMS, data=(X, Y), batch_size=3)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, chunked)


def _expected(g):
    """Every statistic, in NumPy float64, from explicit per-example gradients ``g`` (N, P)."""
    n = g.shape[0]
    gbar = g.mean(0)
    g2 = gbar @ gbar
    var = ((g - gbar) ** 2).sum() / (n - 1)
    true_g2 = g2 - var / n
    gsnr = (gbar**2 / (((g - gbar) ** 2).mean(0) + 1e-5)).mean()
    # Cockpit's formulas, written with BackPACK's batch_grad = g_i / n
    bg = g / n
    var_l1 = (n**2 * (bg**2).sum() - n * g2) / (n - 1)
    proj = n * (bg @ bg.T).sum(1)
    var_proj = ((proj**2).sum() - n * g2**2) / (n - 1)
    return {
        "grad_norm_sq": g2,
        "mean_norm_sq": (g**2).sum(1).mean(),
        "variance": var,
        "true_grad_norm_sq": true_g2,
        "noise_scale": var / true_g2 if true_g2 > 0 else np.inf,
        "snr": gsnr,
        "norm_test": np.sqrt(var_l1 / n / g2),
        "inner_test": np.sqrt(var_proj / n / g2**2),
    }


def _assert_noise(got: GradientNoise, want: dict, rtol=1e-4):
    for name, value in want.items():
        np.testing.assert_allclose(float(getattr(got, name)), value, rtol=rtol, err_msg=name)


@pytest.mark.parametrize("batch_size", [None, 3])
def test_stats_equal_closed_forms_on_linear_regression(batch_size):
    gw, gb = lin_grads_np()
    stats = per_example_stats(lin_loss, PARAMS, data=(X, Y), batch_size=batch_size)
    assert isinstance(stats, PerExampleStats)
    _assert_noise(stats.total, _expected(np.concatenate([gb[:, None], gw], 1)))
    assert list(stats.groups) == ["lin"]
    _assert_noise(stats.groups["lin"], _expected(np.concatenate([gb[:, None], gw], 1)))
    # closed forms written out: tr Σ̂ = Σ r_i² ‖(1, x_i)‖² − N‖ḡ‖² over N − 1
    r = gb
    gbar = np.concatenate([[r.mean()], gw.mean(0)])
    var = ((r**2) * (1 + (X.astype(np.float64) ** 2).sum(1))).sum() - N * gbar @ gbar
    var /= N - 1
    np.testing.assert_allclose(float(stats.total.variance), var, rtol=1e-4)
    b_simple = var / (gbar @ gbar - var / N)
    np.testing.assert_allclose(float(stats.total.noise_scale), b_simple, rtol=1e-4)


def test_population_noise_scale_has_no_finite_sample_correction():
    """The data as the population: tr Σ = Σ‖g_i − ḡ‖² / N, |G|² = ‖ḡ‖², B = tr Σ / ‖ḡ‖²."""
    gw, gb = lin_grads_np()
    g = np.concatenate([gb[:, None], gw], 1)
    gbar = g.mean(0)
    g2, centred = gbar @ gbar, ((g - gbar) ** 2).sum()
    pop = per_example_stats(lin_loss, PARAMS, data=(X, Y), population=True, batch_size=3)
    sample = per_example_stats(lin_loss, PARAMS, data=(X, Y))
    b_pop = centred / N / g2
    for got in (pop.total, pop.groups["lin"]):
        np.testing.assert_allclose(float(got.variance), centred / N, rtol=1e-4)
        np.testing.assert_allclose(float(got.true_grad_norm_sq), g2, rtol=1e-4)
        np.testing.assert_allclose(float(got.noise_scale), b_pop, rtol=1e-4)
    # the sample estimate of the same data is B N / (N − 1 − B) (or +inf past N − 1)
    want = b_pop * N / (N - 1 - b_pop) if b_pop < N - 1 else np.inf
    np.testing.assert_allclose(float(sample.total.noise_scale), want, rtol=1e-4)
    _assert_noise(sample.total, _expected(g))
    for name in ("grad_norm_sq", "mean_norm_sq", "snr", "norm_test", "inner_test"):
        np.testing.assert_allclose(
            float(getattr(pop.total, name)), float(getattr(sample.total, name)), rtol=1e-6
        )


def test_population_noise_scale_stays_finite_where_the_sample_one_is_inf():
    # mean gradient small against the spread: ‖ḡ‖² < tr Σ̂ / N
    x = np.array([[1.0], [-1.0], [1.0], [-1.0]], np.float32)
    y = np.array([1.0, 1.0, -0.9, -1.0], np.float32)
    params = {"lin": {"w": jnp.zeros(1), "b": jnp.float32(0.0)}}
    sample = per_example_stats(lin_loss, params, data=(x, y))
    pop = per_example_stats(lin_loss, params, data=(x, y), population=True)
    assert float(sample.total.noise_scale) == np.inf
    r = -y.astype(np.float64)
    g = np.stack([r, r * x[:, 0]], 1)  # (∂b, ∂w) per example
    gbar = g.mean(0)
    want = ((g - gbar) ** 2).sum() / len(g) / (gbar @ gbar)
    np.testing.assert_allclose(float(pop.total.noise_scale), want, rtol=1e-4)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_groups_and_include_on_the_digits_cnn():
    model = digits_cnn("function")
    loss = cnn_loss(model.apply_fn)
    x = jax.random.uniform(jax.random.key(2), (10, 8, 8, 1))
    y = jnp.arange(10)
    g = per_example_grads(loss, model.params, data=(x, y))
    flat = {
        k: np.concatenate(
            [np.asarray(g[k][n], np.float64).reshape(10, -1) for n in ("bias", "kernel")], 1
        )
        for k in ("conv1", "conv2", "fc")
    }
    stats = per_example_stats(loss, model.params, data=(x, y), batch_size=3)
    assert list(stats.groups) == ["conv1", "conv2", "fc"]
    for k in flat:
        _assert_noise(stats.groups[k], _expected(flat[k]), rtol=2e-3)
    _assert_noise(stats.total, _expected(np.concatenate(list(flat.values()), 1)), rtol=2e-3)
    convs = per_example_stats(
        loss, model.params, data=(x, y), groups={"k": "*.kernel"}, include="conv*", batch_size=4
    )
    assert list(convs.groups) == ["k"]
    want = np.concatenate(
        [np.asarray(g[k]["kernel"]).reshape(10, -1) for k in ("conv1", "conv2")], 1
    )
    _assert_noise(convs.groups["k"], _expected(want.astype(np.float64)), rtol=2e-3)
    want_total = np.concatenate([flat["conv1"], flat["conv2"]], 1)
    _assert_noise(convs.total, _expected(want_total), rtol=2e-3)


def test_no_retrace_under_jit():
    traces = []

    def loss(p, batch):
        traces.append(1)
        return lin_loss(p, batch)

    stats = jax.jit(lambda p, b: per_example_stats(loss, p, data=b, batch_size=4))
    grads = jax.jit(lambda p, b: per_example_grads(loss, p, data=b, batch_size=4))
    stats(PARAMS, (X, Y))
    grads(PARAMS, (X, Y))
    first = len(traces)
    assert first > 0
    new = jax.tree.map(lambda a: a + 1.0, PARAMS)
    stats(new, (X + 1.0, Y))
    grads(new, (X + 1.0, Y))
    assert len(traces) == first
    # the eager entry points do not retrace either (the coupling check included)
    per_example_stats(loss, PARAMS, data=(X, Y), batch_size=4)
    after_eager = len(traces)
    per_example_stats(loss, new, data=(X + 1.0, Y), batch_size=4)
    assert len(traces) == after_eager


def _batchnorm_loss(p, batch):
    """A linear model behind a training-mode batch normalisation: couples the examples."""
    x, y = batch
    h = x * p["lin"]["w"]
    h = (h - h.mean(0)) / jnp.sqrt(h.var(0) + 1e-5)
    return (0.5 * (h.sum(1) + p["lin"]["b"] - y) ** 2).mean()


def _mean_normalised_loss(p, batch):
    return lin_loss(p, batch) / jnp.mean(batch[1] ** 2)


@pytest.mark.parametrize("loss", [_batchnorm_loss, _mean_normalised_loss])
def test_coupled_examples_raise(loss):
    with pytest.raises(ValueError, match=r"couples the examples.*inference mode"):
        per_example_stats(loss, PARAMS, data=(X, Y))
    with pytest.raises(ValueError, match="couples the examples"):
        per_example_grads(loss, PARAMS, data=(X, Y))


def test_a_sum_instead_of_a_mean_raises():
    with pytest.raises(ValueError, match="couples the examples"):
        per_example_stats(lambda p, b: lin_loss(p, b) * b[0].shape[0], PARAMS, data=(X, Y))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`data`"):
        per_example_grads(lin_loss, PARAMS, data=(X, Y[:5]))
    with pytest.raises(ValueError, match="`data`"):
        per_example_stats(lin_loss, PARAMS, data=(X[:1], Y[:1]))
    for bad in (0, -2, 1.5, True, "big"):
        with pytest.raises(ValueError, match="`batch_size`"):
            per_example_stats(lin_loss, PARAMS, data=(X, Y), batch_size=bad)
        with pytest.raises(ValueError, match="`batch_size`"):
            per_example_grads(lin_loss, PARAMS, data=(X, Y), batch_size=bad)
    with pytest.raises(ValueError, match="`groups`"):
        per_example_stats(lin_loss, PARAMS, data=(X, Y), groups="blocks")
    with pytest.raises(ValueError, match="`groups` entry 'x'"):
        per_example_stats(lin_loss, PARAMS, data=(X, Y), groups={"x": "nothing.*"})
    with pytest.raises(ValueError, match="`include`"):
        per_example_stats(lin_loss, PARAMS, data=(X, Y), include="nothing")
    with pytest.raises(ValueError, match="scalar"):
        per_example_grads(lambda p, b: b[0] @ p["lin"]["w"], PARAMS, data=(X, Y))
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="`population`"):
            per_example_stats(lin_loss, PARAMS, data=(X, Y), population=bad)


def test_many_chunks_take_the_lax_map_path():
    x = np.tile(X, (7, 1)) + np.arange(70, dtype=np.float32)[:, None] / 70
    y = np.tile(Y, 7)
    one = per_example_grads(lin_loss, PARAMS, data=(x, y))
    many = per_example_grads(lin_loss, PARAMS, data=(x, y), batch_size=1)  # 70 chunks > MAX_UNROLL
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), one, many)


def test_auto_batch_size_equals_explicit_and_one_batch(monkeypatch):
    import visjax.base.batching as batching
    from visjax.gradstats.per_example import _grads_of_chunk

    # A tiny budget: "auto" splits the 12 examples into several chunks (at most 16 unrolled).
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 64)
    monkeypatch.setattr(batching, "ACCELERATOR_CHUNK_BYTES", 64)
    x, y = np.concatenate([X, X[:2] + 1.0]), np.concatenate([Y, Y[:2]])  # 12: a fresh trace
    data = (jnp.asarray(x), jnp.asarray(y))
    size = batching.resolve_batch_size(
        "auto", lambda b: _grads_of_chunk(lin_loss, PARAMS, b), data, max_chunks=16
    )
    assert size is not None and size < 12
    close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7)
    auto = per_example_grads(lin_loss, PARAMS, data=data)
    for other in (None, 5):
        jax.tree.map(close, auto, per_example_grads(lin_loss, PARAMS, data=data, batch_size=other))
    auto = per_example_stats(lin_loss, PARAMS, data=data)
    for other in (None, 5):
        jax.tree.map(close, auto, per_example_stats(lin_loss, PARAMS, data=data, batch_size=other))
