import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

from visjax.plot.cam import _upsample, cam_grid, cam_overlay


def test_upsample_matches_jax_image_resize():
    c = np.random.default_rng(0).random((3, 5))
    want = jax.image.resize(jnp.asarray(c), (8, 12), "bilinear")
    np.testing.assert_allclose(_upsample(c, (8, 12)), want, atol=1e-6)


def test_overlay_upsamples_and_min_max_scales(tmp_path):
    cam = np.array([[1.0, 3.0], [5.0, 9.0]])
    fig = cam_overlay(np.ones((6, 6, 3)), cam, title="grad-cam")
    assert len(fig.axes) == 2  # the image and its colour bar
    ax = fig.axes[0]
    base, heat = ax.get_images()
    assert base.get_array().shape == (6, 6, 3)
    shown = heat.get_array()
    assert shown.shape == (6, 6)
    assert shown.min() == 0.0 and shown.max() == 1.0 and heat.get_clim() == (0.0, 1.0)
    assert heat.get_cmap().name == "jet"
    assert ax.get_title() == "grad-cam"
    fig.savefig(tmp_path / "cam.png")
    assert (tmp_path / "cam.png").stat().st_size > 0


def test_input_sized_map_is_drawn_as_is_and_nan_is_masked():
    cam = np.arange(16.0).reshape(4, 4)
    cam[0, 0] = np.nan
    heat = cam_overlay(np.zeros((4, 4)), cam[..., None]).axes[0].get_images()[1]
    shown = heat.get_array()
    assert shown.mask[0, 0] and not shown.mask[1, 1]
    np.testing.assert_allclose(shown[1:, 1:], (cam[1:, 1:] - 1) / 14)


def test_constant_map_draws_zeros_on_given_axes():
    fig = Figure()
    ax = fig.subplots()
    assert cam_overlay(np.zeros((4, 4, 1)), np.full((2, 2), 3.0), ax=ax) is fig
    assert len(fig.axes) == 1
    assert np.all(ax.get_images()[1].get_array() == 0)


def test_grid_layout_and_bad_input():
    rng = np.random.default_rng(0)
    x = rng.random((2, 8, 8, 1))
    cams = {"gradcam": rng.random((2, 2, 2)), "scorecam": rng.random((2, 4, 4))}
    fig = cam_grid(x, cams, row_labels=["r0", "r1"])
    assert len(fig.axes) == 8  # 2 x 3 cells, then one colour bar under each method's column
    assert [a.get_title() for a in fig.axes[:3]] == ["input", "gradcam", "scorecam"]
    assert fig.axes[3].get_ylabel() == "r1"
    assert [len(a.get_images()) for a in fig.axes[:3]] == [1, 2, 2]
    with pytest.raises(ValueError, match=r"`cams\['b'\]` has 1 rows, expected 2"):
        cam_grid(x, {"b": cams["gradcam"][:1]})
    with pytest.raises(ValueError, match=r"`cams\['b'\]` must be \(N, H', W'\)"):
        cam_grid(x, {"b": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="`row_labels` must have 2"):
        cam_grid(x, cams, row_labels=["r0"])
    with pytest.raises(ValueError, match="`cam` must be a 2-D map"):
        cam_overlay(x[0], np.zeros(4))
    with pytest.raises(ValueError, match="`cam` of shape"):
        cam_overlay(x[0], np.zeros((9, 9)))
    with pytest.raises(ValueError, match="`image` must have 1 or 3 channels"):
        cam_overlay(np.zeros((4, 4, 2)), np.zeros((2, 2)))


def test_grid_maps_in_their_units_on_shared_or_column_scales():
    rng = np.random.default_rng(2)
    x = rng.random((2, 8, 8, 1))
    cams = {"gradcam": 5.0 * rng.random((2, 2, 2)), "scorecam": 0.1 * rng.random((2, 4, 4))}

    def clims(fig):
        return [[fig.axes[3 * i + j].get_images()[1].get_clim() for j in (1, 2)] for i in (0, 1)]

    bars = lambda fig: [ax for ax in fig.axes if hasattr(ax, "_colorbar")]  # noqa: E731
    fig = cam_grid(x, cams)
    (g0, s0), (g1, s1) = clims(fig)
    assert g0 == g1 == (cams["gradcam"].min(), cams["gradcam"].max())
    assert s0 == s1 == (cams["scorecam"].min(), cams["scorecam"].max())
    assert len(bars(fig)) == 2
    # the map is drawn in its units, not min-max scaled
    assert fig.axes[1].get_images()[1].get_array().max() == pytest.approx(cams["gradcam"][0].max())
    fig = cam_grid(x, cams, scale="shared")
    every = {c for row in clims(fig) for c in row}
    assert every == {(min(c.min() for c in cams.values()), cams["gradcam"].max())}
    (bar,) = bars(fig)
    assert "one scale for every map" in bar.get_ylabel()
    assert len(bars(cam_grid(x, cams, scale="each"))) == 4
