"""Weight histograms and the change between two checkpoints, against NumPy."""

import jax
import numpy as np
import pytest

from visjax.inspect import weight_change, weight_histograms
from visjax.zoo import digits_cnn, init_digits_cnn_params


def test_weight_histograms_equal_numpy(cnn_models, cnn_params):
    for model in (cnn_models["function"], cnn_models["nnx"], cnn_params):
        h = weight_histograms(model, bins=16)
        assert set(h) == {
            f"{layer}.{leaf}" for layer in ("conv1", "conv2", "fc") for leaf in ("kernel", "bias")
        }
    w = np.asarray(cnn_params["conv2"]["kernel"], np.float64)
    e = h["conv2.kernel"]
    counts, edges = np.histogram(w, 16)
    np.testing.assert_allclose(e.edges, edges)
    np.testing.assert_array_equal(e.counts, counts)
    assert e.shape == w.shape and np.isclose(e.norm, np.linalg.norm(w))
    assert np.isclose(e.mean, w.mean()) and np.isclose(e.std, w.std())
    assert (e.min, e.max) == (w.min(), w.max())
    assert h["conv1.bias"].counts.sum() == 16


def test_weight_change_equals_numpy(cnn_params):
    after = init_digits_cnn_params(jax.random.key(1))
    ch = weight_change(digits_cnn("function", cnn_params), after, bins=8)
    for path, c in ch.items():
        layer, leaf = path.split(".")
        a = np.asarray(cnn_params[layer][leaf], np.float64)
        b = np.asarray(after[layer][leaf], np.float64)
        na = np.linalg.norm(a)
        want = np.linalg.norm(b - a) / na if na > 0 else (0.0 if np.array_equal(a, b) else np.inf)
        assert np.isclose(c.relative_change, want) and np.isclose(c.norm_b, np.linalg.norm(b))
        edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), 9)
        if edges[0] < edges[-1]:
            np.testing.assert_allclose(c.edges, edges)
            np.testing.assert_array_equal(c.counts_a, np.histogram(a, edges)[0])
            np.testing.assert_array_equal(c.counts_b, np.histogram(b, edges)[0])
    assert weight_change(cnn_params, cnn_params)["fc.kernel"].relative_change == 0.0


def test_weight_bad_input(cnn_params):
    with pytest.raises(ValueError, match="`bins`"):
        weight_histograms(cnn_params, bins=0)
    with pytest.raises(ValueError, match="params_b"):
        weight_change(cnn_params, {"conv1": cnn_params["conv1"]})
    bad = jax.tree.map(lambda a: a * np.nan, cnn_params)
    with pytest.raises(ValueError, match="NaN"):
        weight_histograms(bad)
    with pytest.raises(TypeError, match="params_or_model"):
        weight_histograms("weights")
