import io
import re
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from visjax.plot.gradstats import (
    gradient_norms,
    histograms_over_time,
    loss_accuracy,
    noise_scale,
    update_ratios,
)

STEPS = np.array([0, 10, 20, 50, 100])  # uneven, to catch index-for-step mix-ups
EDGES = np.array([-1.0, -1e-2, -1e-4, 0.0, 1e-4, 1e-2, 1.0])


class Snapshot(NamedTuple):
    """A stand-in for ``visjax.gradstats.transform.Snapshot`` (the agreed contract)."""

    steps: np.ndarray
    stats: dict
    edges: np.ndarray | None


def _snapshot():
    t = STEPS.size
    hist = np.arange(t * 6, dtype=np.float64).reshape(t, 6)
    hist[0, 0] = 0.0  # an empty bin
    hist[1, 2] = np.nan
    return Snapshot(
        STEPS,
        {
            "norm": {
                "conv1": np.array([1.0, 0.0, 2.0, np.nan, 3.0]),
                "conv2": np.array([1.0, 2.0, np.inf, 4.0, -1.0]),
                "dense": np.full(t, 0.5),
            },
            "update_ratio": {"conv1": np.full(t, 1e-3), "dense": np.full(t, 1e-2)},
            "histogram": {"conv1": hist, "dense": hist[:, ::-1]},
        },
        EDGES,
    )


def _render(fig):
    """Draw the figure: some warnings only come at draw time (filterwarnings=error catches them)."""
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def test_gradient_norms_one_line_per_group_log_gaps():
    fig = gradient_norms(_snapshot(), title="norms")
    _render(fig)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "norms"
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["conv1", "conv2", "dense"]
    np.testing.assert_array_equal(lines[0].get_xdata(), STEPS)
    np.testing.assert_array_equal(lines[0].get_ydata(), [1.0, np.nan, 2.0, np.nan, 3.0])
    np.testing.assert_array_equal(lines[1].get_ydata(), [1.0, 2.0, np.nan, 4.0, np.nan])


