"""Filter weights, feature maps and top-activating examples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import as_model
from visjax.featviz.companions import (
    TopActivating,
    feature_maps,
    layer_filters,
    top_activating,
)
from visjax.zoo import cnn, load_digits

FORMS = ("nnx", "linen", "function")


@pytest.fixture(scope="module")
def digits_x():
    return load_digits().train.x


def _brute_force(acts, channels, k, reduce):
    a = np.asarray(acts, np.float64)
    if a.ndim > 2:
        a = a.mean((1, 2)) if reduce == "mean" else a.max((1, 2))
    scores = a[:, channels].T
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, idx, 1), idx


# -- filters


@pytest.mark.parametrize("form", FORMS)
def test_filters_are_the_rescaled_kernel(cnn_models, cnn_params, form):
    f = np.asarray(layer_filters(cnn_models[form], layer="conv2"))
    w = np.transpose(np.asarray(cnn_params["conv2"]["kernel"]), (3, 0, 1, 2))
    assert f.shape == (32, 3, 3, 16)
    lo = w.min((1, 2, 3), keepdims=True)
    hi = w.max((1, 2, 3), keepdims=True)
    np.testing.assert_allclose(f, (w - lo) / (hi - lo), rtol=1e-5, atol=1e-6)
    assert np.allclose(f.min((1, 2, 3)), 0.0) and np.allclose(f.max((1, 2, 3)), 1.0)


def test_symmetric_filters_keep_zero_at_half_and_the_sign(cnn_params):
    params = jax.tree.map(jnp.asarray, cnn_params)
    kernel = params["conv1"]["kernel"].at[..., 0].set(0.0)
    params = {**params, "conv1": {**params["conv1"], "kernel": kernel}}
    m = cnn.digits_cnn("function", params)
    f = np.asarray(layer_filters(m, layer="conv1", scale="symmetric"))
    w = np.transpose(np.asarray(kernel), (3, 0, 1, 2))
    top = np.abs(w).max((1, 2, 3), keepdims=True)
    np.testing.assert_allclose(f[1:], 0.5 + w[1:] / (2 * top[1:]), rtol=1e-5, atol=1e-6)
    assert np.all(f[0] == 0.5)  # an all-zero filter is mid grey
    assert np.all((f[1:] > 0.5) == (w[1:] > 0)) and f.min() >= 0 and f.max() <= 1


def test_filters_bad_input(cnn_models):
    m = cnn_models["function"]
    with pytest.raises(ValueError, match=r"`layer` 'conv9'.*\['conv1', 'conv2', 'fc'\]"):
        layer_filters(m, layer="conv9")
    with pytest.raises(ValueError, match=r"`layer` 'fc' has a 2-D kernel"):
        layer_filters(m, layer="fc")
    with pytest.raises(ValueError, match="`scale`"):
        layer_filters(m, layer="conv1", scale="abs")


# -- feature maps


@pytest.mark.parametrize("form", FORMS)
def test_feature_maps_equal_the_model_activations(cnn_models, batch, form):
    m = cnn_models[form]
    got = feature_maps(m, batch, layer="conv1")
    want = m.activations(batch, "conv1")[1]["conv1"]
    assert got.shape == (5, 8, 8, 16)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert feature_maps(m, batch, layer="fc").shape == (5, 10)


def test_feature_maps_bad_input(cnn_models, batch):
    m = cnn_models["nnx"]
    with pytest.raises(ValueError, match=r"`layer` 'pool'.*known"):
        feature_maps(m, batch, layer="pool")
    with pytest.raises(ValueError, match="`x` must be a batch"):
        feature_maps(m, batch[0], layer="conv1")
    with pytest.raises(ValueError, match="`x` holds NaN"):
        feature_maps(m, batch.at[0, 0, 0, 0].set(jnp.nan), layer="conv1")


# -- top activating


@pytest.mark.parametrize(
    ("layer", "channels", "k", "reduce"),
    [("conv2", [0, 7, 31], 9, "mean"), ("conv1", [3], 4, "max"), ("fc", [2, 9], 5, "mean")],
)
def test_top_activating_equals_brute_force_and_chunking_does_not_matter(
    cnn_models, digits_x, layer, channels, k, reduce
):
    m = cnn_models["function"]
    acts = m.activations(digits_x, layer)[1][layer]
    want_v, want_i = _brute_force(acts, channels, k, reduce)
    # None: one chunk; 100: unrolled chunks; 5: 270 chunks, driven by a scan
    for batch_size in (None, 100, 5):
        got = top_activating(
            m, digits_x, layer=layer, channels=channels, k=k, batch_size=batch_size, reduce=reduce
        )
        assert isinstance(got, TopActivating)
        assert got.values.shape == got.indices.shape == (len(channels), k)
        np.testing.assert_array_equal(got.indices, want_i)
        np.testing.assert_allclose(got.values, want_v, rtol=1e-5, atol=1e-6)


def test_top_activating_ties_go_to_the_lower_index(cnn_models, digits_x):
    m = cnn_models["function"]
    x = np.concatenate([digits_x[:40]] * 3)  # every example three times, in three chunks
    acts = np.asarray(m.activations(x, "conv2")[1]["conv2"]).mean((1, 2))
    _, want_i = _brute_force(acts, [4], 7, "mean")
    best = int(np.argmax(acts[:40, 4]))
    for batch_size in (None, 7, 40):
        got = top_activating(m, x, layer="conv2", channels=4, k=7, batch_size=batch_size)
        np.testing.assert_array_equal(got.indices, want_i)
        assert got.indices.shape == (1, 7)
        assert list(got.indices[0, :3]) == [best, best + 40, best + 80]


def test_top_activating_k_equal_to_n_is_a_full_sort(cnn_models, batch):
    m = cnn_models["linen"]
    got = top_activating(m, batch, layer="conv2", channels=1, k=5, batch_size=2)
    acts = m.activations(batch, "conv2")[1]["conv2"]
    np.testing.assert_array_equal(got.indices, _brute_force(acts, [1], 5, "mean")[1])


def test_top_activating_compiles_once(cnn_params, digits_x):
    traces = []

    def apply(params, x):
        traces.append(1)
        return cnn.apply(params, x)

    m = as_model(apply, cnn_params, input_shape=cnn.INPUT_SHAPE)
    top_activating(m, digits_x, layer="conv2", channels=[0, 1], k=3, batch_size=500)
    n = len(traces)
    # New data and new weights of the same shapes: no new trace of the model.
    new = m.replace(params=jax.tree.map(lambda a: a * 0.5, m.params))
    reversed_x = digits_x[::-1].copy()
    top_activating(new, reversed_x, layer="conv2", channels=[0, 1], k=3, batch_size=500)
    assert len(traces) == n


def test_top_activating_bad_input(cnn_models, digits_x):
    m = cnn_models["function"]
    x = digits_x[:20]
    with pytest.raises(ValueError, match="`k` must be an int in \\[1, 20\\]"):
        top_activating(m, x, layer="conv2", channels=0, k=21)
    with pytest.raises(ValueError, match="`k`"):
        top_activating(m, x, layer="conv2", channels=0, k=0)
    with pytest.raises(ValueError, match=r"`channels` must be ints in \[0, 32\)"):
        top_activating(m, x, layer="conv2", channels=[0, 32], k=2)
    with pytest.raises(ValueError, match="`channels`"):
        top_activating(m, x, layer="conv2", channels=-1, k=2)
    with pytest.raises(ValueError, match=r"`layer` 'conv3'.*known"):
        top_activating(m, x, layer="conv3", channels=0, k=2)
    for bad in (0, 1.5, "big"):
        with pytest.raises(ValueError, match="`batch_size`"):
            top_activating(m, x, layer="conv2", channels=0, k=2, batch_size=bad)
    with pytest.raises(ValueError, match="`reduce`"):
        top_activating(m, x, layer="conv2", channels=0, k=2, reduce="sum")
    nan_x = np.where(np.arange(20)[:, None, None, None] == 3, np.nan, x)
    with pytest.raises(ValueError, match="`x` holds NaN"):
        top_activating(m, nan_x, layer="conv2", channels=0, k=2)
    with pytest.raises(ValueError, match="`x` must be a batch"):
        top_activating(m, x[..., 0], layer="conv2", channels=0, k=2)


def test_top_activating_auto_batch_size_equals_explicit_and_one_chunk(
    cnn_models, digits_x, monkeypatch
):
    import visjax.base.batching as batching

    m = cnn_models["function"]
    x = digits_x[:90]
    # A small budget: "auto" runs the 90 examples in several chunks.
    row = batching.tree_bytes_per_row(lambda xc: m.activations(xc, "conv2")[1]["conv2"], x)
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 20 * row)
    monkeypatch.setattr(batching, "CPU_FORWARD_CHUNK_BYTES", 20 * row)
    monkeypatch.setattr(batching, "ACCELERATOR_CHUNK_BYTES", 20 * row)
    assert batching.auto_rows(90, row) == 18
    auto = top_activating(m, x, layer="conv2", channels=[0, 7], k=6)
    for other in (None, 25):
        got = top_activating(m, x, layer="conv2", channels=[0, 7], k=6, batch_size=other)
        np.testing.assert_array_equal(got.indices, auto.indices)
        np.testing.assert_allclose(got.values, auto.values, rtol=1e-5, atol=1e-7)
