import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from visjax.featviz.companions import feature_maps, layer_filters
from visjax.plot.featviz import feature_map_grid, filter_grid, image_grid, objective_curves


def _render(fig):
    fig.savefig(io.BytesIO(), format="png", dpi=30)


def test_image_grid_rgb_grey_and_other_channels():
    rng = np.random.default_rng(0)
    rgb = rng.random((5, 6, 6, 3))
    fig = image_grid(rgb, labels=list("abcde"), ncols=2, title="units")
    _render(fig)
    assert isinstance(fig, Figure) and len(fig.axes) == 5  # the sixth cell is removed
    assert [ax.get_title() for ax in fig.axes] == list("abcde")
    assert fig.axes[0].get_images()[0].get_array().shape == (6, 6, 4)
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array()[..., :3], rgb[0])

    grey = image_grid(rng.random((2, 4, 4, 1)), cmap="magma")
    assert grey.axes[0].get_images()[0].get_cmap().name == "magma"

    many = rng.random((1, 4, 4, 5))  # five channels: drawn as their mean
    img = image_grid(many).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(img, many[0].mean(-1))


def test_image_grid_clips_or_normalizes_and_nan_is_transparent():
    x = np.array([[[-1.0, 0.5], [2.0, np.nan]]])[..., None]
    arr = image_grid(x).axes[0].get_images()[0].get_array()
    assert arr.mask[1, 1] and arr[0, 0] == 0.0 and arr[1, 0] == 1.0
    arr = image_grid(x, normalize=True).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(arr[0], [0.0, 0.5])
    rgb = np.full((1, 2, 2, 3), 0.5)
    rgb[0, 0, 1, 2] = np.inf
    rgba = image_grid(rgb).axes[0].get_images()[0].get_array()
    assert rgba[0, 1, 3] == 0.0 and rgba[0, 0, 3] == 1.0


def test_objective_curves():
    t = np.cumsum(np.ones((3, 8)), 1)
    t[1, 4] = np.nan
    fig = objective_curves(t, labels=["u0", "u1", "u2"], title="ascent")
    _render(fig)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3 and ax.get_legend() is not None
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), np.arange(1, 9))
    assert np.isnan(ax.get_lines()[1].get_ydata()[4])
    assert objective_curves(t[0]).axes[0].get_legend() is None


def test_filter_and_feature_map_grids_of_the_digits_cnn(cnn_models, batch):
    m = cnn_models["nnx"]
    f1 = layer_filters(m, layer="conv1")
    fig = filter_grid(f1)
    _render(fig)
    assert len(fig.axes) == 16 and fig.axes[3].get_title() == "3"
    np.testing.assert_allclose(fig.axes[3].get_images()[0].get_array(), np.asarray(f1)[3, ..., 0])
    f2 = np.asarray(layer_filters(m, layer="conv2"))  # 16 input channels: their mean
    arr = filter_grid(f2).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(arr, f2[0].mean(-1), rtol=1e-6)

    maps = np.asarray(feature_maps(m, batch, layer="conv2"))[0]
    fig = feature_map_grid(maps, ncols=8, scale="each")
    _render(fig)
    assert len(fig.axes) == 33  # 32 channels and the colour bar
    arr = fig.axes[1].get_images()[0].get_array()
    assert np.isclose(arr.min(), 0.0) and np.isclose(arr.max(), 1.0)
    bar = fig.axes[-1]
    assert [t.get_text() for t in bar.get_yticklabels()] == ["min", "max"]
    shared = feature_map_grid(maps)  # the default: one scale for every channel
    assert np.allclose(shared.axes[1].get_images()[0].get_clim(), (maps.min(), maps.max()))
    assert shared.axes[-1].get_ylabel() == "activation (one scale for every channel)"
    np.testing.assert_allclose(shared.axes[-1].get_ylim(), (maps.min(), maps.max()), rtol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="`images` must be"):
        image_grid(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="`labels` must have 2"):
        image_grid(np.zeros((2, 4, 4, 1)), labels=["a"])
    with pytest.raises(ValueError, match="`ncols`"):
        image_grid(np.zeros((2, 4, 4, 1)), ncols=0)
    with pytest.raises(ValueError, match="`traces` must be"):
        objective_curves(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="`filters` must be"):
        filter_grid(np.zeros((3, 3, 1)))
    with pytest.raises(ValueError, match="`maps` must be"):
        feature_map_grid(np.zeros((2, 8, 8, 4)))
    with pytest.raises(ValueError, match="`scale` must be"):
        feature_map_grid(np.zeros((8, 8, 4)), scale="column")


def test_class_grid_titles_stay_clear_of_the_row_above():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    labels = ["horizontal stripes", "vertical stripes", "checkerboard", "circle", "red", "green",
              "blue", "diagonal"]  # fmt: skip
    fig = image_grid(np.random.default_rng(0).random((8, 32, 32, 3)), labels=labels, ncols=4,
                     title="classes")  # fmt: skip
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    top_row = [ax.get_window_extent(renderer) for ax in fig.axes[:4]]
    for ax in fig.axes[4:]:
        title = ax.title.get_window_extent(renderer)
        assert not any(title.overlaps(box) for box in top_row)
        assert title.y0 >= ax.get_window_extent(renderer).y1  # above its own panel
    suptitle = fig._suptitle.get_window_extent(renderer)
    assert not any(suptitle.overlaps(ax.title.get_window_extent(renderer)) for ax in fig.axes)
