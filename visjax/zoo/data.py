"""Datasets that ship offline: scikit-learn's digits as NHWC images."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.datasets import load_digits as sk_digits
from sklearn.model_selection import train_test_split


class Split(NamedTuple):
    """A labelled image set: ``x`` float32 ``(N, H, W, C)`` in [0, 1], ``y`` int32 ``(N,)``."""

    x: np.ndarray
    y: np.ndarray


class Digits(NamedTuple):
    """scikit-learn's 8x8 digits, split into ``train`` (1,347 images) and ``test`` (450)."""

    train: Split
    test: Split
    num_classes: int = 10


def load_digits() -> Digits:
    """scikit-learn's digits as NHWC float32 images in [0, 1] (pixel values / 16).

    The split is ``train_test_split(test_size=0.25, random_state=0, stratify=y)``: 1,347 training
    and 450 test images. Later experiments rely on exactly this split.

    Example:
      >>> d = load_digits()
      >>> d.train.x.shape, d.test.x.shape
      ((1347, 8, 8, 1), (450, 8, 8, 1))
    """
    bunch = sk_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return Digits(Split(x_tr, y_tr), Split(x_te, y_te))
