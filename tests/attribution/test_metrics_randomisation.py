"""Model and data randomisation sanity checks (Adebayo et al. 2018)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import as_model
from visjax.attribution import saliency as _saliency
from visjax.attribution.metrics import data_randomisation, model_randomisation
from visjax.attribution.metrics.randomisation import parameter_groups, random_leaves
from visjax.attribution.metrics.similarity import spearman, ssim
from visjax.zoo import digits_resnet

D, H, C = 12, 5, 3
KEY = jax.random.key(7)
gradient = functools.partial(_saliency, absolute=False)  # the signed gradient


def _two_layer():
    """``f(x) = (x W1) W2``, named so that alphabetical order is not the forward order."""
    rng = np.random.default_rng(0)
    p = {
        "zin": {"w": jnp.asarray(rng.normal(size=(D, H)), jnp.float32)},
        "aout": {"w": jnp.asarray(rng.normal(size=(H, C)), jnp.float32)},
    }
    model = as_model(lambda p, x: (x @ p["zin"]["w"]) @ p["aout"]["w"], p, input_shape=(D,))
    x = jnp.asarray(rng.normal(size=(4, D)), jnp.float32)
    return model, x


def _rand(model, key=KEY, init="truncated_normal"):
    leaves = random_leaves(model.params, key, init)
    return jax.tree.unflatten(jax.tree.structure(model.params), leaves)


def test_linear_model_randomised_gradient_is_the_new_weights():
    rng = np.random.default_rng(1)
    p = {"fc": {"w": jnp.asarray(rng.normal(size=(D, C)), jnp.float32), "b": jnp.ones(C)}}
    model = as_model(lambda p, x: x @ p["fc"]["w"] + p["fc"]["b"], p, input_shape=(D,))
    x = jnp.asarray(rng.normal(size=(3, D)), jnp.float32)
    t = jnp.array([0, 2, 1])
    r = model_randomisation(model, x, t, gradient, key=KEY, similarity=("spearman",))
    new = _rand(model)["fc"]["w"]
    assert r.layers == ("fc",)
    np.testing.assert_allclose(r.original, p["fc"]["w"][:, t].T, rtol=1e-6)
    np.testing.assert_allclose(r.maps[0], new[:, t].T, rtol=1e-6)
    np.testing.assert_allclose(r.scores["spearman"][0], spearman(new[:, t].T, p["fc"]["w"][:, t].T))
    # the draw is a truncated normal scaled by the leaf's std
    assert float(jnp.max(jnp.abs(new))) <= 2 * float(jnp.std(p["fc"]["w"])) + 1e-6


@pytest.mark.parametrize("order", ["cascading", "independent"])
def test_two_layer_cascade_order_top_down(order):
    model, x = _two_layer()
    w1, w2 = model.params["zin"]["w"], model.params["aout"]["w"]
    rnd = _rand(model)
    r1, r2 = rnd["zin"]["w"], rnd["aout"]["w"]
    r = model_randomisation(model, x, 1, gradient, order=order, key=KEY, similarity=("spearman",))
    assert r.layers == ("aout", "zin")  # top (output) first, whatever the names' order
    want0 = w1 @ r2[:, 1]  # top layer randomised
    want1 = (r1 @ r2[:, 1]) if order == "cascading" else (r1 @ w2[:, 1])
    np.testing.assert_allclose(r.original, jnp.broadcast_to(w1 @ w2[:, 1], (4, D)), rtol=1e-5)
    np.testing.assert_allclose(r.maps[0], jnp.broadcast_to(want0, (4, D)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.maps[1], jnp.broadcast_to(want1, (4, D)), rtol=1e-5, atol=1e-6)
    assert r.scores["spearman"].shape == (2, 4)


def test_explicit_layers_globs_chunks_and_jit_agree():
    model, x = _two_layer()
    r = model_randomisation(
        model, x, 0, gradient, layers=["zin", "aout.*"], key=KEY, similarity="spearman"
    )
    assert r.layers == ("zin", "aout.*")
    base = model_randomisation(model, x, 0, gradient, key=KEY, similarity=("spearman_abs",))
    vm = model_randomisation(model, x, 0, gradient, key=KEY, similarity=("spearman_abs",), chunk=2)
    np.testing.assert_allclose(vm.maps, base.maps, rtol=1e-5, atol=1e-6)

    @jax.jit
    def f(m, x, key):
        out = model_randomisation(m, x, 0, gradient, key=key, similarity=("spearman_abs",))
        return out.maps, out.scores

    maps, scores = f(model, x, KEY)
    np.testing.assert_allclose(maps, base.maps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores["spearman_abs"], base.scores["spearman_abs"], rtol=1e-5)


def test_similarities_on_image_maps_match_the_functions():
    """NHWC maps: summed over channels; SSIM on |map| / max |map| with data_range 1."""
    rng = np.random.default_rng(2)
    w = jnp.asarray(rng.normal(size=(8, 8, 2)), jnp.float32)
    model = as_model(
        lambda p, x: jnp.stack([jnp.sum(x * p["w"], (1, 2, 3)), -jnp.sum(x, (1, 2, 3))], 1),
        {"w": w},
        input_shape=(8, 8, 2),
    )
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 2)), jnp.float32)
    r = model_randomisation(
        model,
        x,
        0,
        gradient,
        key=KEY,
        hog_kw={"pixels_per_cell": (2, 2), "cells_per_block": (2, 2)},
    )
    a, b = r.maps[0].sum(-1), r.original.sum(-1)
    np.testing.assert_allclose(r.scores["spearman"][0], spearman(a, b), rtol=1e-6)
    unit = lambda m: jnp.abs(m) / jnp.abs(m).max((1, 2), keepdims=True)  # noqa: E731
    np.testing.assert_allclose(
        r.scores["ssim"][0], ssim(unit(a), unit(b), data_range=1.0), rtol=1e-5
    )
    assert np.isfinite(np.asarray(r.scores["hog"])).all()


def test_digits_resnet_groups_run_top_down():
    m = digits_resnet(norm=True)
    groups = list(parameter_groups(m, jnp.zeros((1, 8, 8, 1))))
    assert groups[0] == "fc" and groups[-1] == "stem"
    assert groups.index("stem_bn") == len(groups) - 2
    assert groups.index("stages.2.blocks.0.bn2") < groups.index("stages.2.blocks.0.conv2")


def test_data_randomisation_with_a_least_squares_train_fn():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(40, D)), jnp.float32)
    y = jnp.asarray(rng.integers(0, C, 40))

    def train_fn(params, x, y):
        w = jnp.linalg.lstsq(x, jax.nn.one_hot(y, C))[0]
        return {"w": w}

    model = as_model(lambda p, x: x @ p["w"], train_fn(None, x, y), input_shape=(D,))
    r = data_randomisation(
        model,
        x,
        y,
        2,
        gradient,
        train_fn=train_fn,
        key=KEY,
        explain=x[:3],
        similarity=("spearman",),
    )
    want = train_fn(None, x, jax.random.permutation(KEY, y))["w"][:, 2]
    np.testing.assert_allclose(r.maps, jnp.broadcast_to(want, (3, D)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r.original, jnp.broadcast_to(model.params["w"][:, 2], (3, D)))
    assert r.scores["spearman"].shape == (3,)


def test_bad_input():
    model, x = _two_layer()
    with pytest.raises(ValueError, match=r"'nope'.*\['aout', 'zin'\]"):
        model_randomisation(model, x, 0, gradient, layers=["nope"], key=KEY)
    with pytest.raises(ValueError, match="`order`"):
        model_randomisation(model, x, 0, gradient, order="random", key=KEY)
    with pytest.raises(ValueError, match="`similarity`"):
        model_randomisation(model, x, 0, gradient, key=KEY, similarity=("pearson",))
    with pytest.raises(TypeError, match="`key`"):
        model_randomisation(model, x, 0, gradient, key=0)
    with pytest.raises(TypeError, match="`method`"):
        model_randomisation(model, x, 0, "gradient", key=KEY)
    with pytest.raises(ValueError, match="2-D maps"):  # (N, D) maps: no SSIM
        model_randomisation(model, x, 0, gradient, key=KEY, similarity=("ssim",))

    def nan_when_randomised(m, x, t):
        g = gradient(m, x, t)
        return jnp.where(jnp.abs(m.params["zin"]["w"][0, 0] - 0.12573022) < 1e-6, g, jnp.nan)

    with pytest.raises(ValueError, match=r"NaN or Inf for: randomised aout, zin$"):
        model_randomisation(model, x, 0, nan_when_randomised, key=KEY, similarity=("spearman",))
    with pytest.raises(ValueError, match="NaN or Inf"):
        model_randomisation(
            model,
            x,
            0,
            lambda m, x, t: gradient(m, x, t) * jnp.nan,
            key=KEY,
            similarity=("spearman",),
        )
    with pytest.raises(ValueError, match="hog_kw"):
        img = as_model(
            lambda p, x: x.sum((1, 2, 3))[:, None] * p, jnp.ones(2), input_shape=(8, 8, 1)
        )
        model_randomisation(img, jnp.ones((1, 8, 8, 1)), 0, gradient, key=KEY, similarity=("hog",))


def test_partial_method_is_accepted():
    model, x = _two_layer()
    r = model_randomisation(model, x, 0, _saliency, key=KEY, similarity=("spearman",))
    assert r.maps.shape == (2, 4, D)


def test_data_randomisation_arguments_are_checked_by_name():
    model, x = _two_layer()
    y = jnp.arange(4) % C

    def keep(p, x, y):
        return p

    def run(**kw):
        args = {"x": x, "y": y, "train_fn": keep, "key": KEY, "similarity": ("spearman",)}
        args.update(kw)
        return data_randomisation(model, args.pop("x"), args.pop("y"), 0, gradient, **args)

    with pytest.raises(TypeError, match="`x`"):
        run(x=None, explain=x)
    with pytest.raises(ValueError, match="`x` contains NaN"):
        run(x=x.at[1, 2].set(jnp.inf), explain=x)
    with pytest.raises(ValueError, match="`y` contains NaN"):
        run(y=jnp.array([0.0, 1.0, jnp.nan, 2.0]))
    with pytest.raises(ValueError, match="`y` must have one label"):
        run(y=y[:3])
    with pytest.raises(ValueError, match="`explain` contains NaN"):
        run(explain=jnp.full((2, D), jnp.nan))
    empty = run(explain=jnp.zeros((0, D)))
    assert empty.maps.shape == (0, D) and empty.scores["spearman"].shape == (0,)


def test_model_randomisation_empty_batch_and_list_kwargs():
    model, x = _two_layer()
    r = model_randomisation(model, x[:0], 0, gradient, key=KEY, similarity=("spearman",))
    assert r.layers == ("aout", "zin") and r.maps.shape == (2, 0, D)
    assert r.original.shape == (0, D) and r.scores["spearman"].shape == (2, 0)
    img = as_model(lambda p, x: x.sum((1, 2, 3))[:, None] * p, jnp.ones(2), input_shape=(8, 8, 1))
    xi = jax.random.uniform(KEY, (1, 8, 8, 1))
    hog_kw = {"pixels_per_cell": [2, 2], "cells_per_block": [2, 2]}  # lists: hashed as tuples
    r = model_randomisation(img, xi, 0, gradient, key=KEY, similarity=("hog",), hog_kw=hog_kw)
    assert r.scores["hog"].shape == (1, 1)
