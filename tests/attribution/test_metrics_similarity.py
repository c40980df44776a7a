"""Similarity measures of the sanity checks against SciPy and scikit-image."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from skimage.feature import hog as sk_hog
from skimage.metrics import structural_similarity

from visjax.attribution.metrics.similarity import hog, hog_similarity, spearman, ssim


def _maps(seed, shape):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=shape).astype(np.float32)
    b = (0.6 * a + 0.4 * rng.normal(size=shape)).astype(np.float32)
    return a, b


@pytest.mark.parametrize("absolute", [False, True])
def test_spearman_equals_scipy_with_ties(absolute):
    a, b = _maps(0, (4, 6, 5, 2))
    a[0, :3] = 1.0  # ties
    b[1] = np.round(b[1])  # many ties
    got = np.asarray(spearman(a, b, absolute=absolute))
    f = np.abs if absolute else (lambda v: v)
    want = [spearmanr(f(a[i]).ravel(), f(b[i]).ravel()).statistic for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_spearman_constant_map_is_nan_as_scipy():
    a, b = _maps(1, (2, 10))
    a[1] = 3.0
    got = np.asarray(spearman(a, b))
    assert np.isfinite(got[0]) and np.isnan(got[1])


@pytest.mark.parametrize("data_range", [None, 2.5])
def test_ssim_equals_scikit_image(data_range):
    a, b = _maps(2, (3, 20, 17))
    a[2] += 5.0  # an offset: luminance term and float32 cancellation
    got = np.asarray(ssim(a, b, data_range=data_range))
    want = []
    for i in range(3):
        r = data_range
        if r is None:
            r = max(a[i].max(), b[i].max()) - min(a[i].min(), b[i].min())
        want.append(
            structural_similarity(a[i].astype(np.float64), b[i].astype(np.float64), data_range=r)
        )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ssim(a, a)), 1.0, rtol=1e-6)


def test_ssim_win_size_and_bad_input():
    a, b = _maps(3, (2, 9, 9))
    got = np.asarray(ssim(a, b, data_range=1.0, win_size=3))
    want = [structural_similarity(a[i], b[i], data_range=1.0, win_size=3) for i in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(a[:, :5], b[:, :5])
    with pytest.raises(ValueError, match="same shape"):
        ssim(a, b[:1])
    with pytest.raises(ValueError, match="odd"):
        ssim(a, b, win_size=4)


@pytest.mark.parametrize(
    ("kw", "shape"),
    [
        ({}, (2, 32, 28)),
        ({"pixels_per_cell": (4, 4), "cells_per_block": (2, 2), "orientations": 8}, (2, 17, 18)),
        ({"pixels_per_cell": (3, 5), "cells_per_block": (1, 2), "block_norm": "L1"}, (1, 12, 16)),
        ({"pixels_per_cell": (4, 4), "cells_per_block": (2, 2), "block_norm": "L2"}, (1, 16, 16)),
        ({"pixels_per_cell": (4, 4), "block_norm": "L1-sqrt"}, (1, 16, 16)),
    ],
)
def test_hog_features_and_similarity_equal_scikit_image(kw, shape):
    a, b = _maps(4, shape)
    feats = np.asarray(hog(a, **kw))
    for i in range(shape[0]):
        want = sk_hog(a[i].astype(np.float64), **kw)
        np.testing.assert_allclose(feats[i], want, rtol=1e-5, atol=1e-6)
    got = np.asarray(hog_similarity(a, b, **kw))
    want = [pearsonr(sk_hog(a[i], **kw), sk_hog(b[i], **kw)).statistic for i in range(shape[0])]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_hog_too_small_names_the_size():
    a, b = _maps(5, (1, 10, 10))
    with pytest.raises(ValueError, match="at least 24x24"):
        hog_similarity(a, b)
