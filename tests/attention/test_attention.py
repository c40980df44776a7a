"""visjax.attention: maps, rollout, flow and gradient rollout against hand-built references."""

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from flax import nnx

import visjax
from visjax.attention import (
    TaggedMultiHeadAttention,
    attention_flow,
    attention_layers,
    attention_maps,
    attention_rollout,
    attention_rollout_matrix,
    gradient_rollout,
    rollout,
    rollout_row,
)
from visjax.attention.flow import flows_from_class_token
from visjax.attention.rollout import discard_lowest
from visjax.zoo import digits_vit

T, H = 5, 2


def _fixed_attention_model(logits0, logits1):
    """A plain function whose two attention layers are softmaxes of fixed logits (params),
    shifted by nothing that depends on x, so the weights are known exactly."""

    def apply(p, x):
        n = x.shape[0]
        z = x.sum(axis=(1,), keepdims=True)[:, :, None, None] * 0.0
        a0 = visjax.tag(jax.nn.softmax(p["l0"][None] + z, -1), "b0.attn_weights")
        a1 = visjax.tag(jax.nn.softmax(p["l1"][None] + z, -1), "b1.attn_weights")
        h = jnp.einsum("nhij,nj->ni", a1, jnp.einsum("nhij,nj->ni", a0, x))
        return jnp.stack([h.sum(-1), h[:, 0]], -1).reshape(n, 2)

    params = {"l0": jnp.asarray(logits0), "l1": jnp.asarray(logits1)}
    return visjax.as_model(apply, params, input_shape=(T,))


@pytest.fixture(scope="module")
def fixed():
    rng = np.random.default_rng(0)
    l0, l1 = rng.normal(size=(H, T, T)) * 2, rng.normal(size=(H, T, T)) * 2
    a0 = np.exp(l0) / np.exp(l0).sum(-1, keepdims=True)
    a1 = np.exp(l1) / np.exp(l1).sum(-1, keepdims=True)
    return _fixed_attention_model(l0.astype(np.float32), l1.astype(np.float32)), a0, a1


def _np_rollout(a0, a1, fuse):
    def hat(a):
        a = (getattr(np, fuse)(a, 0) + np.eye(T)) / 2
        return a / a.sum(-1, keepdims=True)

    return hat(a1) @ hat(a0)


