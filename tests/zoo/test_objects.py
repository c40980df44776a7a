import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.zoo.data import Split
from visjax.zoo.objects import (
    OBJECT_CLASSES,
    init_params,
    load_objects,
    make_objects,
    objects_cnn,
    trained_objects_cnn,
)
from visjax.zoo.train import evaluate


@pytest.fixture(scope="module")
def clean():
    """No pixel noise: masked pixels have the object's colour exactly."""
    return make_objects(40, seed=3, noise=0.0)


def test_shapes_dtypes_range_and_balance():
    d = make_objects(12, seed=1)
    assert d.x.shape == (60, 32, 32, 3) and d.x.dtype == np.float32
    assert d.y.shape == (60,) and d.y.dtype == np.int32
    assert d.mask.shape == (60, 32, 32) and d.mask.dtype == np.bool_
    assert d.x.min() >= 0.0 and d.x.max() <= 1.0
    assert np.bincount(d.y).tolist() == [12] * len(OBJECT_CLASSES)
    assert len(set(d.y[:10].tolist())) > 2  # shuffled, not sorted by class
    grey = make_objects(2, size=24, channels=1)
    assert grey.x.shape == (10, 24, 24, 1) and grey.mask.shape == (10, 24, 24)


def test_deterministic_for_a_seed():
    a, b = make_objects(5, seed=7), make_objects(5, seed=7)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.x, make_objects(5, seed=8).x)
    s, t = (
        load_objects(n_train_per_class=3, n_test_per_class=2),
        load_objects(n_train_per_class=3, n_test_per_class=2),
    )
    for u, v in zip(jax.tree.leaves(s), jax.tree.leaves(t), strict=True):
        np.testing.assert_array_equal(u, v)
    assert s.train.x.shape == (15, 32, 32, 3) and s.test.x.shape == (10, 32, 32, 3)
    assert not np.array_equal(s.train.x[:10], s.test.x)


def test_masks_cover_exactly_the_object_pixels(clean):
    for x, m in zip(clean.x, clean.mask, strict=True):
        colour = x[m][0]
        assert np.all(x[m] == colour)  # one flat colour over the mask
        np.testing.assert_array_equal(np.all(x == colour, axis=-1), m)  # and nowhere else


def test_masks_inside_bounds_and_sized(clean):
    m = clean.mask
    assert not m[:, 0].any() and not m[:, -1].any() and not m[:, :, 0].any()
    assert not m[:, :, -1].any()
    area = m.mean(axis=(1, 2))
    assert area.min() > 0.02 and area.max() < 0.3
    # one connected blob per image: its bounding box is at most 16 x 16 pixels
    rows, cols = m.any(axis=2), m.any(axis=1)
    assert (rows.sum(1) <= 16).all() and (cols.sum(1) <= 16).all()


def test_classes_differ_in_shape_not_in_clutter(clean):
    area = clean.mask.mean(axis=(1, 2))
    box = clean.mask.any(axis=2).sum(1) * clean.mask.any(axis=1).sum(1)
    fill = clean.mask.sum(axis=(1, 2)) / box
    by = {name: fill[clean.y == c] for c, name in enumerate(OBJECT_CLASSES)}
    assert by["square"].min() > 0.99  # a square fills its bounding box
    assert 0.6 < by["disc"].mean() < 0.9 and by["ring"].mean() < by["disc"].mean()
    assert by["triangle"].mean() < 0.65 and by["cross"].mean() < 0.65
    # the clutter outside the object is alike in every class (bright pixels off the mask)
    bright = ((clean.x.max(-1) > 0.55) & ~clean.mask).mean(axis=(1, 2))
    per_class = [bright[clean.y == c].mean() for c in range(len(OBJECT_CLASSES))]
    assert max(per_class) - min(per_class) < 0.02
    assert area.size == len(clean.y)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_per_class"):
        make_objects(0)
    with pytest.raises(ValueError, match="size"):
        make_objects(1, size=8)
    with pytest.raises(ValueError, match="noise"):
        make_objects(1, noise=-0.1)
    with pytest.raises(ValueError, match="distractors"):
        make_objects(1, distractors=(3, 1))


def test_forms_agree():
    params = init_params(jax.random.key(0))
    x = jnp.asarray(make_objects(1).x)
    out = [objects_cnn(f, params)(x) for f in ("nnx", "linen", "function")]
    for o in out[1:]:
        np.testing.assert_allclose(o, out[0], rtol=1e-5, atol=1e-5)
    m = objects_cnn("function")
    assert m.layers == ("conv1", "conv2", "conv3", "conv4", "fc")
    assert out[0].shape == (5, 5)


@pytest.mark.slow
def test_trained_cnn_learns_the_objects_and_is_cached(tmp_path):
    first = trained_objects_cnn(form="function", cache=tmp_path)
    assert not first.from_cache
    assert first.history.test_accuracy[-1] > 0.9
    again = trained_objects_cnn(form="function", cache=tmp_path)
    assert again.from_cache
    held_out = make_objects(40, seed=123)
    _, acc = evaluate(again.model, Split(held_out.x, held_out.y))
    assert acc > 0.85
