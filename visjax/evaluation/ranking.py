"""Ranking metrics of class probabilities, one-vs-rest: ROC AUC, average precision, their curves.

Each class ``k`` is scored as a binary problem (``y_true == k`` against ``probs[:, k]``) with
scikit-learn's ``roc_auc_score``/``average_precision_score``/``roc_curve``/
``precision_recall_curve``. ``"micro"`` pools every (example, class) pair into one binary
problem, as scikit-learn's ``average="micro"`` on the binarised labels; ``"macro"`` is the mean
over the classes **present** in ``y_true``. A class absent from ``y_true`` has AUC NaN and AP 0.0
(scikit-learn's values), each with a warning, and is left out of the macro average (scikit-learn
would return a NaN macro AUC).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, NamedTuple

import numpy as np

from visjax.evaluation._inputs import check_scored

Average = Literal["macro", "micro"] | None


class Curve(NamedTuple):
    """One curve: ``x`` (false-positive rate or recall), ``y`` (true-positive rate or precision)
    and the ``area`` it stands for (AUC or average precision; NaN when undefined)."""

    x: np.ndarray
    y: np.ndarray
    area: float


class Curves(NamedTuple):
    """Per-class curves (one per column of ``probs``) and the micro and macro averages.

    The macro curve is the mean of the per-class curves of the present classes, interpolated on
    the union of their ``x`` values; its ``area`` is the macro average of the per-class areas (as
    :func:`roc_auc`/:func:`average_precision` return it), not the area under the mean curve.
    """

    per_class: tuple[Curve, ...]
    micro: Curve
    macro: Curve


def _check_average(average: Any) -> None:
    if average not in ("macro", "micro", None):
        raise ValueError(f"`average` must be 'macro', 'micro' or None, got {average!r}")


def _binarized(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = check_scored(y_true, probs)
    if y.shape[0] == 0:
        raise ValueError("`y_true` and `probs` must hold at least one example, got 0")
    return (y[:, None] == np.arange(p.shape[1])).astype(np.int64), p


def _defined(Y: np.ndarray, metric: str, value: str, negatives: bool) -> np.ndarray:
    """Which columns define the metric; warns for each that does not."""
    pos = Y.sum(axis=0)
    ok = pos > 0
    if negatives:
        ok &= pos < Y.shape[0]
    for k in np.flatnonzero(~ok):
        why = "has no examples in `y_true`" if pos[k] == 0 else "is the only class in `y_true`"
        warnings.warn(
            f"class {k} {why}: its {metric} is {value} and the macro average leaves it out",
            UserWarning,
            stacklevel=3,
        )
    return ok


def _mean(values: np.ndarray, ok: np.ndarray) -> float:
    return float(values[ok].mean()) if ok.any() else float("nan")


def _pooled(score, Y: np.ndarray, p: np.ndarray) -> float:
    y = Y.ravel()
    return float(score(y, p.ravel())) if 0 < y.sum() < y.size else float("nan")


def roc_auc(y_true: Any, probs: Any, *, average: Average = "macro") -> float | np.ndarray:
    """Area under the one-vs-rest ROC curve of each class.

    Args:
      y_true: ``(N,)`` true class indices in ``[0, C)``.
      probs: ``(N, C)`` class probabilities: in ``[0, 1]``, rows summing to 1 within 1e-6.
      average: ``"macro"`` (mean over the classes present in ``y_true``), ``"micro"`` (all
        (example, class) pairs pooled) or ``None`` (one value per class).

    Returns:
      A float, or ``(C,)`` float64 for ``average=None``; NaN (with a warning) for a class absent
      from ``y_true`` or one that is the only class present.

    Raises:
      ValueError: bad or empty labels/probabilities, or lengths that differ.

    Example:
      >>> roc_auc([0, 1, 1, 0], [[.9, .1], [.2, .8], [.4, .6], [.7, .3]])
      1.0
    """
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - scikit-learn (~1 s), on first use

    _check_average(average)
    Y, p = _binarized(y_true, probs)
    if average == "micro":
        return _pooled(roc_auc_score, Y, p)
    ok = _defined(Y, "AUC", "NaN", negatives=True)
    per = np.array(
        [roc_auc_score(Y[:, k], p[:, k]) if ok[k] else np.nan for k in range(p.shape[1])],
        dtype=np.float64,
    )
    return per if average is None else _mean(per, ok)


def average_precision(y_true: Any, probs: Any, *, average: Average = "macro") -> float | np.ndarray:
    """Average precision (the area under the step precision-recall curve) of each class.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the thresholds, as scikit-learn's
    ``average_precision_score`` (no interpolation).

    Args:
      y_true: ``(N,)`` true class indices in ``[0, C)``.
      probs: ``(N, C)`` class probabilities: in ``[0, 1]``, rows summing to 1 within 1e-6.
      average: ``"macro"`` (mean over the classes present in ``y_true``), ``"micro"`` or
        ``None`` (one value per class).

    Returns:
      A float, or ``(C,)`` float64 for ``average=None``; 0.0 (with a warning) for a class absent
      from ``y_true``.

    Raises:
      ValueError: bad or empty labels/probabilities, or lengths that differ.

    Example:
      >>> average_precision([0, 1, 1, 0], [[.9, .1], [.2, .8], [.4, .6], [.7, .3]])
      1.0
    """
    from sklearn.metrics import average_precision_score  # noqa: PLC0415 - scikit-learn (~1 s)

    _check_average(average)
    Y, p = _binarized(y_true, probs)
    if average == "micro":
        return _pooled(average_precision_score, Y, p)
    ok = _defined(Y, "average precision", "0.0", negatives=False)
    per = np.array(
        [average_precision_score(Y[:, k], p[:, k]) if ok[k] else 0.0 for k in range(p.shape[1])],
        dtype=np.float64,
    )
    return per if average is None else _mean(per, ok)


def _macro(curves: list[Curve], ok: np.ndarray, *, increasing_x: bool) -> Curve:
    present = [c for c, good in zip(curves, ok, strict=True) if good]
    if not present:
        return Curve(np.zeros(0), np.zeros(0), float("nan"))
    grid = np.unique(np.concatenate([c.x for c in present]))
    ys = []
    for c in present:
        x, y = (c.x, c.y) if increasing_x else (c.x[::-1], c.y[::-1])
        ys.append(np.interp(grid, x, y))
    area = float(np.mean([c.area for c in present]))
    return Curve(grid, np.mean(ys, axis=0), area)


def roc_curves(y_true: Any, probs: Any) -> Curves:
    """One-vs-rest ROC curves (false-positive rate ``x``, true-positive rate ``y``) per class,
    with the micro and macro averages; each ``area`` is the matching :func:`roc_auc`.

    Args:
      y_true: ``(N,)`` true class indices.
      probs: ``(N, C)`` class probabilities.

    Returns:
      :class:`Curves`; a class with an undefined curve (absent from ``y_true``, with a warning)
      has empty ``x``/``y`` and area NaN.
    """
    from sklearn.metrics import roc_auc_score, roc_curve  # noqa: PLC0415 - scikit-learn (~1 s)

    Y, p = _binarized(y_true, probs)
    ok = _defined(Y, "AUC", "NaN", negatives=True)
    per = []
    for k in range(p.shape[1]):
        if ok[k]:
            fpr, tpr, _ = roc_curve(Y[:, k], p[:, k])
            per.append(Curve(fpr, tpr, float(roc_auc_score(Y[:, k], p[:, k]))))
        else:
            per.append(Curve(np.zeros(0), np.zeros(0), float("nan")))
    y, s = Y.ravel(), p.ravel()
    if 0 < y.sum() < y.size:
        fpr, tpr, _ = roc_curve(y, s)
        micro = Curve(fpr, tpr, float(roc_auc_score(y, s)))
    else:
        micro = Curve(np.zeros(0), np.zeros(0), float("nan"))
    return Curves(tuple(per), micro, _macro(per, ok, increasing_x=True))


def precision_recall_curves(y_true: Any, probs: Any) -> Curves:
    """One-vs-rest precision-recall curves (recall ``x``, precision ``y``, recall decreasing as
    scikit-learn returns it) per class, with the micro and macro averages; each ``area`` is the
    matching :func:`average_precision`.

    Args:
      y_true: ``(N,)`` true class indices.
      probs: ``(N, C)`` class probabilities.

    Returns:
      :class:`Curves`; a class absent from ``y_true`` (with a warning) has empty ``x``/``y`` and
      area 0.0.
    """
    from sklearn.metrics import (  # noqa: PLC0415 - scikit-learn (~1 s)
        average_precision_score,
        precision_recall_curve,
    )

    Y, p = _binarized(y_true, probs)
    ok = _defined(Y, "average precision", "0.0", negatives=False)
    per = []
    for k in range(p.shape[1]):
        if ok[k]:
            prec, rec, _ = precision_recall_curve(Y[:, k], p[:, k])
            per.append(Curve(rec, prec, float(average_precision_score(Y[:, k], p[:, k]))))
        else:
            per.append(Curve(np.zeros(0), np.zeros(0), 0.0))
    prec, rec, _ = precision_recall_curve(Y.ravel(), p.ravel())
    micro = Curve(rec, prec, _pooled(average_precision_score, Y, p))
    return Curves(tuple(per), micro, _macro(per, ok, increasing_x=False))
