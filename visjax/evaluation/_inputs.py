"""Checks shared by the evaluation metrics: labels and probabilities, each refused by name."""

from __future__ import annotations

from typing import Any

import numpy as np

from visjax.base.checks import check_finite, check_positive_int

# Rows of `probs` must sum to 1 within this (float32 softmax rows are within ~1e-7).
ROW_SUM_TOL = 1e-6


def check_labels(labels: Any, name: str, n_classes: int | None = None) -> np.ndarray:
    """``labels`` as a 1-D int64 array of class indices in ``[0, n_classes)``; raises
    ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    a = np.asarray(labels)
    if a.size == 0 and a.dtype.kind == "f":  # `[]` is float64 to NumPy
        a = a.astype(np.int64)
    if a.dtype == bool or a.dtype.kind not in "iu":
        raise TypeError(f"`{name}` must hold integer class indices, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (one class index per example), got {a.shape}")
    a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise ValueError(f"`{name}` must hold class indices >= 0, got {a.min()}")
    if n_classes is not None and a.size and a.max() >= n_classes:
        raise ValueError(
            f"`{name}` must hold class indices < {n_classes} (the number of classes), got {a.max()}"
        )
    return a


def check_n_classes(n_classes: Any) -> int | None:
    """``n_classes`` as an int >= 1, or ``None``."""
    return None if n_classes is None else check_positive_int(n_classes, "n_classes")


def check_probs(probs: Any, name: str = "probs") -> np.ndarray:
    """``probs`` as a float64 ``(N, C)`` array of probabilities: finite, in ``[0, 1]``, rows
    summing to 1 within ``ROW_SUM_TOL``; raises ``TypeError``/``ValueError`` naming ``name``."""
    a = np.asarray(probs)
    if a.dtype == bool or a.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must hold real probabilities, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"`{name}` must be (N, C) class probabilities, got shape {a.shape}")
    a = a.astype(np.float64)
    check_finite(a, name)
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        raise ValueError(
            f"`{name}` must be probabilities in [0, 1], got values in [{a.min():g}, {a.max():g}]"
            " (apply a softmax to logits first)"
        )
    if a.shape[0]:
        err = np.abs(a.sum(axis=1) - 1.0)
        if err.max() > ROW_SUM_TOL:
            row = int(err.argmax())
            raise ValueError(
                f"`{name}` rows must sum to 1 (within {ROW_SUM_TOL:g}), row {row} sums to "
                f"{a[row].sum():.9g} (apply a softmax to logits first)"
            )
    return a


def check_scored(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, probs)`` checked together: same length, labels below ``probs.shape[1]``."""
    p = check_probs(probs)
    y = check_labels(y_true, "y_true")
    if y.shape[0] != p.shape[0]:
        raise ValueError(
            f"`y_true` and `probs` must have the same length, got {y.shape[0]} labels and "
            f"{p.shape[0]} rows of probabilities"
        )
    return check_labels(y, "y_true", p.shape[1]), p
