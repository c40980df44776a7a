"""AttnLRP (composite "attn_lrp"): conservation on the zoo ViT, a one-head attention by hand."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import as_model, tag
from visjax.attribution.lrp import attn_lrp, lrp, lrp_layers
from visjax.zoo import digits_vit

EPS = 1e-6


@functools.cache
def _vit():
    return digits_vit(seed=1)  # Flax's fresh weights: zero biases (Linear, Conv, LayerNorm)


def _x(n=2, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, 8, 8, 1))


def _total(r):
    return np.asarray(r, np.float64).reshape(r.shape[0], -1).sum(1)


def _softmax_leak(model, x, rel, b):
    """The relevance the softmax rule of block ``b`` leaves to its bias, by hand in NumPy."""
    p = f"blocks.{b}.attn"
    _, acts = model.activations(x, [f"{p}.query", f"{p}.key", f"{p}.attn_weights"])
    q, k = (np.asarray(acts[f"{p}.{n}"], np.float64) for n in ("query", "key"))
    a = np.asarray(acts[f"{p}.attn_weights"], np.float64)
    n, t, d = q.shape
    heads = a.shape[1]
    q = q.reshape(n, t, heads, -1).transpose(0, 2, 1, 3)
    k = k.reshape(n, t, heads, -1).transpose(0, 2, 1, 3)
    logits = q @ k.swapaxes(-1, -2) / np.sqrt(d // heads)
    r_a = np.asarray(rel[f"{p}.attn_weights"], np.float64)
    r_in = logits * (r_a - a * r_a.sum(-1, keepdims=True))
    return r_a.reshape(n, -1).sum(1) - r_in.reshape(n, -1).sum(1)


def _check_conservation(model, x, depth):
    rel = lrp_layers(model, x, 3, composite="attn_lrp")
    np.testing.assert_allclose(_total(rel["head"]), 1.0, atol=1e-6)
    np.testing.assert_allclose(_total(rel["norm"]), 1.0, atol=1e-3)  # the final layer norm
    np.testing.assert_allclose(_total(rel[f"blocks.{depth - 1}"]), 1.0, atol=1e-3)
    for b in range(depth):
        block_in = "embed" if b == 0 else f"blocks.{b - 1}"
        out = _total(rel[f"blocks.{b}"])
        leak = _softmax_leak(model, x, rel, b)
        np.testing.assert_allclose(_total(rel[block_in]) + leak, out, atol=1e-3)
        # the uniform rule: query and key get the same total, as attention weights and values
        np.testing.assert_allclose(
            _total(rel[f"blocks.{b}.attn.query"]), _total(rel[f"blocks.{b}.attn.key"]), atol=1e-4
        )
        np.testing.assert_allclose(
            _total(rel[f"blocks.{b}.attn.attn_weights"]),
            _total(rel[f"blocks.{b}.attn.value"]),
            atol=1e-4,
        )
    # the patch embedding (ε, zero bias) passes its relevance on to the pixels
    np.testing.assert_allclose(_total(rel["input"]), _total(rel["patch_embed"]), atol=1e-3)


def test_conservation_per_block_on_the_vit():
    _check_conservation(_vit(), _x(), 2)


def test_conservation_on_a_one_block_vit():
    _check_conservation(digits_vit(depth=1, dim=8, mlp_dim=8, seed=2), _x(1, seed=1), 1)


def _one_head(seed=0, t=4, d=3, c=2):
    ks = jax.random.split(jax.random.key(seed), 5)
    p = {
        n: jax.random.normal(k, s)
        for n, k, s in zip(
            ("wq", "wk", "wv", "wo"), ks, ((d, d), (d, d), (d, d), (d, c)), strict=False
        )
    }
    x = jax.random.normal(ks[4], (2, t, d))

    def apply(p, x):
        q, k, v = x @ p["wq"], x @ p["wk"], x @ p["wv"]
        a = tag(jax.nn.softmax(q @ k.swapaxes(-1, -2), axis=-1), "attn_weights")
        return (a @ v).sum(axis=1) @ p["wo"]

    return (
        as_model(apply, p, input_shape=(t, d)),
        {n: np.asarray(w, np.float64) for n, w in p.items()},
        x,
    )


def _s(z):
    return z + EPS * np.where(z >= 0, 1.0, -1.0)


def _by_hand(p, x, target):
    """AttnLRP for ``sum_t(softmax(q kᵀ) v) wo`` in NumPy, rule by rule."""
    q, k, v = x @ p["wq"], x @ p["wk"], x @ p["wv"]
    logits = q @ k.T
    e = np.exp(logits - logits.max(-1, keepdims=True))
    a = e / e.sum(-1, keepdims=True)
    h = a @ v
    s = h.sum(0)
    y = s @ p["wo"]
    r_s = s * p["wo"][:, target] / _s(y[target])  # ε on the output layer, one-hot relevance
    r_h = h * r_s / _s(s)  # the norm rule of the sum over tokens
    g = r_h / (2 * _s(h))  # A v: half each
    r_a, r_v = a * (g @ v.T), v * (a.T @ g)
    r_l = logits * (r_a - a * r_a.sum(-1, keepdims=True))  # softmax
    g = r_l / (2 * _s(logits))  # q kᵀ: half each
    r_q, r_k = q * (g @ k), k * (g.T @ q)
    return sum(
        x * ((r / _s(z)) @ w.T)
        for r, z, w in ((r_q, q, p["wq"]), (r_k, k, p["wk"]), (r_v, v, p["wv"]))
    )


def test_one_head_attention_equals_the_rules_by_hand():
    model, p, x = _one_head()
    got = np.asarray(lrp(model, x, 1, composite="attn_lrp"))
    want = np.stack([_by_hand(p, np.asarray(xi, np.float64), 1) for xi in x])
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())


def test_jit_and_batch_equal_single_examples():
    model, x = _vit(), _x(3)
    r = lrp(model, x, 3, composite="attn_lrp")
    jitted = jax.jit(lambda x: lrp(model, x, 3, composite="attn_lrp"))(x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(r), atol=1e-6)
    one = lrp(model, x[1:2], 3, composite="attn_lrp")
    np.testing.assert_allclose(np.asarray(one[0]), np.asarray(r[1]), atol=1e-5)


def test_layer_norm_rule_holds_the_statistics_constant():
    """A bias-free layer norm: R_in = x ⊙ Cᵀ(R / Cx) (the centring's ε rule, 1/std constant)."""

    def apply(p, x):
        mu = x.mean(-1, keepdims=True)
        h = tag((x - mu) / jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5), "ln")
        a = tag(jax.nn.softmax(h, axis=-1), "attn_weights")
        return (a * h) @ p

    w = jax.random.normal(jax.random.key(3), (5, 2))
    x = jax.random.normal(jax.random.key(4), (2, 5))
    model = as_model(apply, w, input_shape=(5,))
    r = lrp_layers(model, x, 0, composite=attn_lrp(norms=("ln",)))
    xs, r_ln = np.asarray(x, np.float64), np.asarray(r["ln"], np.float64)
    cx = xs - xs.mean(-1, keepdims=True)
    g = r_ln / _s(cx)
    want = xs * (g - g.mean(-1, keepdims=True))
    np.testing.assert_allclose(np.asarray(r["input"]), want, atol=1e-4 * np.abs(want).max())


