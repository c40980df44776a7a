import numpy as np
import pytest

from tests.evaluation.conftest import random_probs
from visjax.evaluation import calibration_bins, expected_calibration_error


def _by_hand(y, p, n_bins):
    conf, pred = p.max(1), p.argmax(1)
    acc, mean_conf, count = [], [], []
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        count.append(int(inside.sum()))
        acc.append((pred[inside] == y[inside]).mean() if inside.any() else np.nan)
        mean_conf.append(conf[inside].mean() if inside.any() else np.nan)
    ece = sum(c / len(y) * abs(a - m) for a, m, c in zip(acc, mean_conf, count, strict=True) if c)
    return np.array(acc), np.array(mean_conf), np.array(count), ece


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_bins_and_ece_equal_a_hand_computation(scored, n_bins):
    y, p = scored
    bins = calibration_bins(y, p, n_bins=n_bins)
    acc, conf, count, ece = _by_hand(y, p, n_bins)
    np.testing.assert_array_equal(bins.count, count)
    np.testing.assert_allclose(bins.accuracy, acc, rtol=0, atol=1e-9)
    np.testing.assert_allclose(bins.confidence, conf, rtol=0, atol=1e-9)
    np.testing.assert_allclose(bins.edges, np.linspace(0, 1, n_bins + 1))
    assert expected_calibration_error(y, p, n_bins=n_bins) == pytest.approx(ece, abs=1e-9)


def test_bins_are_closed_on_the_right():
    # confidences exactly on an edge fall in the bin below it: (0.5, 0.6] holds 0.6
    p = np.array([[0.6, 0.4], [0.5, 0.5], [1.0, 0.0]])
    bins = calibration_bins([0, 0, 1], p, n_bins=10)
    assert bins.count.tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 1]
    assert bins.accuracy[9] == 0.0 and bins.confidence[9] == 1.0


def test_perfectly_calibrated_and_confidently_wrong():
    rng = np.random.default_rng(1)
    p = random_probs(rng, 40, 3)
    y = p.argmax(1)
    one_hot = np.eye(3)[y]
    assert expected_calibration_error(y, one_hot) == 0.0
    assert expected_calibration_error((y + 1) % 3, one_hot) == 1.0


def test_empty_and_bad_input():
    bins = calibration_bins(np.zeros(0, int), np.zeros((0, 3)), n_bins=4)
    assert bins.count.tolist() == [0] * 4 and np.isnan(bins.accuracy).all()
    assert np.isnan(expected_calibration_error(np.zeros(0, int), np.zeros((0, 3))))
    with pytest.raises(ValueError, match="`n_bins`"):
        expected_calibration_error([0], [[1.0, 0.0]], n_bins=0)
    with pytest.raises(ValueError, match="`probs` rows must sum to 1"):
        expected_calibration_error([0], [[0.5, 0.0]])
    with pytest.raises(ValueError, match="`y_true` and `probs`"):
        calibration_bins([0, 1], [[1.0, 0.0]])
