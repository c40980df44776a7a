"""Calibration: how well the top-class confidence matches the accuracy (binned), and the ECE."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from visjax.base.checks import check_positive_int
from visjax.evaluation._inputs import check_scored


class CalibrationBins(NamedTuple):
    """Top-class confidence in equal-width bins ``(edges[b], edges[b + 1]]``.

    Attributes:
      edges: ``(n_bins + 1,)`` bin edges, ``linspace(0, 1, n_bins + 1)``.
      accuracy: ``(n_bins,)`` fraction of the bin's examples predicted correctly (NaN if empty).
      confidence: ``(n_bins,)`` mean top-class probability in the bin (NaN if empty).
      count: ``(n_bins,)`` int64 number of examples in the bin.
    """

    edges: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray
    count: np.ndarray


def calibration_bins(y_true: Any, probs: Any, *, n_bins: int = 15) -> CalibrationBins:
    """Accuracy, mean confidence and size of each confidence bin: the reliability diagram's data.

    The prediction is ``argmax(probs)`` and its confidence ``max(probs)``; bin ``b`` holds the
    confidences in ``(b / n_bins, (b + 1) / n_bins]`` (Guo et al. 2017).

    Args:
      y_true: ``(N,)`` true class indices.
      probs: ``(N, C)`` class probabilities (rows sum to 1).
      n_bins: the number of equal-width bins over ``[0, 1]``.

    Returns:
      :class:`CalibrationBins`.

    References:
      Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks", ICML 2017,
      https://arxiv.org/abs/1706.04599
    """
    n_bins = check_positive_int(n_bins, "n_bins")
    y, p = check_scored(y_true, probs)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = p.max(axis=1) if p.shape[0] else np.zeros(0)
    correct = (p.argmax(axis=1) == y).astype(np.float64) if p.shape[0] else np.zeros(0)
    # right=True: edges[b] < c <= edges[b + 1]; a confidence of exactly 0 joins the first bin.
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / count
        confidence = np.bincount(idx, weights=conf, minlength=n_bins) / count
    return CalibrationBins(edges, accuracy, confidence, count)


def expected_calibration_error(y_true: Any, probs: Any, *, n_bins: int = 15) -> float:
    """Expected calibration error: ``sum_b (n_b / N) |accuracy_b - confidence_b|``.

    Over the equal-width bins of :func:`calibration_bins` (empty bins weigh nothing).

    Args:
      y_true: ``(N,)`` true class indices.
      probs: ``(N, C)`` class probabilities (rows sum to 1).
      n_bins: the number of equal-width bins over ``[0, 1]``.

    Returns:
      The ECE in ``[0, 1]``; NaN for an empty batch.

    Example:
      >>> round(expected_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]], n_bins=10), 9)
      0.45
    """
    bins = calibration_bins(y_true, probs, n_bins=n_bins)
    n = int(bins.count.sum())
    if n == 0:
        return float("nan")
    full = bins.count > 0
    gaps = np.abs(bins.accuracy[full] - bins.confidence[full])
    return float(np.sum(bins.count[full] / n * gaps))
