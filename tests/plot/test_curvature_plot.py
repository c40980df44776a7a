import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from visjax.curvature import SpectralDensity
from visjax.plot.curvature import eigenvalue_density, eigenvalues_over_training


def _render(fig):
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def _density():
    grid = np.linspace(-1.0, 5.0, 101)
    dens = np.exp(-(grid**2) / 0.1)
    dens[::10] = 0.0  # exact zeros
    dens[5] = -1e-9  # round-off below zero
    dens[7] = np.nan
    return SpectralDensity(grid, dens, np.zeros((1, 3)), np.zeros((1, 3)))


def test_density_on_a_log_axis_clips_to_the_floor_and_marks_outliers():
    d = _density()
    fig = eigenvalue_density(d, outliers=[3.0, 4.5], title="spectrum")
    _render(fig)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "spectrum"
    y = ax.get_lines()[0].get_ydata()
    floor = 1e-7 * np.nanmax(d.density)
    assert np.isnan(y[7])
    ok = ~np.isnan(y)
    assert (y[ok] >= floor).all() and y[0] == floor and y[5] == floor
    xs = sorted({float(ln.get_xdata()[0]) for ln in ax.get_lines()[1:]})
    assert xs == [3.0, 4.5]


def test_density_linear_scale_and_given_axes():
    fig, ax = plt.subplots()
    try:
        out = eigenvalue_density(_density(), ax=ax, log=False, outliers=2.0)
        assert out is fig and ax.get_yscale() == "linear"
        assert ax.get_lines()[0].get_ydata()[5] == -1e-9
    finally:
        plt.close(fig)


def test_density_bad_shapes_raise():
    d = _density()
    with pytest.raises(ValueError, match=r"density\.density"):
        eigenvalue_density(d._replace(density=d.density[:-1]))
    with pytest.raises(ValueError, match="grid"):
        eigenvalue_density(d._replace(grid=np.zeros((2, 2)), density=np.zeros((2, 2))))
    with pytest.raises(ValueError, match="outliers"):
        eigenvalue_density(d, outliers=np.zeros((2, 2)))


def test_eigenvalues_over_training_lines_labels_and_log_gaps():
    steps = np.arange(4)
    ev = np.array([[5.0, 1.0], [6.0, -1.0], [7.0, np.inf], [8.0, 2.0]])
    fig = eigenvalues_over_training(steps, ev, log=True, labels=["top", "second"], title="t")
    _render(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "t"
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["top", "second"]
    np.testing.assert_array_equal(lines[1].get_ydata(), [1.0, np.nan, np.nan, 2.0])
    one = eigenvalues_over_training(steps, ev[:, 0])
    assert [ln.get_label() for ln in one.axes[0].get_lines()] == ["λ1"]


def test_eigenvalues_over_training_bad_shapes_raise():
    with pytest.raises(ValueError, match="eigenvalues"):
        eigenvalues_over_training(np.arange(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="steps"):
        eigenvalues_over_training(np.zeros((3, 1)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="labels"):
        eigenvalues_over_training(np.arange(3), np.zeros((3, 2)), labels=["a"])
