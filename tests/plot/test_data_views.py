import numpy as np
import pytest
from matplotlib.figure import Figure

from visjax.plot import class_balance, class_samples, pixel_statistics


def test_class_samples_rows_per_class(tmp_path):
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 0, 2, 0])
    fig = class_samples(rng.random((8, 6, 6, 3)), y, n_per_class=3, class_names=["a", "b", "c"])
    assert isinstance(fig, Figure) and len(fig.axes) == 9
    assert [fig.axes[3 * c].get_ylabel() for c in range(3)] == ["a (4)", "b (2)", "c (2)"]
    assert [len(ax.get_images()) for ax in fig.axes] == [1, 1, 1, 1, 1, 0, 1, 1, 0]
    np.testing.assert_allclose(fig.axes[1].get_images()[0].get_array().shape, (6, 6, 3))
    fig.savefig(tmp_path / "samples.png")
    with pytest.raises(ValueError, match="`labels`"):
        class_samples(np.zeros((2, 4, 4)), [0])
    with pytest.raises(ValueError, match="`n_per_class`"):
        class_samples(np.zeros((2, 4, 4)), [0, 1], n_per_class=0)


def test_class_balance_counts_one_split_and_two():
    fig = class_balance([0, 2, 2, 2], class_names=["x", "y", "z"])
    ax = fig.axes[0]
    assert [b.get_height() for b in ax.containers[0]] == [1, 0, 3]
    assert [t.get_text() for t in ax.texts] == ["1", "0", "3"]
    fig = class_balance({"train": [0, 1, 1], "test": [1]}, n_classes=3)
    ax = fig.axes[0]
    assert len(ax.containers) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]
    assert [b.get_height() for b in ax.containers[1]] == [0, 1, 0]
    with pytest.raises(ValueError, match="labels must be < 2"):
        class_balance([0, 2], n_classes=2)
    with pytest.raises(ValueError, match="`labels"):
        class_balance([0.5, 1.0])


def test_pixel_statistics_mean_std_and_histograms(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((10, 4, 4, 3)) * np.array([1.0, 2.0, 3.0])
    x[0, 0, 0, 0] = np.nan  # left out
    fig = pixel_statistics(x, bins=20)
    stats, hist = fig.axes
    heights = [b.get_height() for b in stats.patches]
    np.testing.assert_allclose(heights, np.nanmean(x.reshape(-1, 3), axis=0))
    assert len(hist.patches) == 3  # one step histogram per channel
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["R", "G", "B"]
    fig.savefig(tmp_path / "pixels.png")
    one = pixel_statistics(np.zeros((2, 3, 3)), channel_names=["grey"])
    assert [t.get_text() for t in one.axes[0].get_xticklabels()] == ["grey"]
    with pytest.raises(ValueError, match="`channel_names`"):
        pixel_statistics(x, channel_names=["a"])
    with pytest.raises(ValueError, match="`images`"):
        pixel_statistics(np.zeros(4))
