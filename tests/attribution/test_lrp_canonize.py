"""merge_batchnorm: inference BatchNorms folded into the preceding conv/dense layer."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.zoo.test_resnet_bn import random_stats, rel_err
from visjax import as_model, tag
from visjax.attribution.lrp.canonize import merge_batchnorm
from visjax.zoo import digits_cnn, digits_resnet


@pytest.fixture(scope="module")
def x():
    return jax.random.uniform(jax.random.key(3), (5, 8, 8, 1))


@pytest.fixture(scope="module")
def resnet():
    return random_stats(digits_resnet(norm=True, seed=1))


def test_resnet_outputs_equal(resnet, x):
    merged = merge_batchnorm(resnet)
    assert merged.layers == resnet.layers
    assert rel_err(merged(x), resnet(x)) < 1e-5
    # The BatchNorms are identities now; the convolutions' outputs carry the normalisation.
    before = resnet.activations(x, ["stages.1.blocks.0.bn2"])[1]["stages.1.blocks.0.bn2"]
    after = merged.activations(x, ["stages.1.blocks.0.conv2"])[1]["stages.1.blocks.0.conv2"]
    assert rel_err(after, before) < 1e-5
    # Idempotent up to rounding.
    assert rel_err(merge_batchnorm(merged)(x), resnet(x)) < 1e-5


def test_resnet_kernels_numpy(resnet):
    merged = merge_batchnorm(resnet)
    blk, new = resnet.params["stages"][1]["blocks"][0], merged.params["stages"][1]["blocks"][0]
    st = resnet.state["stages"][1]["blocks"][0]
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2"), ("proj", "proj_bn")):
        mean = np.asarray(st[bn]["mean"][...], np.float64)
        var = np.asarray(st[bn]["var"][...], np.float64)
        gamma = np.asarray(blk[bn]["scale"], np.float64)
        beta = np.asarray(blk[bn]["bias"], np.float64)
        s = gamma / np.sqrt(var + 1e-5)
        w = np.asarray(blk[conv]["kernel"], np.float64)
        b = np.asarray(blk[conv]["bias"], np.float64)
        np.testing.assert_allclose(new[conv]["kernel"], w * s, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(new[conv]["bias"], (b - mean) * s + beta, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(new[bn]["scale"], 1.0)
        np.testing.assert_array_equal(new[bn]["bias"], 0.0)
        nst = merged.state["stages"][1]["blocks"][0][bn]
        np.testing.assert_array_equal(nst["mean"][...], 0.0)
        np.testing.assert_allclose(nst["var"][...], 1.0 - 1e-5, rtol=1e-7)


def test_no_batchnorm_unchanged(x):
    m = digits_resnet()
    assert merge_batchnorm(m) is m


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Conv(4, (3, 3))(x)
        h = nn.BatchNorm(use_running_average=True, epsilon=1e-3)(h)
        h = nn.relu(h)
        h = nn.BatchNorm(use_running_average=True)(h)  # after a ReLU: left alone
        h = nn.Dense(3)(h.reshape(h.shape[0], -1))
        return nn.BatchNorm(use_running_average=True)(h)


def randomize_linen(variables, seed=0):
    k = jax.random.split(jax.random.key(seed), 2)

    def one(path, a):
        s = jax.tree_util.keystr(path)
        if "var" in s:
            return jax.random.uniform(k[0], a.shape, minval=0.5, maxval=2.0)
        if "mean" in s or "BatchNorm" in s:
            return a + 0.3 * jax.random.normal(k[1], a.shape)
        return a

    return jax.tree_util.tree_map_with_path(one, variables)


def test_linen(x):
    net = LinenNet()
    variables = randomize_linen(net.init(jax.random.key(0), x[:1]))
    m = as_model(net, variables, input_shape=(8, 8, 1))
    merged = merge_batchnorm(m)
    assert rel_err(merged(x), m(x)) < 1e-5
    # The BatchNorm after the ReLU keeps its statistics; the other two are identities.
    np.testing.assert_array_equal(
        merged.state["batch_stats"]["BatchNorm_1"]["mean"],
        m.state["batch_stats"]["BatchNorm_1"]["mean"],
    )
    for bn in ("BatchNorm_0", "BatchNorm_2"):
        np.testing.assert_array_equal(merged.state["batch_stats"][bn]["mean"], 0.0)
    s = np.asarray(m.params["BatchNorm_0"]["scale"], np.float64) / np.sqrt(
        np.asarray(m.state["batch_stats"]["BatchNorm_0"]["var"], np.float64) + 1e-3
    )
    np.testing.assert_allclose(
        merged.params["Conv_0"]["kernel"],
        np.asarray(m.params["Conv_0"]["kernel"], np.float64) * s,
        rtol=1e-5,
        atol=1e-7,
    )


def test_nnx_linear_no_bias(x):
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(64, 6, use_bias=False, rngs=rngs)
            self.bn = nnx.BatchNorm(6, rngs=rngs)

        def __call__(self, x):
            return self.bn(self.fc(x.reshape(x.shape[0], -1)))

    net = Net(nnx.Rngs(0))
    net.bn.mean[...] = jnp.linspace(-1.0, 1.0, 6)
    net.bn.var[...] = jnp.linspace(0.5, 2.0, 6)
    net.bn.scale[...] = jnp.linspace(0.5, 1.5, 6)
    net.bn.bias[...] = jnp.linspace(-0.2, 0.3, 6)
    m = as_model(net, input_shape=(8, 8, 1))
    merged = merge_batchnorm(m)
    assert rel_err(merged(x), m(x)) < 1e-5
    # No bias on the layer: the shift stays in the BatchNorm's bias.
    np.testing.assert_array_equal(merged.params["bn"]["scale"], 1.0)
    assert np.abs(np.asarray(merged.params["bn"]["bias"])).max() > 0.1


def test_plain_function_not_recognised(x):
    m = digits_cnn("function")
    assert merge_batchnorm(m) is m
    p = {"w": jnp.ones((64, 2)), "mean": jnp.ones(2), "var": jnp.ones(2)}
    f = as_model(
        lambda p, x: tag(x.reshape(len(x), -1) @ p["w"] - p["mean"], "h"), p, input_shape=(8, 8, 1)
    )
    assert merge_batchnorm(f) is f


def test_under_jit(resnet, x):
    merged = jax.jit(lambda m, x: merge_batchnorm(m, x=x)(x))(resnet, x)
    assert rel_err(merged, resnet(x)) < 1e-5


def test_merge_cached_per_model(resnet, x, monkeypatch):
    """The second merge of the same arrays is a lookup: same merged arrays, no new search."""
    from visjax.attribution.lrp import canonize

    first = merge_batchnorm(resnet, x=x)
    calls = []
    monkeypatch.setattr(canonize, "_find_pairs", lambda *a: calls.append(a) or [])
    again = merge_batchnorm(resnet, x=x)
    assert calls == []
    for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(again.params), strict=True):
        assert a is b
    # New parameter arrays: merged again (the pairs still come from the cache).
    fresh = resnet.replace(params=jax.tree.map(lambda a: a + 0.0, resnet.params))
    merged = merge_batchnorm(fresh, x=x)
    assert calls == []
    assert rel_err(merged(x), resnet(x)) < 1e-5
    # Under jit the traced parameters are merged, not cached.
    out = jax.jit(lambda m: merge_batchnorm(m, x=x)(x))(resnet)
    assert rel_err(out, resnet(x)) < 1e-5
