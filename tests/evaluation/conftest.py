import numpy as np
import pytest


def random_probs(rng, n, c, *, sharp=2.0):
    logits = sharp * rng.normal(size=(n, c))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def scored():
    """Labels and probabilities where every class is present, correlated with the labels."""
    rng = np.random.default_rng(0)
    n, c = 300, 5
    y = np.concatenate([np.arange(c), rng.integers(0, c, n - c)])
    p = random_probs(rng, n, c)
    p[np.arange(n), y] += rng.random(n)  # informative but imperfect
    return y, p / p.sum(axis=1, keepdims=True)
