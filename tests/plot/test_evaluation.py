import numpy as np
import pytest
from matplotlib.figure import Figure

from visjax import evaluation
from visjax.plot import (
    confusion_matrix,
    misclassified_grid,
    per_class_accuracy,
    precision_recall_curves,
    reliability_diagram,
    roc_curves,
)


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    n, c = 120, 4
    y = np.concatenate([np.arange(c), rng.integers(0, c, n - c)])
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, p


def test_confusion_annotations_equal_the_counts(scored, tmp_path):
    y, p = scored
    counts = evaluation.confusion_matrix(y, p.argmax(1))
    fig = confusion_matrix(counts, class_names=list("abcd"))
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # the matrix and its colour bar
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(v) for v in counts.ravel()]
    assert [t.get_text() for t in ax.get_yticklabels()] == list("abcd")
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), counts)
    fig.savefig(tmp_path / "cm.png")


def test_normalized_confusion_on_given_axes():
    fig = Figure()
    ax = fig.subplots()
    rates = np.array([[0.75, 0.25], [0.0, 1.0]])
    assert confusion_matrix(rates, ax=ax) is fig
    assert [t.get_text() for t in ax.texts] == ["0.75", "0.25", "0.00", "1.00"]
    with pytest.raises(ValueError, match="`matrix`"):
        confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="`class_names`"):
        confusion_matrix(np.eye(2, dtype=int), class_names=["a"])


def test_roc_and_pr_curves_one_line_per_class_plus_averages(scored, tmp_path):
    y, p = scored
    roc = evaluation.roc_curves(y, p)
    fig = roc_curves(roc)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[0] == "chance" and len(labels) == 1 + 4 + 2
    assert labels[-2] == f"micro (AUC {roc.micro.area:.3f})"
    assert labels[-1] == f"macro (AUC {roc.macro.area:.3f})"
    fig.savefig(tmp_path / "roc.png")
    pr = evaluation.precision_recall_curves(y, p)
    fig = precision_recall_curves(pr, class_names=["w", "x", "y", "z"])
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[0] == f"w (AP {pr.per_class[0].area:.3f})" and len(labels) == 6
    assert fig.axes[0].get_xlabel() == "recall"
    fig.savefig(tmp_path / "pr.png")


def test_absent_class_curve_is_not_drawn(scored):
    y, p = scored
    y = np.where(y == 3, 0, y)
    with pytest.warns(UserWarning, match="class 3"):
        roc = evaluation.roc_curves(y, p)
    assert len(roc_curves(roc).axes[0].get_lines()) == 1 + 3 + 2


def test_reliability_diagram(scored, tmp_path):
    y, p = scored
    bins = evaluation.calibration_bins(y, p, n_bins=10)
    ece = evaluation.expected_calibration_error(y, p, n_bins=10)
    fig = reliability_diagram(bins, ece=ece)
    top, bottom = fig.axes
    assert top.get_title() == f"reliability diagram: ECE {ece:.3f}"
    full = bins.count > 0
    accuracy_bars = top.containers[0]
    assert len(accuracy_bars) == full.sum()
    np.testing.assert_allclose([b.get_height() for b in accuracy_bars], bins.accuracy[full])
    assert [b.get_height() for b in bottom.containers[0]] == bins.count.tolist()
    fig.savefig(tmp_path / "rel.png")
    with pytest.raises(ValueError, match="`bins`"):
        reliability_diagram(bins._replace(count=bins.count[:3]))


def test_per_class_accuracy_bars_and_na():
    acc = np.array([0.5, np.nan, 1.0])
    fig = per_class_accuracy(acc, overall=0.7)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["0.50", "n/a", "1.00"]
    assert [b.get_height() for b in ax.containers[0]] == [0.5, 0.0, 1.0]
    assert ax.get_legend().get_texts()[0].get_text() == "overall 0.700"


def test_misclassified_grid_with_attribution(scored, tmp_path):
    y, p = scored
    idx = evaluation.most_confident_errors(y, p, k=5)
    rng = np.random.default_rng(1)
    images = rng.random((len(y), 8, 8, 1))
    attr = rng.normal(size=(len(y), 8, 8))
    fig = misclassified_grid(
        images[idx],
        true_labels=y[idx],
        predicted_labels=p[idx].argmax(1),
        confidences=p[idx].max(1),
        attributions=attr[idx],
        ncols=3,
    )
    assert len(fig.axes) == 5
    first = fig.axes[0]
    assert first.get_title() == f"{y[idx[0]]} \u2192 {p[idx[0]].argmax()} ({p[idx[0]].max():.2f})"
    assert len(first.get_images()) == 2  # the image and the attribution over it
    fig.savefig(tmp_path / "mis.png")
    plain = misclassified_grid(images[:2], true_labels=[0, 1], predicted_labels=[1, 0])
    assert len(plain.axes[0].get_images()) == 1
    empty = misclassified_grid(np.zeros((0, 8, 8, 1)), true_labels=[], predicted_labels=[])
    assert empty.axes[0].texts[0].get_text() == "no misclassified examples"
    with pytest.raises(ValueError, match="`attributions`"):
        misclassified_grid(
            images[:2], true_labels=[0, 1], predicted_labels=[1, 0], attributions=attr[:3]
        )
