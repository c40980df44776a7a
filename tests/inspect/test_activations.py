"""Activation statistics over a dataset: NumPy agreement, dead and saturated units, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import as_model, tag
from visjax.inspect import activation_stats, dead_units, saturated_units


def _planted_model(dead=(1, 4, 6)):
    """A dense ReLU layer of 8 units; the units in ``dead`` get a bias of -100 (never active)."""
    rng = np.random.default_rng(0)
    bias = np.zeros(8, np.float32)
    bias[list(dead)] = -100.0
    params = {
        "fc": {
            "kernel": jnp.asarray(rng.normal(size=(4, 8)), jnp.float32),
            "bias": jnp.asarray(bias),
        }
    }

    def apply(p, x):
        h = tag(x @ p["fc"]["kernel"] + p["fc"]["bias"], "fc")
        return tag(jax.nn.relu(h).sum(-1, keepdims=True), "out")

    return as_model(apply, params, input_shape=(4,)), params


def test_dead_unit_counts_equal_a_numpy_loop():
    m, p = _planted_model()
    x = np.random.default_rng(1).uniform(-1, 1, (300, 4)).astype(np.float32)
    got = dead_units(activation_stats(m, x, layers="fc", batch_size=64))["fc"]
    h = x @ np.asarray(p["fc"]["kernel"]) + np.asarray(p["fc"]["bias"])
    want = [u for u in range(8) if not any(h[i, u] > 0 for i in range(len(x)))]
    assert got.tolist() == want == [1, 4, 6]


def test_stats_equal_numpy_on_the_full_activations(cnn_models):
    m = cnn_models["function"]
    x = jax.random.uniform(jax.random.key(3), (37, 8, 8, 1))
    layers = ("conv1", "conv2", "fc")
    stats = activation_stats(m, x, layers=layers, batch_size=10, heatmap="median", histogram="unit")
    pooled = activation_stats(m, x, layers=layers, batch_size=10, histogram="layer")
    acts = m.activations(x, layers)[1]
    for n in layers:
        a = np.asarray(acts[n], np.float64)
        v = a.reshape(-1, a.shape[-1])
        s = stats[n]
        assert s.count == v.shape[0] and s.units == v.shape[1] and s.shape == a.shape[1:]
        np.testing.assert_allclose(s.mean, v.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s.std, v.std(0), rtol=1e-5)
        np.testing.assert_allclose(s.max, v.max(0), rtol=1e-6)
        np.testing.assert_allclose(s.min, v.min(0), rtol=1e-6)
        np.testing.assert_array_equal(s.active, (v > 0).mean(0))
        want = np.stack([np.histogram(v[:, u], s.edges)[0] for u in range(v.shape[1])])
        np.testing.assert_array_equal(s.counts, want)
        assert s.counts.sum() == v.size
        # histogram="layer": one histogram of the layer's values over the same edges.
        np.testing.assert_array_equal(pooled[n].edges, s.edges)
        np.testing.assert_array_equal(pooled[n].counts, np.histogram(v.ravel(), s.edges)[0])
        np.testing.assert_array_equal(pooled[n].counts, s.counts.sum(0))
        np.testing.assert_allclose(s.heatmap, np.median(a, 0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("heatmap", ["mean", "max"])
def test_batch_sizes_agree_and_fixed_edges(cnn_models, heatmap):
    m = cnn_models["function"]
    x = jax.random.normal(jax.random.key(4), (23, 8, 8, 1))
    edges = {"conv2": np.linspace(-2, 2, 9), "fc": np.array([-3.0, -1.0, 0.0, 0.5, 3.0])}
    runs = [
        activation_stats(
            m,
            x,
            layers=["conv2", "fc"],
            batch_size=b,
            edges=edges,
            heatmap=heatmap,
            histogram="unit",
        )
        for b in ("auto", None, 1, 5, 23)
    ]
    pooled = activation_stats(
        m, x, layers=["conv2", "fc"], batch_size=5, edges=edges, histogram="layer"
    )
    for r in runs[1:]:
        for n in ("conv2", "fc"):
            np.testing.assert_allclose(r[n].mean, runs[0][n].mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(r[n].std, runs[0][n].std, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(r[n].counts, runs[0][n].counts)
            np.testing.assert_allclose(r[n].heatmap, runs[0][n].heatmap, rtol=1e-5, atol=1e-6)
    a = np.asarray(m.activations(x, "fc")[1]["fc"], np.float64)
    want = np.stack([np.histogram(a[:, u], edges["fc"])[0] for u in range(10)])
    np.testing.assert_array_equal(runs[0]["fc"].counts, want)  # uneven edges, values outside
    for n in ("conv2", "fc"):
        np.testing.assert_array_equal(pooled[n].counts, runs[0][n].counts.sum(0))
    agg = a.mean(0) if heatmap == "mean" else a.max(0)
    np.testing.assert_allclose(runs[0]["fc"].heatmap, agg, rtol=1e-5, atol=1e-6)


def test_saturated_tanh_and_sigmoid_units_are_found():
    w = jnp.array([[0.1, 50.0, -50.0, 0.2]])

    def apply(p, x):
        t = tag(jnp.tanh(x @ p), "tanh")
        return tag(jax.nn.sigmoid(t * p[0] * 100.0), "sig")

    m = as_model(apply, w, input_shape=(1,))
    x = jnp.linspace(0.5, 1.0, 20)[:, None]
    s = activation_stats(m, x, layers=["tanh", "sig"])
    assert s["tanh"].bound == (-1.0, 1.0) and s["sig"].bound == (0.0, 1.0)
    got = saturated_units(m, x, layers=["tanh", "sig"])
    assert got["tanh"].tolist() == [1, 2]
    assert got["sig"].tolist() == [1, 2]  # sigmoid(±5000): at its bounds
    relu = saturated_units(
        _planted_model(dead=())[0], np.ones((3, 4), np.float32) * 0.0 + 1.0, layers="fc"
    )["fc"]
    assert set(relu.tolist()) <= set(range(8))


def test_bad_input(cnn_models, batch):
    m = cnn_models["function"]
    with pytest.raises(ValueError, match=r"known layers.*conv1"):
        activation_stats(m, batch, layers="conv9")
    with pytest.raises(ValueError, match="`x` must be a batch of shape"):
        activation_stats(m, batch[0], layers="conv1")
    with pytest.raises(ValueError, match="NaN"):
        activation_stats(m, batch.at[0, 0, 0, 0].set(jnp.nan), layers="conv1")
    with pytest.raises(ValueError, match="`edges`"):
        activation_stats(m, batch, layers="conv1", edges=[1.0, 0.0], histogram="unit")
    with pytest.raises(ValueError, match="`edges` names"):
        activation_stats(m, batch, layers="conv1", edges={"fc": 4}, histogram="unit")
    with pytest.raises(ValueError, match="`heatmap`"):
        activation_stats(m, batch, layers="conv1", heatmap="mode")
    with pytest.raises(ValueError, match="`batch_size`"):
        activation_stats(m, batch, layers="conv1", batch_size=0)
    with pytest.raises(ValueError, match="`layers`"):
        activation_stats(m, batch, layers=[])
    with pytest.raises(ValueError, match="`fraction`"):
        saturated_units(m, batch, layers="conv1", fraction=0.0)
    with pytest.raises(TypeError, match="`stats`"):
        dead_units({"conv1": 1})


@pytest.mark.parametrize("reduce", ["mean", "median", "max"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_activation_maps_equal_numpy(cnn_models, reduce, batch_size):
    from visjax.inspect import activation_maps

    m = cnn_models["nnx"]
    x = jax.random.uniform(jax.random.key(2), (30, 8, 8, 1))
    layers = ["conv1", "fc"]
    maps = activation_maps(m, x, layers=layers, reduce=reduce, batch_size=batch_size)
    acts = m.activations(x, layers)[1]
    for n in layers:
        a = np.asarray(acts[n], np.float64)
        want = {"mean": a.mean(0), "median": np.median(a, 0), "max": a.max(0)}[reduce]
        assert maps[n].shape == a.shape[1:]
        np.testing.assert_allclose(maps[n], want, rtol=1e-5, atol=1e-6)
    # The same as activation_stats' heatmap.
    s = activation_stats(m, x, layers=layers, heatmap=reduce, batch_size=batch_size)
    for n in layers:
        np.testing.assert_allclose(maps[n], s[n].heatmap, rtol=1e-5, atol=1e-6)


def test_activation_maps_bad_input(cnn_models):
    from visjax.inspect import activation_maps

    m, x = cnn_models["function"], jnp.ones((3, 8, 8, 1))
    with pytest.raises(ValueError, match="reduce"):
        activation_maps(m, x, layers="conv1", reduce="sum")
    with pytest.raises(ValueError, match="known layers"):
        activation_maps(m, x, layers="nope")
    with pytest.raises(ValueError, match="x"):
        activation_maps(m, jnp.ones((3, 7, 8, 1)), layers="conv1")


def test_activation_heatmaps_plot():
    import matplotlib

    matplotlib.use("Agg")
    from visjax.plot import activation_heatmaps

    maps = {"conv": np.arange(48.0).reshape(4, 4, 3), "img": np.ones((2, 3)), "fc": np.ones(5)}
    fig = activation_heatmaps(maps)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["conv (mean of 3 channels)", "img", "fc"]
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(image, maps["conv"].mean(-1))
    fig = activation_heatmaps(maps, channel=-1)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), maps["conv"][..., -1])
    with pytest.raises(ValueError, match="channel"):
        activation_heatmaps(maps, channel=3)
    with pytest.raises(ValueError, match="NaN"):
        activation_heatmaps({"a": np.array([np.nan])})
    with pytest.raises(ValueError, match="maps"):
        activation_heatmaps({})


def test_no_retrace_for_new_data_and_weights(cnn_models):
    from visjax.inspect import activation_maps
    from visjax.inspect import activations as A

    m = cnn_models["nnx"]
    x = jax.random.uniform(jax.random.key(5), (20, 8, 8, 1))
    activation_maps(m, x, layers="conv2", batch_size=8)
    activation_stats(m, x, layers="conv2", batch_size=8)
    sizes = A._maps_program._cache_size(), A._stats_program._cache_size()
    m2 = m.replace(params=jax.tree.map(lambda a: a * 0.9, m.params))
    activation_maps(m2, x + 0.5, layers="conv2", batch_size=8)
    activation_stats(m2, x + 0.5, layers="conv2", batch_size=8)
    assert (A._maps_program._cache_size(), A._stats_program._cache_size()) == sizes


def test_histogram_off(cnn_models):
    m = cnn_models["linen"]
    x = jax.random.uniform(jax.random.key(6), (13, 8, 8, 1))
    on = activation_stats(m, x, layers=["conv1", "fc"], batch_size=5, histogram="layer")
    unit = activation_stats(m, x, layers=["conv1", "fc"], batch_size=5, histogram="unit")
    off = activation_stats(m, x, layers=["conv1", "fc"], batch_size=5)  # the default
    for n in on:
        assert on[n].counts.shape == (32,) and unit[n].counts.shape == (on[n].units, 32)
        assert off[n].counts.shape == (on[n].units, 0) and off[n].edges.size == 0
        for field in ("mean", "std", "active", "max", "min", "heatmap"):
            np.testing.assert_array_equal(getattr(off[n], field), getattr(on[n], field))
            np.testing.assert_array_equal(getattr(unit[n], field), getattr(on[n], field))
    for bad in (True, 1, "units", None):
        with pytest.raises(ValueError, match="histogram"):
            activation_stats(m, x, layers="fc", histogram=bad)
    with pytest.raises(ValueError, match=r"`edges` needs a histogram"):
        activation_stats(m, x, layers="fc", edges=8)
