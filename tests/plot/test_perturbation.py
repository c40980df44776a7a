import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from visjax.plot.perturbation import feature_values, feature_values_grid

# Four 2x2 quadrants of a 4x4 image.
MASK = np.repeat(np.repeat(np.array([[0, 1], [2, 3]]), 2, 0), 2, 1)


def _lines(ax):
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    return lines.get_segments()


def test_per_feature_values_symmetric_scale_outlines_and_text(tmp_path):
    v = np.array([-1.0, 0.5, 2.0, 0.0])
    fig = feature_values(np.ones((4, 4, 3)), MASK[..., None], v)
    assert len(fig.axes) == 2  # the image and its colour bar
    ax = fig.axes[0]
    base, heat = ax.get_images()
    assert base.get_array().shape == (4, 4, 3)
    assert heat.get_clim() == (-2.0, 2.0) and heat.get_cmap().name == "RdBu_r"
    np.testing.assert_array_equal(heat.get_array(), v[MASK])
    # Boundaries on the pixel edges between quadrants: 4 vertical + 4 horizontal unit segments.
    segs = np.asarray(_lines(ax))
    assert segs.shape == (8, 2, 2)
    assert set(np.unique(segs[:, :, 0][segs[:, 0, 0] == segs[:, 1, 0]])) == {1.5}
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["-1", "0.5", "2", "0"])
    centres = {t.get_text(): t.get_position() for t in ax.texts}
    assert centres["2"] == (0.5, 2.5)
    fig.savefig(tmp_path / "features.png")
    assert (tmp_path / "features.png").stat().st_size > 0


def test_values_from_a_map_are_feature_means_and_nan_is_masked():
    amap = np.arange(16.0).reshape(4, 4, 1) * np.ones((1, 1, 3))  # channels summed
    fig = Figure()
    ax = fig.subplots()
    assert feature_values(np.zeros((4, 4)), MASK, amap, ax=ax, annotate=False) is fig
    assert len(fig.axes) == 1 and not ax.texts
    want = np.array([3 * np.mean(amap[..., 0][MASK == k]) for k in range(4)])
    np.testing.assert_allclose(ax.get_images()[1].get_array(), want[MASK])
    v = np.array([np.nan, 1.0, 1.0, 1.0])
    heat = feature_values(np.zeros((4, 4)), MASK, v).axes[0].get_images()[1]
    assert heat.get_array().mask[0, 0] and not heat.get_array().mask[3, 3]


def test_many_features_are_not_annotated():
    mask = np.arange(100).reshape(10, 10)
    fig = feature_values(np.zeros((10, 10)), mask, np.linspace(-1, 1, 100))
    assert not fig.axes[0].texts


def test_bad_input():
    with pytest.raises(ValueError, match=r"`mask` must be \(H, W\) or \(H, W, 1\) matching"):
        feature_values(np.zeros((5, 5)), MASK, np.zeros(4))
    with pytest.raises(ValueError, match="`values` has 3 entries, expected K=4"):
        feature_values(np.zeros((4, 4)), MASK, np.zeros(3))
    with pytest.raises(ValueError, match="`values` must be"):
        feature_values(np.zeros((4, 4)), MASK, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="integer feature labels"):
        feature_values(np.zeros((4, 4)), MASK.astype(float), np.zeros(4))
    with pytest.raises(ValueError, match="labels must be >= 0"):
        feature_values(np.zeros((4, 4)), MASK - 1, np.zeros(4))


def test_grid_layout_and_bad_input():
    x = np.random.default_rng(0).random((2, 4, 4, 1))
    vals = {"occlusion": np.ones((2, 4)), "lime": x}
    fig = feature_values_grid(x, MASK, vals, row_labels=["r0", "r1"])
    assert len(fig.axes) == 8  # 2 x 3 cells, then one colour bar under each method's column
    assert [a.get_title() for a in fig.axes[:3]] == ["input", "occlusion", "lime"]
    assert fig.axes[3].get_ylabel() == "r1"
    # Per-example masks; K is taken over all of them.
    masks = np.stack([MASK, np.zeros_like(MASK)])[..., None]
    fig = feature_values_grid(x, masks, {"occlusion": np.ones((2, 4))})
    assert len(_lines(fig.axes[3])) == 0
    with pytest.raises(ValueError, match=r"`values_by_method\['b'\]` has 1 rows, expected 2"):
        feature_values_grid(x, MASK, {"b": np.ones((1, 4))})
    with pytest.raises(ValueError, match=r"`values_by_method\['b'\]` has 3 entries"):
        feature_values_grid(x, MASK, {"b": np.ones((2, 3))})
    with pytest.raises(ValueError, match="`masks` must be"):
        feature_values_grid(x, np.zeros((3, 4, 4), int), vals)


def test_grid_shared_scale_spans_all_methods_and_says_so():
    x = np.random.default_rng(3).random((2, 4, 4, 1))
    vals = {"occlusion": np.array([[1.0, -2.0, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]]),
            "shapley": 10.0 * np.ones((2, 4))}  # fmt: skip

    def clims(fig):
        return [fig.axes[3 * i + j].get_images()[1].get_clim() for i in (0, 1) for j in (1, 2)]

    bars = lambda fig: [ax for ax in fig.axes if hasattr(ax, "_colorbar")]  # noqa: E731
    fig = feature_values_grid(x, MASK, vals)
    assert clims(fig) == [(-2.0, 2.0), (-10.0, 10.0)] * 2 and len(bars(fig)) == 2
    fig = feature_values_grid(x, MASK, vals, scale="shared")
    assert set(clims(fig)) == {(-10.0, 10.0)}
    (bar,) = bars(fig)
    assert "feature value (one scale for every map)" == bar.get_ylabel()
    fig = feature_values_grid(x, MASK, vals, scale="each")
    assert clims(fig) == [(-2.0, 2.0), (-10.0, 10.0), (-0.4, 0.4), (-10.0, 10.0)]
    assert len(bars(fig)) == 4