def test_a_model_without_tagged_attention_is_refused():
    def untagged(p, x):
        q, k = x @ p, x @ p
        return (jax.nn.softmax(q @ k.swapaxes(-1, -2), axis=-1) @ x).sum(1)

    model = as_model(untagged, jnp.eye(3), input_shape=(4, 3))
    with pytest.raises(ValueError, match=r"no attention found.*attn_weights"):
        lrp(model, jnp.ones((1, 4, 3)), 0, composite="attn_lrp")

    def two(p, x):  # one softmax tagged, the other not: the untagged one is refused by name
        a = tag(jax.nn.softmax(x @ p @ x.swapaxes(-1, -2), axis=-1), "attn_weights")
        return (jax.nn.softmax(a @ x, axis=-1)).sum(1)

    model = as_model(two, jnp.eye(3), input_shape=(4, 3))
    with pytest.raises(ValueError, match=r"`div`.*attn_weights"):
        lrp(model, jnp.ones((1, 4, 3)), 0, composite="attn_lrp")


def test_bad_composite_arguments():
    with pytest.raises(ValueError, match="`attention` must name"):
        attn_lrp(attention=())
    with pytest.raises(ValueError, match="`norms` must be layer paths"):
        attn_lrp(norms=(3,))
    with pytest.raises(ValueError, match="attn_lrp"):
        lrp(_vit(), _x(1), 0, composite="attn-lrp")  # the known presets listed


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_written_out_gets_the_identity_rule(approximate):
    def apply(p, x):
        h = tag(jax.nn.gelu(tag(x @ p, "fc"), approximate=approximate), "act")
        a = tag(jax.nn.softmax(h, axis=-1), "attn_weights")
        return a * h

    w = jax.random.normal(jax.random.key(5), (4, 4))
    x = jax.random.normal(jax.random.key(6), (2, 4))
    r = lrp_layers(as_model(apply, w, input_shape=(4,)), x, 1, composite="attn_lrp")
    np.testing.assert_allclose(np.asarray(r["fc"]), np.asarray(r["act"]), atol=1e-5)


