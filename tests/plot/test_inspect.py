import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from visjax.plot.inspect import (
    activation_fractions,
    activation_histograms,
    weight_changes,
    weight_histogram_grid,
)


def _render(fig):
    fig.savefig(io.BytesIO(), format="png", dpi=30)


def test_activation_fractions_marks_dead_units():
    fig = activation_fractions(
        {"conv1": np.array([0.2, 0.0, 0.9, 0.0]), "fc": np.array([1.0, 0.5])}, title="t"
    )
    _render(fig)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_title() == "conv1: 2 of 4 units dead"
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [0.2, 0.0, 0.9, 0.0])
    dead = fig.axes[0].get_lines()[0].get_xdata()
    assert list(dead) == [1, 3]
    assert fig.axes[1].get_title() == "fc: 0 of 2 units dead"
    with pytest.raises(ValueError, match="fractions"):
        activation_fractions({"fc": np.array([1.5])})
    with pytest.raises(ValueError, match="mapping"):
        activation_fractions(np.ones(3))


def test_activation_histograms_sum_units():
    counts = {"a": np.array([[1, 2, 3], [4, 5, 6]]), "b": np.array([0, 0, 1])}
    edges = {"a": np.array([-1.0, 0.0, 1.0, 2.0]), "b": np.array([0.0, 1.0, 2.0, 3.0])}
    fig = activation_histograms(counts, edges, ncols=2)
    _render(fig)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    np.testing.assert_allclose(fig.axes[0].patches[0].get_data()[0], [5, 7, 9])
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="edges"):
        activation_histograms(counts, {"a": np.arange(3.0), "b": edges["b"]})
    with pytest.raises(ValueError, match="no entry"):
        activation_histograms(counts, {"a": edges["a"]})


def test_weight_histograms_and_changes():
    counts = {"conv1.kernel": np.array([1, 3, 1]), "conv1.bias": np.array([2, 0, 0])}
    edges = {k: np.linspace(-1, 1, 4) for k in counts}
    fig = weight_histogram_grid(counts, edges, title="w")
    _render(fig)
    assert [ax.get_title() for ax in fig.axes] == list(counts)
    after = {k: v[::-1] for k, v in counts.items()}
    rel = {"conv1.kernel": 0.25, "conv1.bias": 1.5}
    fig = weight_changes(rel, counts, after, edges, title="change")
    _render(fig)
    assert len(fig.axes) == 3
    np.testing.assert_allclose([p.get_height() for p in fig.axes[0].patches], [0.25, 1.5])
    assert fig.axes[1].get_title() == "conv1.kernel (0.25)"
    np.testing.assert_allclose(fig.axes[1].patches[1].get_data()[0], [1, 3, 1][::-1])
    fig = weight_changes({"conv1.kernel": 0.5, "conv1.bias": np.inf}, counts, after, edges)
    _render(fig)
    assert len(fig.axes[0].patches) == 1 and fig.axes[0].texts[0].get_text() == "∞"
    with pytest.raises(ValueError, match="same keys"):
        weight_changes({"x": 1.0}, counts, after, edges)
