import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.zoo.shapes import (
    SHAPE_CLASSES,
    init_params,
    load_shapes,
    shapes_cnn,
    trained_shapes_cnn,
)
from visjax.zoo.train import evaluate

# Squared grey-level differences: pixel noise alone stays under 0.0015 (2 x 0.04^2 / 3 plus
# clipping), the weakest edge of a pattern class (contrast 0.25) gives 0.016 or more.
FLAT, EDGE = 0.003, 0.01


@pytest.fixture(scope="module")
def shapes():
    return load_shapes(n_per_class=60, seed=1)


@pytest.fixture(scope="module")
def by_class(shapes):
    x = np.concatenate([shapes.train.x, shapes.test.x])
    y = np.concatenate([shapes.train.y, shapes.test.y])
    return {name: x[y == c] for c, name in enumerate(SHAPE_CLASSES)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("shapes-cache")
    return cache, trained_shapes_cnn(form="function", cache=cache)


def step_energy(x, dr, dc):
    """Mean squared grey-level difference between pixels ``(dr, dc)`` apart, per image."""
    g = x.mean(-1)
    h, w = g.shape[1:]
    a = g[:, max(dr, 0) : h + min(dr, 0), max(dc, 0) : w + min(dc, 0)]
    b = g[:, max(-dr, 0) : h + min(-dr, 0), max(-dc, 0) : w + min(-dc, 0)]
    return ((a - b) ** 2).mean(axis=(1, 2))


def test_deterministic_for_a_seed():
    a, b = load_shapes(n_per_class=10, seed=5), load_shapes(n_per_class=10, seed=5)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.train.x, load_shapes(n_per_class=10, seed=6).train.x)


def test_shapes_dtypes_range_and_balance(shapes):
    assert shapes.train.x.shape == (360, 16, 16, 3) and shapes.test.x.shape == (120, 16, 16, 3)
    assert shapes.train.x.dtype == np.float32 and shapes.train.y.dtype == np.int32
    for split in shapes[:2]:
        assert split.x.min() >= 0.0 and split.x.max() <= 1.0
    assert np.bincount(shapes.train.y).tolist() == [45] * 8
    assert np.bincount(shapes.test.y).tolist() == [15] * 8
    assert shapes.classes == SHAPE_CLASSES and shapes.num_classes == 8
    assert len(set(shapes.train.y[:16].tolist())) > 3  # shuffled, not sorted by class
    assert load_shapes(n_per_class=4, size=24).train.x.shape == (24, 24, 24, 3)


def test_stripes_vary_along_one_axis(by_class):
    for name, along in (("vertical stripes", 1), ("horizontal stripes", 0)):
        x = by_class[name]
        # Fourier energy of the grey image on the pure horizontal / vertical frequency axis.
        f = np.abs(np.fft.fft2(x.mean(-1) - x.mean(axis=(1, 2, 3))[:, None, None])) ** 2
        horizontal, vertical = f[:, 0, 1:].sum(-1), f[:, 1:, 0].sum(-1)
        ratio = horizontal / vertical if name == "vertical stripes" else vertical / horizontal
        assert ratio.min() > 50, name
        dr, dc = (1, 0) if along == 0 else (0, 1)
        assert step_energy(x, dr, dc).min() > EDGE, name
        assert step_energy(x, dc, dr).max() < FLAT, name


def test_checkerboard_and_diagonal(by_class):
    board, diag = by_class["checkerboard"], by_class["diagonal"]
    for step in ((1, 0), (0, 1), (1, 1), (1, -1)):  # the board changes along both axes
        assert step_energy(board, *step).min() > EDGE
    # One diagonal orientation: constant along row + col ("/"), changing across it.
    assert step_energy(diag, 1, -1).max() < FLAT
    for step in ((1, 0), (0, 1), (1, 1)):
        assert step_energy(diag, *step).min() > EDGE


