import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from visjax.plot.landscape import loss_contour, loss_curve, loss_surface_3d

XS = np.linspace(-1.0, 1.0, 9)
YS = np.linspace(0.0, 3.0, 7)  # another range and length than XS, to catch transposes


def _render(fig):
    """Draw the figure: some warnings only come at draw time (filterwarnings=error catches them)."""
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def _contours(ax, filled=None):
    sets = [c for c in ax.collections if isinstance(c, ContourSet)]
    return [c for c in sets if filled is None or c.filled == filled]


# loss_curve


def test_curve_single_array_with_gaps_and_marks():
    alphas = np.linspace(-0.5, 1.5, 5)
    values = np.array([2.0, np.nan, 0.5, np.inf, 1.0])
    fig = loss_curve(alphas, values, marks={"init": 0.0, "trained": 1.0}, title="t")
    _render(fig)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and ax.get_title() == "t" and ax.get_xlabel() == "alpha"
    curve = ax.get_lines()[0]
    np.testing.assert_array_equal(curve.get_xdata(), alphas)
    np.testing.assert_array_equal(curve.get_ydata(), [2.0, np.nan, 0.5, np.nan, 1.0])  # gaps
    vlines = ax.get_lines()[1:]
    assert [ln.get_xdata()[0] for ln in vlines] == [0.0, 1.0]
    assert [t.get_text().strip() for t in ax.texts] == ["init", "trained"]
    assert ax.get_legend() is None  # one curve: no legend


def test_curve_mapping_puts_accuracy_on_a_second_axis():
    alphas = np.linspace(0.0, 1.0, 4)
    fig = loss_curve(
        alphas,
        {"cross_entropy": [2.0, 1.0, 0.5, 0.4], "accuracy": [0.1, 0.5, 0.9, 0.95]},
        labels={"cross_entropy": "CE"},
    )
    _render(fig)
    left, right = fig.axes
    np.testing.assert_array_equal(left.get_lines()[0].get_ydata(), [2.0, 1.0, 0.5, 0.4])
    np.testing.assert_array_equal(right.get_lines()[0].get_ydata(), [0.1, 0.5, 0.9, 0.95])
    assert left.get_ylabel() == "CE" and right.get_ylabel() == "accuracy"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["CE", "accuracy"]
    colours = {left.get_lines()[0].get_color(), right.get_lines()[0].get_color()}
    assert len(colours) == 2


def test_curve_only_losses_share_one_axis_and_log_masks_non_positive():
    fig = loss_curve([0, 1, 2], {"train": [1.0, 0.0, 10.0], "test": [2.0, -1.0, 20.0]}, log=True)
    _render(fig)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [1.0, np.nan, 10.0])
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [2.0, np.nan, 20.0])


def test_curve_draws_on_a_given_axes_and_checks_shapes():
    fig = Figure()
    ax = fig.subplots()
    assert loss_curve([0.0, 1.0], [np.nan, np.nan], ax=ax) is fig  # all-NaN: empty, no warning
    _render(fig)
    with pytest.raises(ValueError, match=r"`values\['b'\]` must have shape \(3,\)"):
        loss_curve([0, 1, 2], {"a": [1, 2, 3], "b": [1, 2]})
    with pytest.raises(ValueError, match="`alphas` must be 1-D"):
        loss_curve(np.zeros((2, 2)), np.zeros(2))


# loss_contour


def test_contour_orientation_levels_and_labels():
    # surface[i, j] = xs[i]: depends on x only, so every contour line is vertical at x = level.
    surface = np.repeat(XS[:, None], len(YS), axis=1)
    fig = loss_contour(XS, YS, surface, levels=4, title="plane")
    _render(fig)
    ax = fig.axes[0]
    (cs,) = _contours(ax, filled=False)
    np.testing.assert_allclose(cs.levels, [-0.5, 0.0, 0.5])  # 4 intervals, inner boundaries
    for level, path in zip(cs.levels, cs.get_paths(), strict=True):
        assert len(path.vertices)
        np.testing.assert_allclose(path.vertices[:, 0], level, atol=1e-12)
        assert path.vertices[:, 1].min() == pytest.approx(0.0)
        assert path.vertices[:, 1].max() == pytest.approx(3.0)
    assert len(cs.labelTexts) >= 3
    assert ax.get_xlim() == (-1.0, 1.0) and ax.get_ylim() == (0.0, 3.0)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("alpha", "beta", "plane")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "loss"  # the lines' colour bar
    assert not isinstance(cs.norm, LogNorm)  # values <= 0: evenly spaced levels


