import io

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox

from visjax.plot.embed import embedding_scatter, embedding_thumbnails


def _render(fig):
    fig.savefig(io.BytesIO(), format="png", dpi=30)


def _boxes(ax):
    return [a for a in ax.artists if isinstance(a, AnnotationBbox)]


def test_scatter_one_colour_per_class_with_names():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(30, 2))
    labels = np.arange(30) % 3
    fig = embedding_scatter(e, labels, names=["zero", "one", "two"], title="t")
    _render(fig)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "t"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["zero", "one", "two"]
    assert [len(c.get_offsets()) for c in ax.collections] == [10, 10, 10]
    colours = {mcolors.to_hex(c.get_facecolor()[0]) for c in ax.collections}
    assert len(colours) == 3


def test_scatter_leaves_out_non_finite_points():
    e = np.array([[0.0, 0.0], [1.0, np.nan], [2.0, 1.0], [np.inf, 0.0]])
    fig = embedding_scatter(e, np.array(["a", "b", "a", "b"]))
    _render(fig)
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2
    assert ax.get_legend().get_title().get_text() == "2 non-finite left out"
    fig = embedding_scatter(e)  # no labels: one colour, no legend
    _render(fig)
    assert fig.axes[0].get_legend() is None
    assert len(fig.axes[0].collections[0].get_offsets()) == 2
    _render(embedding_scatter(np.full((3, 2), np.nan), [0, 1, 2]))  # all non-finite: no crash


def test_scatter_draws_on_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert embedding_scatter(np.zeros((4, 2)), [0, 1, 0, 1], ax=ax) is fig


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((4, 3)),), {}, "`embedding`"),
        ((np.zeros((0, 2)),), {}, "`embedding`"),
        ((np.zeros((4, 2)), [0, 1]), {}, "`labels`"),
        ((np.zeros((4, 2)), [0, 1, 2, 3]), {"names": ["a"]}, "`names`"),
        ((np.zeros((4, 2)), list("abcd")), {"names": ["a"]}, "`names`"),
        ((np.zeros((4, 2)),), {"names": ["a"]}, "`names`"),
    ],
)
def test_scatter_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        embedding_scatter(*args, **kwargs)


def test_thumbnails_subsample_deterministically_and_skip_overlaps():
    rng = np.random.default_rng(0)
    e = rng.uniform(size=(200, 2))
    images = rng.uniform(size=(200, 8, 8))
    fig = embedding_thumbnails(e, images, max_images=15)
    _render(fig)
    boxes = _boxes(fig.axes[0])
    assert len(boxes) == 15
    again = _boxes(embedding_thumbnails(e, images, max_images=15).axes[0])
    assert [b.xy for b in boxes] == [b.xy for b in again]  # same seed, same picture
    other = _boxes(embedding_thumbnails(e, images, max_images=15, seed=1).axes[0])
    assert [b.xy for b in boxes] != [b.xy for b in other]

    # with a large minimum distance, no two drawn points are closer than it
    boxes = _boxes(embedding_thumbnails(e, images, min_distance=0.2).axes[0])
    xy = np.array([b.xy for b in boxes])
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(xy)) * 9
    assert 3 <= len(xy) < 200 and d.min() >= 0.2


def test_thumbnails_greyscale_rgb_and_non_finite():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(12, 2))
    e[3] = np.nan
    for images in (
        rng.uniform(size=(12, 6, 6)),
        rng.uniform(size=(12, 6, 6, 1)) * 16,  # scaled by each image's range
        rng.integers(0, 256, size=(12, 6, 6, 3), dtype=np.uint8),
    ):
        fig = embedding_thumbnails(e, images, min_distance=0.0, title="map")
        _render(fig)
        boxes = _boxes(fig.axes[0])
        assert len(boxes) == 11  # the NaN point is skipped
        pic = boxes[0].offsetbox.get_data()
        assert pic.shape[:2] == (6, 6) and 0 <= pic.min() and pic.max() <= 1
    assert fig.axes[0].get_title() == "map"


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        (np.zeros((5, 4, 4)), {}, "`images`"),
        (np.zeros((4, 4)), {}, "`images`"),
        (np.zeros((4, 4, 4, 2)), {}, "`images`"),
        (np.zeros((4, 4, 4)), {"max_images": 0}, "`max_images`"),
        (np.zeros((4, 4, 4)), {"min_distance": -1.0}, "`min_distance`"),
    ],
)
def test_thumbnails_bad_arguments(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        embedding_thumbnails(np.zeros((4, 2)), images, **kwargs)