# --------------------------------------------------------------------------- non-zero biases
# With non-zero biases a block's relevance is conserved only up to the leaks the rules document:
# the softmax rule's bias term (``_softmax_leak``) and, for every ε-linear layer and layer norm
# (the affine map ``y = J x + b`` left once the statistics are held constant), the share
# ``Σ_j R_j (b_j + ε sign z_j) / s(z_j)`` its bias and ε absorb. Measured on the zoo ViT trained
# 3 epochs on digits (8 test images): |in - out| up to 0.46 of the output relevance per block,
# 0.14 left after the softmax leak alone, 7e-6 after all the leaks.

BLOCK_LINEARS = ("attn.query", "attn.key", "attn.value", "attn.out", "mlp.fc1", "mlp.fc2")


def _bias_leak(model, x, rel, path):
    """``Σ_j R_j (b_j + ε sign z_j) / s(z_j)`` at the ε-linear layer (or layer norm) ``path``."""
    _, acts = model.activations(x, [path])
    z = np.asarray(acts[path], np.float64)
    p = model.params
    for k in path.split("."):
        p = p[int(k)] if k.isdigit() else p[k]
    b = np.asarray(p["bias"], np.float64)
    return (np.asarray(rel[path], np.float64) * (b + _s(z) - z) / _s(z)).reshape(len(z), -1).sum(1)


def _check_conservation_with_bias_leak(model, x, target, depth, atol):
    rel = lrp_layers(model, x, target, composite="attn_lrp")
    np.testing.assert_allclose(_total(rel["head"]), 1.0, atol=1e-6)
    norm = _total(rel["norm"])  # the head's input: the head's bias leaks too
    np.testing.assert_allclose(norm + _bias_leak(model, x, rel, "head"), 1.0, atol=atol)
    last = _total(rel[f"blocks.{depth - 1}"])
    np.testing.assert_allclose(last + _bias_leak(model, x, rel, "norm"), norm, atol=atol)
    for b in range(depth):
        block_in = "embed" if b == 0 else f"blocks.{b - 1}"
        out, inn = _total(rel[f"blocks.{b}"]), _total(rel[block_in])
        leak = _softmax_leak(model, x, rel, b) + sum(
            _bias_leak(model, x, rel, f"blocks.{b}.{n}")
            for n in (*BLOCK_LINEARS, "norm1", "norm2")
        )
        assert np.max(np.abs(inn - out)) > 10 * atol  # the biases do leak here
        np.testing.assert_allclose(inn + leak, out, atol=atol)
    np.testing.assert_allclose(
        _total(rel["input"]) + _bias_leak(model, x, rel, "patch_embed"),
        _total(rel["patch_embed"]),
        atol=atol,
    )


def test_conservation_up_to_the_bias_leak_with_random_biases():
    model = digits_vit(depth=1, dim=8, mlp_dim=8, seed=2)
    keys = iter(jax.random.split(jax.random.key(5), 64))

    def biased(path, leaf):
        name = jax.tree_util.keystr(path)
        if "bias" in name:
            return 0.3 * jax.random.normal(next(keys), leaf.shape, leaf.dtype)
        return leaf

    model = model.replace(params=jax.tree_util.tree_map_with_path(biased, model.params))
    _check_conservation_with_bias_leak(model, _x(2, seed=3), 3, 1, atol=1e-4)


def test_conservation_up_to_the_bias_leak_on_the_trained_vit():
    from visjax.zoo.data import load_digits
    from visjax.zoo.pretrained import _trained_on_digits

    trained = _trained_on_digits(
        "digits_vit",
        digits_vit(seed=1),
        {"init_seed": 1},
        seed=0,
        epochs=3,
        batch_size=64,
        learning_rate=3e-3,
        cache=None,
        callback=None,
    )
    test = load_digits().test
    x, y = jnp.asarray(test.x[:8]), jnp.asarray(test.y[:8])
    _check_conservation_with_bias_leak(trained.model, x, y, 2, atol=1e-4)
