import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from visjax.plot import conservation_curve, relevance_heatmaps


def _render(fig):
    fig.savefig(io.BytesIO(), format="png", dpi=30)


def test_heatmaps_grid_symmetric_scales():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 8, 8, 1))
    r = {"a": rng.normal(size=(3, 8, 8, 1)), "b": np.full((3, 8, 8), np.nan)}
    r["b"][:, 0, 0] = 2.0
    fig = relevance_heatmaps(x, r, titles=["one", "two", "three"])
    _render(fig)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * 3
    assert [ax.get_title() for ax in fig.axes[:3]] == ["input", "a", "b"]
    assert fig.axes[3].get_ylabel() == "two"
    for ax in fig.axes[1:3]:
        lo, hi = ax.images[0].get_clim()
        assert lo == -hi and hi > 0
    assert fig.axes[2].images[0].get_clim() == (-2.0, 2.0)


def test_heatmaps_bad_input():
    x = np.zeros((2, 8, 8, 1))
    with pytest.raises(ValueError, match="relevances"):
        relevance_heatmaps(x, {})
    with pytest.raises(ValueError, match=r"relevances\['a'\]"):
        relevance_heatmaps(x, {"a": np.zeros((2, 4, 4))})
    with pytest.raises(ValueError, match="titles"):
        relevance_heatmaps(x, {"a": x}, titles=["one"])


def test_conservation_curve_lines_and_band():
    layers = ["input", "conv1", "fc"]
    fig = conservation_curve(
        {"eps": [0.8, 0.9, 1.0], "ab": np.array([[0.5, 0.7], [0.9, 1.1], [1.0, 1.0]])},
        layers=layers,
        title="t",
    )
    _render(fig)
    ax = fig.axes[0]
    assert ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_xticklabels()] == layers
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.6, 1.0, 1.0])
    assert len(ax.collections) == 1  # the band of the (L, N) sums
    assert ax.lines[-1].get_ydata()[0] == 1.0  # the output relevance
    with pytest.raises(ValueError, match=r"sums\['x'\]"):
        conservation_curve({"x": [1.0]}, layers=layers)
    with pytest.raises(ValueError, match="sums"):
        conservation_curve({}, layers=layers)
