"""The digits ResNet's BatchNorm variant (``norm=True``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.zoo import digits_resnet


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.fixture(scope="module")
def x():
    return jax.random.uniform(jax.random.key(3), (4, 8, 8, 1))


def random_stats(model, seed=1):
    """Non-trivial BatchNorm statistics and affine parameters."""
    k = jax.random.split(jax.random.key(seed), 3)

    def stat(path, a):
        if "var" in jax.tree_util.keystr(path):
            return jax.random.uniform(k[0], a.shape, minval=0.5, maxval=2.0)
        return 0.3 * jax.random.normal(k[1], a.shape)

    def param(path, a):
        s = jax.tree_util.keystr(path)
        return a + 0.3 * jax.random.normal(k[2], a.shape) if "bn" in s else a

    return model.replace(
        params=jax.tree_util.tree_map_with_path(param, model.params),
        state=jax.tree_util.tree_map_with_path(stat, model.state),
    )


def test_paths_and_state():
    m = digits_resnet(norm=True)
    bn = [p for p in m.layers if "bn" in p]
    assert bn == [
        "stem_bn",
        "stages.0.blocks.0.bn1",
        "stages.0.blocks.0.bn2",
        "stages.1.blocks.0.bn1",
        "stages.1.blocks.0.bn2",
        "stages.1.blocks.0.proj_bn",
        "stages.2.blocks.0.bn1",
        "stages.2.blocks.0.bn2",
        "stages.2.blocks.0.proj_bn",
    ]
    # Each BatchNorm comes right after the convolution it normalises.
    for p in bn:
        conv = {"stem_bn": "stem"}.get(p) or p.replace("proj_bn", "proj").replace("bn", "conv")
        assert m.layers.index(p) == m.layers.index(conv) + 1
    means = [
        a
        for path, a in jax.tree_util.tree_leaves_with_path(m.state)
        if "mean" in jax.tree_util.keystr(path)
    ]
    assert len(means) == 9 and all(np.all(np.asarray(a) == 0) for a in means)
    assert "bn1" in m.params["stages"][0]["blocks"][0]


def test_norm_off_unchanged(x):
    plain, off = digits_resnet(seed=2), digits_resnet(seed=2, norm=False)
    assert not jax.tree.leaves(off.state)
    np.testing.assert_array_equal(plain(x), off(x))
    assert "stem_bn" not in off.layers
    # Fresh statistics are (almost) the identity: the same kernels give the same logits.
    on = digits_resnet(seed=2, norm=True)
    assert rel_err(on(x), plain(x)) < 1e-4


def test_inference_mode_by_hand(x):
    m = random_stats(digits_resnet(norm=True))
    acts = m.activations(x, ["stem", "stem_bn"])[1]
    p, s = m.params["stem_bn"], m.state["stem_bn"]
    mean, var = np.asarray(s["mean"][...]), np.asarray(s["var"][...])
    want = (np.asarray(acts["stem"]) - mean) / np.sqrt(var + 1e-5) * np.asarray(p["scale"])
    want = want + np.asarray(p["bias"])
    assert rel_err(acts["stem_bn"], want) < 1e-5
    # Running averages: an example's output does not depend on the rest of the batch.
    assert rel_err(m(x)[:1], m(x[:1])) < 1e-5


def test_params_round_trip(x):
    m = digits_resnet(norm=True, seed=4)
    again = digits_resnet(m.params, norm=True)
    np.testing.assert_allclose(again(x), m(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="norm"):
        digits_resnet(norm="batch")


def test_jit_and_grad(x):
    m = random_stats(digits_resnet(norm=True))
    out = jax.jit(lambda m, x: m(x))(m, x)
    assert out.shape == (4, 10) and jnp.isfinite(out).all()
    g = jax.grad(lambda p: m.apply(p, x).sum())(m.params)
    assert jnp.isfinite(jax.flatten_util.ravel_pytree(g)[0]).all()
