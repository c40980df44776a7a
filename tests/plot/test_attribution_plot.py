import numpy as np
import pytest

from visjax.plot import attribution_grid, overlay


def test_overlay_signed_is_symmetric_and_nan_is_masked():
    a = np.array([[-2.0, 1.0], [np.nan, 0.5]])
    fig = overlay(np.ones((2, 2, 1)), a[..., None], percentile=100)
    heat = fig.axes[0].get_images()[1]
    assert heat.get_cmap().name == "bwr"
    assert heat.get_clim() == (-2.0, 2.0)
    assert heat.get_array().mask[1, 0]


def test_overlay_unsigned_starts_at_zero():
    fig = overlay(np.zeros((3, 3)), np.arange(9.0).reshape(3, 3), percentile=100)
    heat = fig.axes[0].get_images()[1]
    assert heat.get_cmap().name == "inferno" and heat.get_clim() == (0.0, 8.0)


def test_grid_layout_and_bad_input():
    x = np.random.default_rng(0).random((2, 4, 4, 1))
    fig = attribution_grid(x, {"a": x, "b": -x}, row_labels=["r0", "r1"])
    assert len(fig.axes) == 8  # 2 x 3 cells, then one colour bar under each method's column
    assert fig.axes[1].get_title() == "a"
    with pytest.raises(ValueError, match=r"`attributions\['b'\]` has 1 rows"):
        attribution_grid(x, {"a": x, "b": x[:1]})
    with pytest.raises(ValueError, match="`attribution` must be"):
        overlay(x[0], np.zeros(4))


def test_overlay_refuses_a_map_of_another_size():
    with pytest.raises(ValueError, match=r"`attribution`.*\(7, 7\).*upsample"):
        overlay(np.zeros((8, 8)), np.zeros((7, 7)))
    with pytest.raises(ValueError, match=r"`attributions\['a'\]`"):
        attribution_grid(np.zeros((1, 8, 8, 1)), {"a": np.zeros((1, 4, 4, 1))})


def _heat_clims(fig, n, cols):
    """The colour limits of the map cells, ``{(row, column): (vmin, vmax)}``."""
    return {(i, j): fig.axes[i * cols + j].get_images()[1].get_clim() for i in range(n)
            for j in range(1, cols)}  # fmt: skip


def _colour_bars(fig):
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_grid_scales_shared_column_each_with_colour_bars():
    rng = np.random.default_rng(1)
    x = rng.random((2, 4, 4, 1))
    maps = {"small": 1e-3 * rng.random((2, 4, 4, 1)), "large": rng.normal(size=(2, 4, 4, 1))}
    # default "column": one scale per method, a colour bar under each column
    fig = attribution_grid(x, maps, percentile=100)
    clim = _heat_clims(fig, 2, 3)
    assert clim[0, 1] == clim[1, 1] and clim[0, 2] == clim[1, 2] and clim[0, 1] != clim[0, 2]
    assert clim[0, 1] == (0.0, pytest.approx(maps["small"].max()))  # unsigned: from 0
    assert clim[0, 2][1] == pytest.approx(np.abs(maps["large"]).max())
    assert len(_colour_bars(fig)) == 2
    # "shared": one scale for every map (signed: the large map has negatives), one bar saying so
    fig = attribution_grid(x, maps, percentile=100, scale="shared")
    assert set(_heat_clims(fig, 2, 3).values()) == {clim[0, 2]}
    (bar,) = _colour_bars(fig)
    assert "one scale for every map" in bar.get_ylabel()
    # "each": every map its own scale and bar
    fig = attribution_grid(x, maps, percentile=100, scale="each")
    assert len(set(_heat_clims(fig, 2, 3).values())) == 4 and len(_colour_bars(fig)) == 4
    with pytest.raises(ValueError, match="`scale` must be one of"):
        attribution_grid(x, maps, scale="global")
