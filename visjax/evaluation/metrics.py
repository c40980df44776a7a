"""Counting metrics: the confusion matrix, per-class accuracy, the most confident mistakes."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from visjax.base.checks import check_positive_int
from visjax.evaluation._inputs import check_labels, check_n_classes, check_scored

Normalize = Literal["true", "pred", "all"] | None


def _pair(y_true: Any, y_pred: Any, n_classes: Any) -> tuple[np.ndarray, np.ndarray, int]:
    n = check_n_classes(n_classes)
    t = check_labels(y_true, "y_true", n)
    p = check_labels(y_pred, "y_pred", n)
    if t.shape != p.shape:
        raise ValueError(
            f"`y_true` and `y_pred` must have the same length, got {t.shape[0]} and {p.shape[0]}"
        )
    if n is None:
        n = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    return t, p, n


def confusion_matrix(
    y_true: Any, y_pred: Any, *, n_classes: int | None = None, normalize: Normalize = None
) -> np.ndarray:
    """Counts ``C[i, j]`` of examples of true class ``i`` predicted as class ``j``.

    As :func:`sklearn.metrics.confusion_matrix` with ``labels=range(n_classes)``: ``normalize=
    "true"`` divides each row by its total (rows then sum to 1: the per-class recall on the
    diagonal), ``"pred"`` each column, ``"all"`` the whole matrix; a row (column) with no examples
    stays 0, as in scikit-learn.

    Args:
      y_true: ``(N,)`` true class indices.
      y_pred: ``(N,)`` predicted class indices (e.g. ``probs.argmax(1)``).
      n_classes: the number of classes; default: the largest index seen plus one (``0`` for
        empty labels).
      normalize: ``None`` (counts), ``"true"``, ``"pred"`` or ``"all"``.

    Returns:
      ``(n_classes, n_classes)``: int64 counts, or float64 when normalised.

    Example:
      >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
      [[1, 0], [1, 1]]
    """
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"`normalize` must be None, 'true', 'pred' or 'all', got {normalize!r}")
    t, p, n = _pair(y_true, y_pred, n_classes)
    counts = np.bincount(t * n + p, minlength=n * n).reshape(n, n).astype(np.int64)
    if normalize is None:
        return counts
    c = counts.astype(np.float64)
    if normalize == "true":
        total = c.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        total = c.sum(axis=0, keepdims=True)
    else:
        total = c.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(c / total)


def per_class_accuracy(y_true: Any, y_pred: Any, *, n_classes: int | None = None) -> np.ndarray:
    """The fraction of each class's examples predicted correctly (the per-class recall).

    Args:
      y_true: ``(N,)`` true class indices.
      y_pred: ``(N,)`` predicted class indices.
      n_classes: the number of classes; default: the largest index seen plus one.

    Returns:
      ``(n_classes,)`` float64; NaN for a class with no examples in ``y_true``.

    Example:
      >>> per_class_accuracy([0, 0, 1], [0, 1, 1]).tolist()
      [0.5, 1.0]
    """
    counts = confusion_matrix(y_true, y_pred, n_classes=n_classes)
    total = counts.sum(axis=1)
    out = np.full(counts.shape[0], np.nan)
    np.divide(np.diag(counts), total, out=out, where=total > 0)
    return out


def most_confident_errors(y_true: Any, probs: Any, *, k: int = 16) -> np.ndarray:
    """Indices of the misclassified examples (``argmax(probs) != y_true``), most confident first.

    Confidence is the top-class probability; ties keep the examples' order.

    Args:
      y_true: ``(N,)`` true class indices.
      probs: ``(N, C)`` class probabilities (rows sum to 1).
      k: at most this many indices.

    Returns:
      ``(min(k, number of errors),)`` int64 indices into the batch.

    Example:
      >>> most_confident_errors([0, 1, 1], [[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]]).tolist()
      [1, 0]
    """
    k = check_positive_int(k, "k")
    y, p = check_scored(y_true, probs)
    wrong = np.flatnonzero(p.argmax(axis=1) != y) if p.shape[0] else np.zeros(0, np.int64)
    order = np.argsort(-p[wrong].max(axis=1), kind="stable") if wrong.size else wrong
    return wrong[order][:k].astype(np.int64)