def test_gradient_norms_linear_keeps_zeros_and_groups_select_and_order():
    fig = gradient_norms(_snapshot()._asdict(), groups=["dense", "conv1"], log=False)
    _render(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear"
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["dense", "conv1"]
    np.testing.assert_array_equal(lines[1].get_ydata(), [1.0, 0.0, 2.0, np.nan, 3.0])


def test_gradient_norms_on_given_axes():
    fig, ax = plt.subplots()
    try:
        assert gradient_norms(_snapshot(), ax=ax, statistic="update_ratio") is fig
        assert len(ax.get_lines()) == 2
    finally:
        plt.close(fig)


def test_unknown_statistic_or_group_lists_the_known():
    snap = _snapshot()
    with pytest.raises(ValueError, match=r"'nrm'.*\['histogram', 'norm', 'update_ratio'\]"):
        gradient_norms(snap, statistic="nrm")
    with pytest.raises(ValueError, match=r"\['fc'\].*\['conv1', 'conv2', 'dense'\]"):
        gradient_norms(snap, groups=["conv1", "fc"])
    with pytest.raises(ValueError, match=r"\['conv2'\].*\['conv1', 'dense'\]"):
        histograms_over_time(snap, "conv2")
    with pytest.raises(ValueError, match="update_ratio"):
        update_ratios(snap._replace(stats={"norm": snap.stats["norm"]}))
    with pytest.raises(ValueError, match="shape"):
        gradient_norms(snap, statistic="histogram")  # a histogram is not a curve
    with pytest.raises(TypeError, match="steps"):
        gradient_norms(object())


def test_histograms_over_time_heatmap_shape_and_axes():
    snap = _snapshot()
    fig = histograms_over_time(snap, "conv1")
    _render(fig)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    mesh = ax.collections[0]
    counts = mesh.get_array()
    assert counts.shape == (6, STEPS.size)  # (bins, T)
    hist = snap.stats["histogram"]["conv1"]
    assert counts.mask[0, 0] and counts.mask[2, 1]  # empty and NaN bins are blank
    np.testing.assert_array_equal(counts[3], hist[:, 3])
    assert isinstance(mesh.norm, LogNorm)
    assert mesh.norm.vmin == 1.0 and mesh.norm.vmax == np.nanmax(hist)
    # columns span halfway to the neighbouring steps
    xs = mesh.get_coordinates()[0, :, 0]
    np.testing.assert_array_equal(xs, [-5.0, 5.0, 15.0, 35.0, 75.0, 125.0])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [
        "$-10^{0}$",
        "$-10^{-2}$",
        "$-10^{-4}$",
        "0",
        "$10^{-4}$",
        "$10^{-2}$",
        "$10^{0}$",
    ]
    linear = histograms_over_time(snap._replace(edges=np.linspace(-3.0, 3.0, 7)), "conv1")
    assert [t.get_text() for t in linear.axes[0].get_yticklabels()] == [
        "-3", "-2", "-1", "0", "1", "2", "3"
    ]  # fmt: skip
    assert ax.get_title() == "conv1 histogram"


def test_histogram_ticks_share_one_format_and_label_the_zero_band_0():
    # default_edges as float32 (what JAX hands back): 1e-8 is not exactly a power of ten
    mags = np.logspace(-8, 2, 11).astype(np.float32).astype(np.float64)
    edges = np.concatenate([-mags[::-1], mags])
    hist = {"histogram": {"fc": np.ones((STEPS.size, 21))}}
    ax = histograms_over_time(Snapshot(STEPS, hist, edges), "fc", max_ticks=22).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ticks = list(ax.get_yticks())
    assert labels[ticks.index(10.5)] == "0"  # the middle of the bin [-1e-8, 1e-8)
    others = [lab for lab in labels if lab != "0"]
    assert others and all(re.fullmatch(r"\$-?10\^\{-?\d+\}\$", lab) for lab in others), labels
    assert "e-0" not in " ".join(labels)
    assert "; 0: [$-10^{-8}$, $10^{-8}$)" in ax.get_ylabel()


def test_histograms_over_time_single_step_all_empty_and_given_axes():
    snap = _snapshot()
    one = Snapshot(snap.steps[:1], {"histogram": {"conv1": np.zeros((1, 6))}}, snap.edges)
    fig, ax = plt.subplots()
    try:
        assert histograms_over_time(one, "conv1", ax=ax, title="") is fig
        _render(fig)
        assert ax.collections[0].get_array().shape == (6, 1)
        assert len(fig.axes) == 1  # no colour bar on a given axes
    finally:
        plt.close(fig)


def test_histograms_over_time_bad_edges_raise():
    snap = _snapshot()
    with pytest.raises(ValueError, match="edges"):
        histograms_over_time(snap._replace(edges=EDGES[:-1]), "conv1")
    with pytest.raises(ValueError, match="edges"):
        histograms_over_time(snap._replace(edges=None), "conv1")


def test_update_ratios_log_scale_and_reference_line():
    fig = update_ratios(_snapshot())
    _render(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["conv1", "dense", "0.001"]
    assert list(lines[-1].get_ydata()) == [1e-3, 1e-3]
    none = update_ratios(_snapshot(), reference=None, groups=["dense"])
    assert len(none.axes[0].get_lines()) == 1


def test_loss_accuracy_twin_axes_and_gaps():
    fig = loss_accuracy(STEPS, [2.0, np.nan, 1.0, 0.0, 0.5], [0.1, 0.2, np.inf, 0.8, 0.9])
    _render(fig)
    loss_ax, acc_ax = fig.axes
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_ydata(), [2, np.nan, 1, 0, 0.5])
    np.testing.assert_array_equal(acc_ax.get_lines()[0].get_ydata(), [0.1, 0.2, np.nan, 0.8, 0.9])
    log = loss_accuracy(STEPS, [2.0, np.nan, 1.0, 0.0, 0.5], log_loss=True)
    assert len(log.axes) == 1 and log.axes[0].get_yscale() == "log"
    np.testing.assert_array_equal(
        log.axes[0].get_lines()[0].get_ydata(), [2, np.nan, 1, np.nan, 0.5]
    )
    with pytest.raises(ValueError, match="loss"):
        loss_accuracy(STEPS, [1.0])
    with pytest.raises(ValueError, match="accuracy"):
        loss_accuracy(STEPS, np.ones(5), [1.0])


def test_noise_scale_log_with_gaps():
    fig = noise_scale(STEPS, [10.0, -5.0, 100.0, np.nan, 1e3], title="B")
    _render(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "B"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [10, np.nan, 100, np.nan, 1e3])
    marks = ax.get_lines()[1]  # the undefined steps, marked and explained in the legend
    np.testing.assert_array_equal(marks.get_xdata(), [10, 50])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[1].startswith("undefined at 2 steps") and "<= 0" in legend[1]
    clean = noise_scale(STEPS, np.ones(5)).axes[0]
    assert len(clean.get_lines()) == 1 and clean.get_legend() is None
    with pytest.raises(ValueError, match="values"):
        noise_scale(STEPS, [1.0, 2.0])
