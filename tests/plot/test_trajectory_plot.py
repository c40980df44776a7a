import io

import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from visjax.plot.landscape import trajectory_contour

XS = np.linspace(-2.0, 1.0, 9)
YS = np.linspace(-1.0, 1.5, 7)
SURFACE = np.add.outer(XS**2, 2 * YS**2)
PATH = np.array([[-1.5, -0.8], [-1.0, -0.3], [-0.4, 0.2], [np.nan, 0.0], [0.0, 0.0]])


def _render(fig):
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def test_draws_contour_path_markers_and_labels():
    fig = trajectory_contour(XS, YS, SURFACE, PATH, explained_variance_ratio=[0.832, 0.1051])
    _render(fig)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [c for c in ax.collections if isinstance(c, ContourSet)]
    path_line, final = ax.get_lines()
    assert path_line.get_marker() == "o"
    np.testing.assert_array_equal(path_line.get_xdata(), [-1.5, -1.0, -0.4, 0.0])  # NaN row out
    np.testing.assert_array_equal(path_line.get_ydata(), [-0.8, -0.3, 0.2, 0.0])
    assert final.get_marker() == "*" and final.get_linestyle() == "None"
    assert (final.get_xdata()[0], final.get_ydata()[0]) == (0.0, 0.0)
    assert ax.get_xlabel() == "1st PC: 83.20 %"
    assert ax.get_ylabel() == "2nd PC: 10.51 %"


def test_on_given_axes_filled_and_without_ratios():
    fig = Figure()
    ax = fig.subplots()
    out = trajectory_contour(XS, YS, SURFACE, PATH[:3], ax=ax, filled=True, title="t")
    _render(out)
    assert out is fig and ax.get_title() == "t"
    assert ax.get_xlabel() == "1st PC" and ax.get_ylabel() == "2nd PC"
    assert len(fig.axes) == 2  # the colour bar
    assert len(ax.get_lines()) == 2


def test_bad_input():
    with pytest.raises(ValueError, match="`path`"):
        trajectory_contour(XS, YS, SURFACE, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="`explained_variance_ratio`"):
        trajectory_contour(XS, YS, SURFACE, PATH, explained_variance_ratio=[0.5])
    with pytest.raises(ValueError, match="`surface`"):
        trajectory_contour(XS, YS, SURFACE.T, PATH)
