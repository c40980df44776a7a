"""LRP: conservation, jit/vmap agreement, layers, composites and bad input."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax.attribution as va
from visjax import as_model
from visjax.attribution.lrp import (
    AlphaBeta,
    Composite,
    Epsilon,
    ZPlus,
    epsilon_gamma_box,
    lrp,
    lrp_layers,
)
from visjax.model import tag
from visjax.zoo import digits_cnn

X = jax.random.uniform(jax.random.key(0), (3, 8, 8, 1))


def _mlp_params(bias: bool):
    k = jax.random.split(jax.random.key(1), 3)
    p = {
        "l1": {"kernel": jax.random.normal(k[0], (16, 12))},
        "l2": {"kernel": jax.random.normal(k[1], (12, 8))},
        "l3": {"kernel": jax.random.normal(k[2], (8, 4))},
    }
    if bias:
        for i, name in enumerate(p):
            p[name]["bias"] = 0.1 * jnp.arange(p[name]["kernel"].shape[1]) - 0.2 * i
    return p


def _mlp(params, x):
    h = x
    for name in ("l1", "l2", "l3"):
        h = h @ params[name]["kernel"]
        if "bias" in params[name]:
            h = h + params[name]["bias"]
        h = tag(h, name)
        if name != "l3":
            h = jax.nn.relu(h)
    return h


def test_zplus_conserves_exactly_without_bias():
    model = as_model(_mlp, _mlp_params(False), input_shape=(16,))
    x = jax.random.uniform(jax.random.key(2), (5, 16))
    comp = Composite({"dense": ZPlus()})
    layers = lrp_layers(model, x, 1, composite=comp)
    out = layers["l3"].sum(1)
    for name in ("l2", "l1", "input"):
        np.testing.assert_allclose(layers[name].reshape(5, -1).sum(1), out, rtol=1e-5)


def test_epsilon_leaks_only_through_bias_and_epsilon():
    """LRP-0 (ε=0): Σ R_in = Σ_j R_j (z_j − b_j) / z_j exactly; the documented leak."""
    params = _mlp_params(True)
    model = as_model(_mlp, params, input_shape=(16,))
    x = jax.random.uniform(jax.random.key(2), (5, 16))
    comp = Composite({"dense": Epsilon(0.0)})
    layers = lrp_layers(model, x, 2, composite=comp)
    # the first layer's leak: the bias share of its output relevance
    h = x @ params["l1"]["kernel"] + params["l1"]["bias"]
    r1 = layers["l1"]
    want = (r1 * (h - params["l1"]["bias"]) / h).sum(1)
    np.testing.assert_allclose(layers["input"].sum(1), want, rtol=1e-4)


@pytest.mark.parametrize("form", ["nnx", "linen"])
def test_forms_agree_and_conserve(form):
    model = digits_cnn(form, digits_cnn("function").params)
    r = lrp(model, X, 3)
    ref = lrp(digits_cnn("function"), X, 3)
    assert r.shape == X.shape
    np.testing.assert_allclose(r, ref, atol=1e-6)
    # zero biases in the fresh CNN: z+ / ε conserve the output relevance (1) up to ε
    np.testing.assert_allclose(r.sum((1, 2, 3)), 1.0, rtol=1e-3)


def test_batch_equals_single_and_jit():
    model = digits_cnn("function")
    full = lrp(model, X, jnp.array([1, 2, 3]))
    one = lrp(model, X[1:2], 2)
    np.testing.assert_allclose(full[1:2], one, atol=1e-6)
    jitted = jax.jit(lambda x: lrp(model, x, 3, composite="epsilon_alpha2_beta1"))(X)
    np.testing.assert_allclose(
        jitted, lrp(model, X, 3, composite="epsilon_alpha2_beta1"), atol=1e-6
    )


def test_layer_relevance_matches_lrp_layers():
    model = digits_cnn("function")
    layers = lrp_layers(model, X, 3, composite="epsilon_plus_flat")
    assert list(layers) == ["conv1", "conv2", "fc", "input"]
    np.testing.assert_allclose(lrp(model, X, 3, composite="epsilon_plus_flat"), layers["input"])
    at = va.at_layer(va.lrp, "conv2")(model, X, 3, composite="epsilon_plus_flat")
    np.testing.assert_allclose(at, layers["conv2"], atol=1e-6)
    np.testing.assert_allclose(lrp(model, X, 3, layer="conv2", composite="epsilon_plus_flat"), at)
    np.testing.assert_allclose(layers["fc"], jax.nn.one_hot(jnp.full(3, 3), 10))


def test_name_map_overrides_kind():
    model = digits_cnn("function")
    by_name = Composite({"conv": ZPlus(), "dense": Epsilon()}, names={"conv2": AlphaBeta(2, 1)})
    mixed = lrp(model, X, 3, composite=by_name)
    plain = lrp(model, X, 3, composite="epsilon_plus")
    assert not np.allclose(mixed, plain)


@pytest.mark.slow  # over 4 s on 2 cores (a Linen model's compile): make test-slow runs it
def test_maxpool_rules():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Conv(4, (3, 3), name="conv")(x))
            h = nn.max_pool(h, (2, 2), (2, 2))
            return nn.Dense(3, name="fc")(h.reshape(h.shape[0], -1))

    net = Net()
    model = as_model(net, net.init(jax.random.key(0), X[:1]), input_shape=(8, 8, 1))
    winner = lrp(model, X, 1, composite=Composite({"conv": ZPlus(), "dense": Epsilon()}))
    prop = lrp(
        model,
        X,
        1,
        composite=Composite({"conv": ZPlus(), "dense": Epsilon()}, maxpool="proportional"),
    )
    assert winner.shape == prop.shape == X.shape
    assert not np.allclose(winner, prop)


def test_gamma_box_needs_bounds():
    with pytest.raises(ValueError, match="low"):
        lrp(digits_cnn("function"), X, 3, composite="epsilon_gamma_box")
    r = lrp(digits_cnn("function"), X, 3, composite=epsilon_gamma_box(0.0, 1.0))
    assert np.isfinite(r).all()


@pytest.mark.parametrize(
    ("composite", "match"),
    [
        ("nope", "known presets"),
        (Composite({"conv": ZPlus()}), "no rule for the dense layer fc"),
        (Composite({"conv": ZPlus(), "dense": Epsilon()}, names={"conv9": ZPlus()}), "conv9"),
    ],
)
def test_bad_composites(composite, match):
    with pytest.raises(ValueError, match=match):
        lrp(digits_cnn("function"), X, 3, composite=composite)


def test_unknown_rule_and_kind_listed():
    with pytest.raises(ValueError, match="known rules"):
        Composite({"conv": "zz"})
    with pytest.raises(ValueError, match="known kinds"):
        Composite({"pool": "epsilon"})
    with pytest.raises(ValueError, match="alpha - beta"):
        AlphaBeta(2.0, 2.0)


def test_primitive_without_rule_refused_by_name():
    def softmaxed(params, x):
        h = tag(x @ params["w"], "l1")
        return jax.nn.softmax(h) * h

    model = as_model(softmaxed, {"w": jnp.ones((16, 4))}, input_shape=(16,))
    with pytest.raises(ValueError, match="primitive `"):
        lrp(model, jnp.ones((2, 16)), 1, composite=Composite({"dense": Epsilon()}))


@pytest.mark.slow  # the ResNet's compile takes over 4 s on 2 cores: make test-slow runs it
def test_batchnorm_resnet_merged_and_residuals_conserve():
    from visjax.zoo import digits_resnet

    layers = lrp_layers(digits_resnet(norm=True), X[:2], 3)
    # fresh BatchNorm statistics merge to zero biases: every stage and the input keep the
    # output relevance (1) up to the stabilisers; the residual sum splits it between the branches
    for name in ("stem", "stages.0", "stages.1", "stages.2", "input"):
        np.testing.assert_allclose(layers[name].reshape(2, -1).sum(1), 1.0, rtol=1e-3)


def test_functional_mean_stabilized_as_zennit_average_pool():
    """A mean's sum is stabilized with n·ε: Zennit's ε on the average pool's output (the mean).

    Four inputs of 1e-6 (sum 4e-6, ε = 1e-6): each gets 1e-6 / (4e-6 + 4·1e-6) = 0.125, not
    1e-6 / (4e-6 + 1e-6) = 0.2; a sum that is not a mean keeps ε.
    """
    x = jnp.full((1, 4), 1e-6)
    mean = as_model(lambda p, x: x.mean(axis=1, keepdims=True) * p, jnp.ones(()))
    total = as_model(lambda p, x: x.sum(axis=1, keepdims=True) * p, jnp.ones(()))
    np.testing.assert_allclose(va.lrp(mean, x, 0), 0.125, rtol=1e-5)
    np.testing.assert_allclose(va.lrp(total, x, 0), 0.2, rtol=1e-5)
