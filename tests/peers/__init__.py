"""Comparisons with the PyTorch peer libraries (marker ``peers``; `make test-peers`)."""

import numpy as np


def rel_err(got, want) -> float:
    """max |got - want| / max |want| (float64), after checking the shapes agree."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.abs(got - want).max() / np.abs(want).max())
