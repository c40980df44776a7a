"""Every plot draws where it is told: ``ax=`` (one axes) or ``fig=`` (a Figure or a SubFigure)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import visjax.plot as vp
from visjax import evaluation
from visjax.curvature import SpectralDensity

RNG = np.random.default_rng(0)
IMAGES = RNG.random((2, 8, 8, 1))
MASK = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 4, 0), 4, 1)
XS, YS = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
SURFACE = RNG.random((5, 4))
STEPS = np.array([0, 10, 20])


class Snapshot(NamedTuple):
    steps: np.ndarray
    stats: dict
    edges: np.ndarray | None


SNAP = Snapshot(
    STEPS,
    {
        "norm": {"conv1": np.array([1.0, 2.0, 3.0])},
        "update_ratio": {"conv1": np.full(3, 1e-3)},
        "histogram": {"conv1": RNG.random((3, 4))},
    },
    np.array([-1.0, -0.1, 0.0, 0.1, 1.0]),
)
HISTORY = {"train_loss": [1.0, 0.5], "train_accuracy": [0.5, 0.8]}
GRID = np.linspace(-1, 1, 21)
DENSITY = SpectralDensity(GRID, np.exp(-(GRID**2)), np.zeros((1, 3)), np.zeros((1, 3)))

# name -> (args, where: "ax" | "ax3d" | "fig")
LABELS = np.array([0, 1, 2, 1, 0, 2])
PROBS = np.full((6, 3), 0.2) + 0.4 * np.eye(3)[[0, 1, 1, 1, 2, 2]]
CURVES_ROC = evaluation.roc_curves(LABELS, PROBS)
CURVES_PR = evaluation.precision_recall_curves(LABELS, PROBS)
BINS = evaluation.calibration_bins(LABELS, PROBS, n_bins=5)

CASES = {
    "class_balance": ((LABELS,), "ax"),
    "class_samples": ((RNG.random((6, 8, 8, 1)), LABELS), "fig"),
    "confusion_matrix": ((evaluation.confusion_matrix(LABELS, PROBS.argmax(1)),), "ax"),
    "misclassified_grid": ((IMAGES,), "fig", {"true_labels": [0, 1], "predicted_labels": [1, 2]}),
    "per_class_accuracy": ((np.array([0.5, 1.0, 0.75]),), "ax"),
    "pixel_statistics": ((IMAGES,), "fig"),
    "precision_recall_curves": ((CURVES_PR,), "ax"),
    "reliability_diagram": ((BINS,), "fig"),
    "roc_curves": ((CURVES_ROC,), "ax"),
    "attribution_grid": ((IMAGES, {"a": RNG.random((2, 8, 8, 1))}), "fig"),
    "cam_grid": ((IMAGES, {"g": RNG.random((2, 4, 4))}), "fig"),
    "cam_overlay": ((IMAGES[0], RNG.random((4, 4))), "ax"),
    "eigenvalue_density": ((DENSITY,), "ax"),
    "eigenvalues_over_training": ((STEPS, RNG.random((3, 2))), "ax"),
    "feature_map_grid": ((RNG.random((4, 4, 3)),), "fig"),
    "feature_values": ((IMAGES[0], MASK, np.arange(4.0) - 1.5), "ax"),
    "feature_values_grid": ((IMAGES, MASK, {"s": RNG.random((2, 4))}), "fig"),
    "filter_grid": ((RNG.random((4, 3, 3, 1)),), "fig"),
    "gradient_norms": ((SNAP,), "ax"),
    "histograms_over_time": ((SNAP, "conv1"), "ax"),
    "image_grid": ((IMAGES,), "fig"),
    "loss_accuracy": ((STEPS, [1.0, 0.7, 0.5], [0.3, 0.6, 0.8]), "ax"),
    "loss_contour": ((XS, YS, SURFACE), "ax"),
    "loss_curve": ((XS, {"loss": XS**2}), "ax"),
    "loss_surface_3d": ((XS, YS, SURFACE), "ax3d"),
    "noise_scale": ((STEPS, [10.0, 20.0, 40.0]), "ax"),
    "objective_curves": ((RNG.random((2, 6)),), "ax"),
    "overlay": ((IMAGES[0], RNG.standard_normal((8, 8))), "ax"),
    "training_curves": ((HISTORY,), "fig"),
    "trajectory_contour": ((XS, YS, SURFACE, np.array([[0.5, 0.5], [0.0, 0.0]])), "ax"),
    "update_ratios": ((SNAP,), "ax"),
    "activation_fractions": (({"conv1": np.array([0.0, 0.5, 1.0])},), "fig"),
    "activation_histograms": (
        ({"conv1": RNG.random((3, 4))}, {"conv1": np.linspace(0, 1, 5)}),
        "fig",
    ),
    "weight_histogram_grid": (({"w": RNG.random(4)}, {"w": np.linspace(-1, 1, 5)}), "fig"),
    "embedding_scatter": ((RNG.random((12, 2)), np.arange(12) % 3), "ax"),
    "embedding_thumbnails": ((RNG.random((6, 2)), RNG.random((6, 8, 8))), "ax"),
    "activation_heatmaps": (({"conv1": RNG.random((4, 4, 3)), "fc": RNG.random((4, 4))},), "fig"),
    "weight_changes": (
        ({"w": 0.1}, {"w": RNG.random(4)}, {"w": RNG.random(4)}, {"w": np.linspace(-1, 1, 5)}),
        "fig",
    ),
    "attention_heatmap": ((RNG.random((5, 5)),), "ax"),
    "attention_grid": ((RNG.random((2, 3, 5, 5)),), "fig"),
    "patch_attention": ((RNG.random((8, 8)), RNG.random(4)), "ax"),
    "token_scores": ((["a", "b", "c"], RNG.random(3)), "ax"),
    "relevance_heatmaps": ((RNG.random((2, 8, 8)), {"eps": RNG.random((2, 8, 8)) - 0.5}), "fig"),
    "conservation_curve": (({"eps": RNG.random(3)},), "ax", {"layers": ["a", "b", "c"]}),
    "runs_contour": (
        (XS, YS, SURFACE),
        "ax",
        {"paths": {"run 0": np.array([[0.5, 0.5], [0.0, 0.0]])}, "solutions": {"w": (0.0, 0.0)}},
    ),
    "surface_row": ((XS, YS, {"a": SURFACE, "b": SURFACE + 1}), "fig"),
}


def test_every_plot_has_a_case():
    # attention_html writes an HTML file (tests/plot/test_attention_plot.py), not a figure.
    assert set(CASES) == set(vp.__all__) - {"attention_html"}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("into", ["figure", "subfigure"])
def test_plot_draws_into_the_given_target(name, into):
    args, where, *kwargs = CASES[name]
    kwargs = kwargs[0] if kwargs else {}
    root = Figure(figsize=(8, 4))
    target = root.subfigures(1, 2)[1] if into == "subfigure" else root
    if where == "fig":
        out = getattr(vp, name)(*args, fig=target, **kwargs)
        assert out is target
        assert target.axes and all(ax.figure is target for ax in target.axes)
    else:
        kw = {"projection": "3d"} if where == "ax3d" else {}
        ax = target.add_subplot(**kw)
        out = getattr(vp, name)(*args, ax=ax, **kwargs)
        assert out is ax.figure is target
        assert ax.get_children() and (ax.has_data() or ax.images or ax.collections)
    if into == "subfigure":
        assert not root.subfigs[0].axes  # the neighbour is left alone
    FigureCanvasAgg(root).draw()  # draws without error


def test_fig_must_be_a_figure():
    with pytest.raises(TypeError, match="`fig`"):
        vp.image_grid(IMAGES, fig=object())