def test_circle_is_a_disc_inside_the_image(by_class):
    rows, cols = np.mgrid[:16, :16]
    for img in by_class["circle"]:
        g = img.mean(-1)
        border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
        assert border.std() < 0.05  # the disc does not reach the border
        mask = np.abs(g - np.median(border)) > 0.125
        area = mask.sum()
        assert area >= np.pi * 2.5**2 * 0.7
        cy, cx = rows[mask].mean(), cols[mask].mean()
        radius = np.sqrt(area / np.pi)
        dist = np.hypot(rows - cy, cols - cx)
        assert dist[mask].max() < radius + 1.0  # nothing outside the disc
        assert mask[dist < radius - 1.0].all()  # no holes inside it


def test_colour_classes_and_pattern_colours(by_class):
    for k, name in enumerate(("red", "green", "blue")):
        mean = by_class[name].mean(axis=(1, 2))
        others = np.delete(mean, k, axis=1)
        assert mean[:, k].min() > 0.55 and others.max() < 0.25, name
        assert by_class[name].std(axis=(1, 2)).max() < 0.06, name  # solid, up to the noise
    for name in ("horizontal stripes", "vertical stripes", "checkerboard", "circle", "diagonal"):
        mean = by_class[name].mean(axis=(1, 2))
        assert (mean.max(1) - mean.min(1)).max() < 0.25, name  # never a saturated colour
        assert by_class[name].mean(-1).std(axis=(1, 2)).min() > 0.05, name  # has contrast


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_per_class": 1}, "n_per_class"),
        ({"n_per_class": 2.5}, "n_per_class"),
        ({"size": 4}, "size"),
        ({"seed": -1}, "seed"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"n_per_class": 2, "test_fraction": 0.1}, "test_fraction"),
    ],
)
def test_bad_data_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        load_shapes(**kwargs)


def test_model_layers_shapes_and_forms():
    params = init_params(jax.random.key(3))
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    models = {form: shapes_cnn(form, params) for form in ("nnx", "linen", "function")}
    want = {"conv1": (2, 16, 16, 16), "conv2": (2, 8, 8, 32), "conv3": (2, 8, 8, 32), "fc": (2, 8)}
    for form, m in models.items():
        assert m.layers == ("conv1", "conv2", "conv3", "fc"), form
        assert {k: v.shape for k, v in m.layer_shapes(x).items()} == want, form
    out = models["function"](x)
    for form in ("nnx", "linen"):
        np.testing.assert_allclose(models[form](x), out, rtol=1e-5, atol=1e-6)
    # Fresh parameters from a seed are the same in every form.
    fresh = [shapes_cnn(form, seed=4).params for form in ("nnx", "function")]
    for a, b in zip(*map(jax.tree.leaves, fresh), strict=True):
        np.testing.assert_array_equal(a, b)
    # Global average pooling: any image size, once the model is told.
    big = shapes_cnn("function", params, image_size=40)
    assert big(jnp.zeros((1, 40, 40, 3))).shape == (1, 8)
    assert shapes_cnn("nnx", params, image_size=None)(jnp.zeros((1, 24, 20, 3))).shape == (1, 8)
    with pytest.raises(ValueError, match="`x`"):
        models["function"](jnp.zeros((1, 40, 40, 3)))
    with pytest.raises(ValueError, match="`form`"):
        shapes_cnn("torch")
    with pytest.raises(ValueError, match="`image_size`"):
        shapes_cnn("function", image_size=0)


def test_training_reaches_97_percent(trained):
    _, result = trained
    assert not result.from_cache
    _, acc = evaluate(result.model, load_shapes().test)
    assert acc >= 0.97
    assert result.history.test_accuracy[-1] == pytest.approx(acc)
    assert result.history.train_loss[-1] < result.history.train_loss[0]


def test_second_call_loads_from_the_cache(trained):
    cache, first = trained
    second = trained_shapes_cnn(form="nnx", cache=cache)
    assert second.from_cache and second.model.kind == "nnx"
    assert second.history == first.history
    pairs = zip(*(jax.tree.leaves(r.model.params) for r in (first, second)), strict=True)
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
    x = load_shapes(n_per_class=4).test.x
    np.testing.assert_allclose(second.model(x), first.model(x), rtol=1e-5, atol=1e-5)
