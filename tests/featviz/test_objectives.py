"""Objectives: values and gradients against direct computation, and their algebra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.featviz import objectives as obj

KEY = jax.random.key(0)
A = jax.random.normal(KEY, (2, 5, 4, 3))  # (B, H, W, C)
OUT = jax.random.normal(jax.random.key(1), (2, 10))
IMG = jax.random.uniform(jax.random.key(2), (2, 6, 6, 3))
ACTS = {"conv": A, "fc": OUT}


def value(o, acts=ACTS, out=OUT, img=IMG):
    return float(o(acts, out, img))


def test_unit_objectives_equal_direct_formulas():
    a = np.asarray(A)
    np.testing.assert_allclose(value(obj.channel("conv", 2)), a[..., 2].mean(), rtol=1e-6)
    np.testing.assert_allclose(value(obj.neuron("conv", 1)), a[:, 2, 2, 1].mean(), rtol=1e-6)
    np.testing.assert_allclose(value(obj.neuron("conv", 1, 0, 3)), a[:, 0, 3, 1].mean(), rtol=1e-6)
    np.testing.assert_allclose(value(obj.layer("conv")), (a**2).mean(), rtol=1e-6)
    np.testing.assert_allclose(value(obj.class_logit(4)), np.asarray(OUT)[:, 4].sum(), rtol=1e-6)
    np.testing.assert_allclose(
        value(obj.channel("conv", 2, batch=1)), a[1, ..., 2].mean(), rtol=1e-6
    )
    vec = np.array([1.0, -2.0, 0.5], np.float32)
    np.testing.assert_allclose(value(obj.direction("conv", vec)), (a @ vec).mean(), rtol=1e-5)
    np.testing.assert_allclose(value(obj.channel("fc", 3)), np.asarray(OUT)[:, 3].mean(), rtol=1e-6)


def test_diversity_is_lucid_gram_cosine():
    a = np.asarray(A, np.float64).reshape(2, -1, 3)
    grams = np.einsum("bpc,bpd->bcd", a, a)
    grams /= np.linalg.norm(grams.reshape(2, -1), axis=1)[:, None, None]
    want = 2 * (grams[0] * grams[1]).sum() / 2
    np.testing.assert_allclose(value(obj.diversity("conv")), want, rtol=1e-5)
    same = {"conv": jnp.concatenate([A[:1], A[:1]])}
    np.testing.assert_allclose(value(obj.diversity("conv"), acts=same), 1.0, rtol=1e-5)


def test_regularisers_equal_direct_formulas():
    i = np.asarray(IMG, np.float64)
    np.testing.assert_allclose(value(obj.l1(0.5)), np.abs(i - 0.5).sum(), rtol=1e-5)
    np.testing.assert_allclose(value(obj.l2()), np.sqrt(1e-6 + (i**2).sum()), rtol=1e-5)
    tv = np.abs(np.diff(i, axis=1)).sum() + np.abs(np.diff(i, axis=2)).sum()
    np.testing.assert_allclose(value(obj.total_variation()), tv, rtol=1e-5)
    # Lucid's blur: 3x3 weights 0.5 (border) / 1 (centre), normalised by the weights inside.
    k = np.full((3, 3), 0.5)
    k[1, 1] = 1.0
    pad = np.pad(i, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ones = np.pad(np.ones_like(i), ((0, 0), (1, 1), (1, 1), (0, 0)))
    num = sum(k[dy, dx] * pad[:, dy : dy + 6, dx : dx + 6] for dy in range(3) for dx in range(3))
    den = sum(k[dy, dx] * ones[:, dy : dy + 6, dx : dx + 6] for dy in range(3) for dx in range(3))
    np.testing.assert_allclose(value(obj.blur()), 0.5 * ((i - num / den) ** 2).sum(), rtol=1e-4)


def test_gradients_against_finite_differences():
    o = obj.channel("conv", 1) - 0.1 * obj.total_variation() + 2 * obj.layer("conv")

    def f(a, img):
        return o({"conv": a, "fc": OUT}, OUT, img)

    ga, gi = jax.grad(f, argnums=(0, 1))(A, IMG)
    for arg, g, idx in ((0, ga, (1, 2, 3, 1)), (1, gi, (0, 3, 2, 0))):
        eps = 1e-2
        base = [A, IMG]
        plus = [b.at[idx].add(eps) if j == arg else b for j, b in enumerate(base)]
        minus = [b.at[idx].add(-eps) if j == arg else b for j, b in enumerate(base)]
        fd = (f(*plus) - f(*minus)) / (2 * eps)
        np.testing.assert_allclose(float(g[idx]), float(fd), rtol=2e-2, atol=1e-3)
    # blur's target is a constant: its gradient is (x - blur(x))
    gb = jax.grad(lambda img: obj.blur()({}, None, img))(IMG)
    np.testing.assert_allclose(gb, IMG - obj._blur3(IMG), rtol=1e-5, atol=1e-6)


def test_algebra():
    c, d = obj.channel("conv", 0), obj.class_logit(1)
    vc, vd = value(c), value(d)
    np.testing.assert_allclose(value(c + d), vc + vd, rtol=1e-6)
    np.testing.assert_allclose(value(c - d), vc - vd, rtol=1e-6)
    np.testing.assert_allclose(value(3 * c - d * 0.5), 3 * vc - 0.5 * vd, rtol=1e-6)
    np.testing.assert_allclose(value(-c), -vc, rtol=1e-6)
    np.testing.assert_allclose(value(c / 4), vc / 4, rtol=1e-6)
    np.testing.assert_allclose(value(1 - c), 1 - vc, rtol=1e-6)
    np.testing.assert_allclose(value(c * d), vc * vd, rtol=1e-6)
    np.testing.assert_allclose(value(sum([c, d, c])), 2 * vc + vd, rtol=1e-6)
    total = c + d - 0.1 * obj.diversity("conv")
    assert total.layers == {"conv"}
    assert total.units == (("conv", 0), (None, 1))
    assert "channel(conv, 0)" in total.name
    with pytest.raises(TypeError):
        c + "x"


def test_traced_channel_and_jit():
    f = jax.jit(lambda c, a: obj.channel("conv", c)({"conv": a}, None, None))
    vals = jax.vmap(f, in_axes=(0, None))(jnp.arange(3), A)
    np.testing.assert_allclose(vals, np.asarray(A).mean(axis=(0, 1, 2)), rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`layer`"):
        obj.channel("", 0)
    with pytest.raises(ValueError, match="`channel`"):
        obj.channel("conv", -1)
    with pytest.raises(ValueError, match="`channel`"):
        obj.neuron("conv", 1.5)
    with pytest.raises(ValueError, match="`batch`"):
        obj.channel("conv", 0, batch="all")
    with pytest.raises(ValueError, match="`vec`"):
        obj.direction("conv", np.ones((2, 2)))
    with pytest.raises(ValueError, match="`vec` has 2"):
        obj.direction("conv", np.ones(2))(ACTS, OUT, IMG)
    with pytest.raises(ValueError, match="spatial"):
        obj.neuron("fc", 0)(ACTS, OUT, IMG)