def _bowl():
    x, y = np.meshgrid(np.linspace(-1, 1, 21), np.linspace(-1, 1, 21), indexing="ij")
    return np.linspace(-1, 1, 21), 0.1 + 5.0 * (x**2 + y**2) ** 2


def test_contour_log_levels_by_default_for_a_positive_loss_reach_the_basin_floor():
    xs, z = _bowl()
    fig = loss_contour(xs, xs, z, colorbar=False)
    (cs,) = _contours(fig.axes[0], filled=False)
    assert isinstance(cs.norm, LogNorm) and len(fig.axes) == 1
    ratios = cs.levels[1:] / cs.levels[:-1]
    np.testing.assert_allclose(ratios, ratios[0])
    # linear levels would start at min + (max - min) / 20 = 1.1: the floor would have no line
    assert cs.levels[0] < 0.15
    fig = loss_contour(xs, xs, z, log=False)
    assert _contours(fig.axes[0], filled=False)[0].levels[0] > 1.0


def test_contour_labels_are_few_spread_and_off_the_marks():
    xs, z = _bowl()
    z = z + 50.0 * (xs[:, None] < -0.6) * (xs[:, None] + 0.6) ** 2  # lines crowd in one corner
    fig = loss_contour(xs, xs, z, levels=30, log=False, marks={"trained": (0.0, 0.0)})
    _render(fig)
    (cs,) = _contours(fig.axes[0], filled=False)
    pos = np.array([t.get_position() for t in cs.labelTexts])
    assert 3 <= len(pos) <= 8
    assert len({t.get_text() for t in cs.labelTexts}) == len(pos)  # one label per line
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + 10 * np.eye(len(pos))
    assert d.min() > 0.15  # spread, not piled up (the plot is 2 wide)
    assert np.linalg.norm(pos, axis=1).min() > 0.05  # off the "trained" mark


def test_contour_asymmetric_surface_is_not_transposed():
    # a single bump at (xs[6], ys[1]) = (0.5, 0.5): the innermost line circles that point.
    x, y = np.meshgrid(XS, YS, indexing="ij")
    surface = np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.1)
    assert surface.argmax() == np.ravel_multi_index((6, 1), surface.shape)
    fig = loss_contour(XS, YS, surface, levels=5, labels=False)
    (cs,) = _contours(fig.axes[0])
    assert not cs.labelTexts
    top = cs.get_paths()[-1].vertices
    assert top[:, 0].min() < 0.5 < top[:, 0].max()
    assert top[:, 1].min() < 0.5 < top[:, 1].max()


def test_contour_filled_has_colour_bar_labelled_lines_and_vmax_extension():
    x, y = np.meshgrid(XS, YS, indexing="ij")
    surface = x**2 + y
    fig = loss_contour(XS, YS, surface, levels=6, filled=True, vmax=2.0)
    _render(fig)
    assert len(fig.axes) == 2  # the plot and its colour bar
    (cf,) = _contours(fig.axes[0], filled=True)
    (lines,) = _contours(fig.axes[0], filled=False)
    np.testing.assert_allclose(cf.levels, np.linspace(0.0, 2.0, 7))
    assert cf.extend == "max"  # values above vmax take the top colour
    assert lines.levels.max() < 2.0 + 1e-12 and lines.labelTexts


def test_contour_log_levels_are_geometric():
    x, y = np.meshgrid(XS, YS, indexing="ij")
    surface = np.exp(x + y)
    surface[0, 0] = 0.0  # masked on a log scale, without a warning
    fig = loss_contour(XS, YS, surface, levels=5, log=True, filled=True)
    _render(fig)
    (cf,) = _contours(fig.axes[0], filled=True)
    ratios = cf.levels[1:] / cf.levels[:-1]
    np.testing.assert_allclose(ratios, ratios[0])
    assert cf.levels[0] == pytest.approx(surface[surface > 0].min())
    assert isinstance(cf.norm, LogNorm)


def test_contour_masks_nan_and_inf():
    surface = np.repeat(XS[:, None], len(YS), axis=1)
    surface[XS > 0.25] = np.nan
    surface[0, 0] = np.inf
    fig = loss_contour(XS, YS, surface, levels=8, filled=True)
    _render(fig)
    for cs in _contours(fig.axes[0]):
        assert np.isfinite(cs.levels).all()
        for path in cs.get_paths():
            if len(path.vertices):
                assert path.vertices[:, 0].max() <= 0.25 + 1e-12  # nothing in the NaN region