@pytest.mark.parametrize("fuse", ["mean", "max", "min"])
def test_rollout_is_normalised_product(fixed, fuse):
    model, a0, a1 = fixed
    x = jnp.ones((3, T))
    want = _np_rollout(a0, a1, fuse)
    got = attention_rollout_matrix(model, x, head_fusion=fuse)
    np.testing.assert_allclose(got, np.broadcast_to(want, (3, T, T)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(attention_rollout(model, x, head_fusion=fuse)[0], want[0, 1:], 1e-5)
    np.testing.assert_allclose(got.sum(-1), 1, rtol=1e-5)


def test_maps_are_the_tagged_weights(fixed):
    model, a0, a1 = fixed
    got = attention_maps(model, jnp.ones((2, T)))
    assert got.shape == (2, 2, H, T, T)
    np.testing.assert_allclose(got[0, 0], a0, rtol=1e-5)
    np.testing.assert_allclose(got[1, 1], a1, rtol=1e-5)
    assert attention_layers(model) == ("b0.attn_weights", "b1.attn_weights")
    one = attention_maps(model, jnp.ones((2, T)), layers=["b1.attn_weights"])
    np.testing.assert_allclose(one[:, 0], got[:, 1])


def test_discard_keeps_class_token_and_drops_k_per_example():
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.uniform(size=(3, 6, 6)).astype(np.float32))
    out = np.asarray(discard_lowest(a, 0.5))
    np.testing.assert_array_equal(out[:, 0], a[:, 0])
    np.testing.assert_array_equal(out[:, :, 0], a[:, :, 0])
    for i in range(3):  # every example, not only the first (vit-explain's bug)
        block = np.asarray(a[i, 1:, 1:]).ravel()
        dropped = out[i, 1:, 1:].ravel() == 0
        assert dropped.sum() == 12  # floor(0.5 * 25)
        assert block[dropped].max() <= block[~dropped].min()


def test_discard_zero_is_plain_rollout(fixed):
    model, _, _ = fixed
    x = jnp.ones((2, T))
    np.testing.assert_allclose(
        attention_rollout(model, x, discard_ratio=0.0), attention_rollout(model, x), rtol=1e-6
    )
    assert not np.allclose(
        attention_rollout(model, x, discard_ratio=0.6), attention_rollout(model, x)
    )


def _networkx_flow(adjs):
    n_layers, t, _ = adjs.shape
    g = nx.DiGraph()
    for li in range(n_layers):
        for i in range(t):
            for j in range(t):
                if adjs[li, i, j] > 0:
                    g.add_edge((li + 1, i), (li, j), capacity=float(adjs[li, i, j]))
    return np.array([nx.maximum_flow_value(g, (n_layers, 0), (0, j)) for j in range(t)])


def test_flow_equals_networkx():
    rng = np.random.default_rng(2)
    w = rng.uniform(size=(3, 4, 4)) ** 3
    adjs = (w + np.eye(4)) / 2
    adjs /= adjs.sum(-1, keepdims=True)
    np.testing.assert_allclose(flows_from_class_token(adjs), _networkx_flow(adjs), atol=1e-6)


def test_flow_through_model(fixed):
    model, a0, a1 = fixed

    def hat(a):
        a = (a.mean(0) + np.eye(T)) / 2
        return a / a.sum(-1, keepdims=True)

    want = _networkx_flow(np.stack([hat(a0), hat(a1)]))[1:]
    got = attention_flow(model, jnp.ones((2, T)))
    np.testing.assert_allclose(got, np.broadcast_to(want, (2, T - 1)), atol=1e-5)
    np.testing.assert_allclose(jax.jit(attention_flow)(model, jnp.ones((2, T))), got)


def test_gradient_rollout_by_hand(fixed):
    model, _, _ = fixed
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, T)).astype(np.float32))
    names = ("b0.attn_weights", "b1.attn_weights")
    _, acts = model.activations(x, names)

    def score(d):
        return model.perturbed(x, d)[:, 1].sum()

    grads = jax.grad(score)({k: jnp.zeros_like(v) for k, v in acts.items()})
    r = np.broadcast_to(np.eye(T), (2, T, T))
    for k in names:
        cam = np.maximum(np.asarray(grads[k] * acts[k]), 0).mean(1)
        r = r + cam @ r
    np.testing.assert_allclose(gradient_rollout(model, x, 1), r[:, 0, 1:], rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def vit():
    return digits_vit(seed=2)


@pytest.fixture(scope="module")
def xs():
    return jax.random.uniform(jax.random.key(0), (3, 8, 8, 1))


@pytest.mark.parametrize(
    "fn",
    [
        lambda m, x, t: attention_maps(m, x),
        lambda m, x, t: attention_rollout(m, x, discard_ratio=0.3),
        lambda m, x, t: gradient_rollout(m, x, t),
    ],
    ids=["maps", "rollout", "gradient_rollout"],
)
def test_jit_batch_and_no_retrace(vit, xs, fn):
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return fn(m, x, t)

    t = jnp.arange(3)
    jitted = jax.jit(traced)
    out = jitted(vit, xs, t)
    np.testing.assert_allclose(out, fn(vit, xs, t), rtol=1e-5, atol=1e-6)
    singles = jnp.concatenate([fn(vit, xs[i : i + 1], t[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(out, singles, rtol=1e-5, atol=1e-6)
    new = vit.replace(params=jax.tree.map(lambda a: a * 0.9, vit.params))
    jitted(new, xs + 0.5, t[::-1]).block_until_ready()
    assert len(traces) == 1


@pytest.mark.parametrize("batch_size", [2, "auto"])
def test_chunks_agree(vit, xs, batch_size):
    np.testing.assert_allclose(
        attention_rollout(vit, xs, batch_size=batch_size), attention_rollout(vit, xs), rtol=1e-5
    )
    np.testing.assert_allclose(
        gradient_rollout(vit, xs, 2, batch_size=batch_size),
        gradient_rollout(vit, xs, 2),
        rtol=1e-5,
        atol=1e-7,
    )


def test_rollout_core_matches_method(vit, xs):
    maps = attention_maps(vit, xs)
    np.testing.assert_allclose(
        rollout(maps, "max", 0.2),
        attention_rollout_matrix(vit, xs, head_fusion="max", discard_ratio=0.2),
        rtol=1e-5,
    )


@pytest.mark.parametrize("fuse", ["mean", "min"])
def test_class_row_equals_the_matrix_row(vit, xs, fuse):
    """attention_rollout evaluates only row 0 (vector times each layer): the matrix's row."""
    maps = attention_maps(vit, xs)
    full = rollout(maps, fuse, 0.3)
    np.testing.assert_allclose(rollout_row(maps, fuse, 0.3), full[:, 0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        attention_rollout(vit, xs, head_fusion=fuse, discard_ratio=0.3),
        full[:, 0, 1:],
        rtol=1e-5,
        atol=1e-7,
    )


def test_layer_without_attention_lists_those_with(vit, xs):
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.attn_weights"):
        attention_maps(vit, xs, layers="blocks.0.mlp")
    with pytest.raises(ValueError, match="`layers`"):
        attention_rollout(vit, xs, layers=["nope"])
    assert attention_maps(vit, xs, layers="blocks.1").shape == (3, 1, 2, 17, 17)


def test_model_without_attention_explains_how_to_tag():
    m = visjax.as_model(lambda p, x: visjax.tag(x @ p, "fc"), jnp.eye(3), input_shape=(3,))
    with pytest.raises(ValueError, match="attn_weights"):
        attention_rollout(m, jnp.ones((2, 3)))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"head_fusion": "median"}, "head_fusion"),
        ({"discard_ratio": 1.0}, "discard_ratio"),
        ({"discard_ratio": -0.1}, "discard_ratio"),
        ({"discard_ratio": "0.5"}, "discard_ratio"),
        ({"batch_size": 0}, "batch_size"),
        ({"layers": 3}, "layers"),
    ],
)
def test_bad_arguments(vit, xs, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        attention_rollout(vit, xs, **kwargs)


def test_bad_x_and_target(vit, xs):
    with pytest.raises(ValueError, match="`x`"):
        attention_maps(vit, xs.at[0, 0, 0, 0].set(jnp.nan))
    with pytest.raises((ValueError, TypeError), match="`x`"):
        attention_rollout(vit, jnp.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="`target`"):
        gradient_rollout(vit, xs, 10)
    with pytest.raises(TypeError, match="`target`"):
        gradient_rollout(vit, xs, 1.5)


def test_empty_batch(vit):
    x = jnp.zeros((0, 8, 8, 1))
    assert attention_maps(vit, x).shape == (0, 2, 2, 17, 17)
    assert attention_rollout(vit, x).shape == (0, 16)
    assert attention_flow(vit, x).shape == (0, 16)
    assert gradient_rollout(vit, x, 1).shape == (0, 16)


def test_tagged_multi_head_attention_is_drop_in():
    kw = dict(num_heads=2, in_features=8, decode=False)
    plain = nnx.MultiHeadAttention(**kw, rngs=nnx.Rngs(0))
    tagged = TaggedMultiHeadAttention(**kw, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 5, 8))
    np.testing.assert_allclose(tagged(x), plain(x), rtol=1e-5, atol=1e-6)
    m = visjax.as_model(tagged, input_shape=(5, 8))
    maps = attention_maps(m, x)
    assert maps.shape == (2, 1, 2, 5, 5)
    np.testing.assert_allclose(maps.sum(-1), 1, rtol=1e-5)
