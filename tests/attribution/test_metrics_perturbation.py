"""Infidelity and max-sensitivity: analytic cases and a NumPy reference on the same noise."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution import gradient_x_input, saliency
from visjax.attribution.metrics import infidelity, sensitivity_max
from visjax.attribution.metrics.perturbation import INFIDELITY_STDEV, sample_keys
from visjax.zoo import digits_cnn

KEY = jax.random.key(3)


@pytest.fixture(scope="module")
def cnn():
    return digits_cnn("function", seed=3)


def test_infidelity_zero_for_exact_linear_attribution(linear, images):
    model, w = linear
    grad = jnp.broadcast_to(w[:, 2].reshape(4, 4, 1), images.shape)
    val = infidelity(model, images, 2, grad, key=KEY, n_perturb_samples=6)
    np.testing.assert_allclose(val, 0.0, atol=1e-9)
    signed = functools.partial(saliency, absolute=False)
    val = infidelity(model, images, 2, signed, key=KEY, n_perturb_samples=6)
    np.testing.assert_allclose(val, 0.0, atol=1e-9)


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_equals_reference(cnn, normalize):
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1))
    t = jnp.array([3, 5])
    a = saliency(cnn, x, t)
    n = 4
    ours = infidelity(cnn, x, t, a, key=KEY, n_perturb_samples=n, normalize=normalize, batch_size=3)
    keys = sample_keys(KEY, 2, n)
    noise = INFIDELITY_STDEV * jax.vmap(jax.vmap(lambda k: jax.random.normal(k, (8, 8, 1))))(keys)
    noise = np.asarray(noise)
    fx = np.asarray(cnn(x))[np.arange(2), t]
    xp = (np.asarray(x)[:, None] - noise).reshape(2 * n, 8, 8, 1)
    fp = np.asarray(cnn(jnp.asarray(xp))).reshape(2, n, -1)[np.arange(2), :, t]
    ref = []
    for e in range(2):
        d = np.array([(np.asarray(a[e]) * noise[e, s]).sum() for s in range(n)])
        g = fx[e] - fp[e]
        if normalize:
            beta = (d * g).sum() / (d * d).sum()
            d = beta * d
        ref.append(np.mean((d - g) ** 2))
    np.testing.assert_allclose(ours, ref, rtol=2e-3)


def test_sensitivity_analytic(linear, images):
    model, w = linear
    zero = sensitivity_max(saliency, model, images, 1, key=KEY, n_perturb_samples=3)
    np.testing.assert_allclose(zero, 0.0, atol=1e-6)
    # gradient x input on a linear model: φ(x + δ) − φ(x) = w ⊙ δ
    n, r = 5, 0.05
    ours = sensitivity_max(
        gradient_x_input, model, images, 1, key=KEY, perturb_radius=r, n_perturb_samples=n
    )
    keys = sample_keys(KEY, images.shape[0], n)
    delta = jax.vmap(jax.vmap(lambda k: jax.random.uniform(k, (16,), minval=-r, maxval=r)))(keys)
    wt = np.asarray(w[:, 1])
    for e in range(images.shape[0]):
        phi = wt * np.asarray(images[e]).ravel()
        rel = [np.linalg.norm(wt * np.asarray(delta[e, s])) / np.linalg.norm(phi) for s in range(n)]
        np.testing.assert_allclose(ours[e], max(rel), rtol=1e-5)


def test_method_forms(linear, images):
    model, _ = linear
    a = sensitivity_max(functools.partial(gradient_x_input), model, images, 0, key=KEY)
    b = sensitivity_max(lambda m, x, t: gradient_x_input(m, x, t), model, images, 0, key=KEY)
    np.testing.assert_allclose(a, b)


def test_bad_input(linear, images):
    model, _ = linear
    with pytest.raises(ValueError, match="`attributions`"):
        infidelity(model, images, 0, images[:, :2], key=KEY)
    with pytest.raises(ValueError, match="`n_perturb_samples`"):
        infidelity(model, images, 0, images, key=KEY, n_perturb_samples=0)
    with pytest.raises(ValueError, match="`method` returned"):
        sensitivity_max(lambda m, x, t: x * jnp.nan, model, images, 0, key=KEY)
    with pytest.raises(ValueError, match="`perturb_radius`"):
        sensitivity_max(saliency, model, images, 0, key=KEY, perturb_radius=-1.0)
    with pytest.raises((ValueError, TypeError), match="`key`"):
        infidelity(model, images, 0, images, key=3)