def test_contour_constant_and_all_nan_surfaces_do_not_warn():
    for filled in (False, True):
        fig = loss_contour(XS, YS, np.full((9, 7), 3.0), filled=filled)
        _render(fig)
        assert not _contours(fig.axes[0], filled=False)  # no lines on a flat surface
        fig = loss_contour(XS, YS, np.full((9, 7), np.nan), filled=filled, log=True)
        _render(fig)
        assert not _contours(fig.axes[0])
        assert fig.axes[0].texts[0].get_text() == "no finite values"


def test_contour_marks_and_given_axes():
    fig = Figure()
    ax = fig.subplots()
    surface = np.add.outer(XS, YS)
    marks = {"A": (0.0, 1.0), "B": np.array([0.5, 2.0])}
    out = loss_contour(XS, YS, surface, ax=ax, marks=marks, labels=False)
    assert out is fig
    _render(fig)
    dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in dots] == [(0.0, 1.0), (0.5, 2.0)]
    assert {t.get_text() for t in ax.texts} == {"A", "B"}


def test_contour_checks_shapes_and_levels():
    with pytest.raises(ValueError, match=r"shape \(len\(xs\), len\(ys\)\) = \(9, 7\)"):
        loss_contour(XS, YS, np.zeros((7, 9)))
    with pytest.raises(ValueError, match="increasing"):
        loss_contour(XS, YS, np.zeros((9, 7)), levels=[1.0, 0.5])


# loss_surface_3d


def test_surface_3d_axes_orientation_and_colour_bar():
    x, y = np.meshgrid(XS, YS, indexing="ij")
    surface = 2.0 + x + 10.0 * y  # steep along y only
    fig = loss_surface_3d(XS, YS, surface, title="3d", elev=20.0, azim=30.0)
    _render(fig)
    ax = fig.axes[0]
    assert ax.name == "3d" and len(fig.axes) == 2
    assert (ax.elev, ax.azim) == (20.0, 30.0)
    np.testing.assert_allclose(ax.xy_dataLim.intervalx, [-1.0, 1.0])
    np.testing.assert_allclose(ax.xy_dataLim.intervaly, [0.0, 3.0])
    np.testing.assert_allclose(ax.zz_dataLim.intervalx, [1.0, 33.0])
    (surf,) = ax.collections
    # one patch per grid cell, coloured by the mean of its corners, row-major over (i, j)
    corners = (surface[:-1, :-1] + surface[1:, :-1] + surface[:-1, 1:] + surface[1:, 1:]) / 4
    np.testing.assert_allclose(surf.get_array(), corners.reshape(-1))
    assert ax.get_zlabel() == "loss" and ax.get_title() == "3d"


def test_surface_3d_colour_bar_does_not_cover_the_z_label():
    x, y = np.meshgrid(XS, YS, indexing="ij")
    fig = loss_surface_3d(XS, YS, 2.0 + x + 10.0 * y)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax, cbar = fig.axes
    label = ax.zaxis.label.get_window_extent(renderer)
    assert not label.overlaps(cbar.get_window_extent(renderer))
    assert fig.bbox.contains(label.x1 - 1, label.y0 + 1)  # inside the figure


def test_surface_3d_clips_at_vmax_leaves_nan_out_and_logs():
    x, y = np.meshgrid(XS, YS, indexing="ij")
    surface = 1.0 + x**2 + y**2
    surface[4, 3] = np.nan
    surface[0, 0] = np.inf
    fig = loss_surface_3d(XS, YS, surface, vmax=5.0)
    _render(fig)
    ax = fig.axes[0]
    assert ax.zz_dataLim.intervalx[1] == 5.0 and np.isfinite(ax.zz_dataLim.intervalx).all()
    fig = loss_surface_3d(XS, YS, surface, log=True)
    _render(fig)
    ax = fig.axes[0]
    assert ax.get_zlabel() == "log10 loss"
    np.testing.assert_allclose(ax.zz_dataLim.intervalx, np.log10([1.0, 11.0]))


def test_surface_3d_constant_all_nan_and_given_axes():
    _render(loss_surface_3d(XS, YS, np.full((9, 7), 0.25)))
    _render(loss_surface_3d(XS, YS, np.full((9, 7), np.nan)))
    fig = Figure()
    ax = fig.add_subplot(projection="3d")
    assert loss_surface_3d(XS, YS, np.zeros((9, 7)), ax=ax) is fig
    with pytest.raises(ValueError, match="3-D axes"):
        loss_surface_3d(XS, YS, np.zeros((9, 7)), ax=Figure().subplots())
