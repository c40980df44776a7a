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
    assert len(fig.axes) == 6
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
