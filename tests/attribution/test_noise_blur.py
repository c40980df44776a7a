import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndimage

from tests.attribution.test_integrated import (
    BAD_BATCH_SIZES,
    assert_auto_matches,
    split_auto,
)
from visjax.attribution import (
    blur_integrated_gradients,
    expected_gradients,
    gaussian_blur,
    integrated_gradients,
    noise_tunnel,
    saliency,
)


def test_noise_tunnel_kinds_on_a_linear_model(linear, images):
    model, w = linear
    grad = w[:, 1].reshape(4, 4, 1)
    key = jax.random.key(0)
    for kind, expected in (("smoothgrad", grad), ("smoothgrad_sq", grad**2), ("vargrad", 0 * grad)):
        wrapped = noise_tunnel(saliency, kind=kind, n_samples=5, stdev=0.3, batch_size=4)
        out = wrapped(model, images, 1, key=key, absolute=False)
        np.testing.assert_allclose(out, jnp.broadcast_to(expected, out.shape), atol=1e-5)


def test_noise_tunnel_draws_fresh_noise_per_key(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    smooth = noise_tunnel(saliency, n_samples=4, stdev=0.2)
    a = smooth(trained_cnn, x, t, key=jax.random.key(0))
    b = smooth(trained_cnn, x, t, key=jax.random.key(0))
    c = smooth(trained_cnn, x, t, key=jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(a - c).max()) > 0
    # chunking over samples does not change the result
    chunked = noise_tunnel(saliency, n_samples=4, stdev=0.2, batch_size=5)
    np.testing.assert_allclose(chunked(trained_cnn, x, t, key=jax.random.key(0)), a, rtol=1e-5)


def test_noise_tunnel_passes_a_key_to_random_methods(linear, images):
    model, _ = linear
    wrapped = noise_tunnel(expected_gradients, n_samples=2, stdev=0.1)
    out = wrapped(model, images, 0, key=jax.random.key(3), references=images, n_samples=3)
    assert out.shape == images.shape
    ig = noise_tunnel(integrated_gradients, n_samples=2, stdev=0.1)
    assert ig(model, images, 0, key=jax.random.key(3), n_steps=4).shape == images.shape


def test_noise_tunnel_bad_arguments(linear, images):
    model, _ = linear
    with pytest.raises(ValueError, match="`kind`"):
        noise_tunnel(saliency, kind="smooth")
    with pytest.raises(ValueError, match="`n_samples`"):
        noise_tunnel(saliency, n_samples=0)
    with pytest.raises(TypeError, match="required keyword-only argument: 'key'"):
        noise_tunnel(saliency)(model, images, 0)


@pytest.mark.parametrize("mode", ["reflect", "constant"])
@pytest.mark.parametrize("sigma", [0.4, 1.5, 6.0])
def test_gaussian_blur_matches_scipy(mode, sigma):
    img = np.random.default_rng(0).random((2, 9, 7, 3)).astype(np.float32)
    ref = ndimage.gaussian_filter(img, (0, sigma, sigma, 0), mode=mode, truncate=4.0)
    np.testing.assert_allclose(gaussian_blur(jnp.asarray(img), sigma, mode=mode), ref, atol=1e-6)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_blur_integrated_gradients_is_complete(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:4]), jnp.asarray(digits.test.y[:4])
    phi = blur_integrated_gradients(trained_cnn, x, t, max_sigma=4.0, n_steps=100)
    end = gaussian_blur(x, 4.0, mode="constant")
    delta = trained_cnn(x)[jnp.arange(4), t] - trained_cnn(end)[jnp.arange(4), t]
    np.testing.assert_allclose(phi.reshape(4, -1).sum(1), delta, rtol=0.03, atol=0.03)
    chunked = blur_integrated_gradients(
        trained_cnn, x, t, max_sigma=4.0, n_steps=100, batch_size=64
    )
    # float32 sums in another order, amplified by the 1/grad_step finite difference
    np.testing.assert_allclose(chunked, phi, rtol=1e-3, atol=5e-5)


def test_blur_ig_needs_images(linear):
    model, _ = linear
    with pytest.raises(ValueError, match="`max_sigma`"):
        blur_integrated_gradients(model, jnp.ones((1, 4, 4, 1)), 0, max_sigma=0.0)


def test_negative_stdev_is_refused(linear, images):
    model, _ = linear
    with pytest.raises(ValueError, match="`stdev`"):
        noise_tunnel(saliency, stdev=-0.1)
    with pytest.raises(ValueError, match="`stdev`"):
        expected_gradients(model, images, 0, references=images, stdev=-1.0, key=jax.random.key(0))
    zero = noise_tunnel(saliency, n_samples=2, stdev=0.0)(model, images, 0, key=jax.random.key(0))
    np.testing.assert_allclose(zero, saliency(model, images, 0), rtol=1e-6)


def test_noise_tunnel_auto_batch_size_matches_explicit_sizes(trained_cnn, digits, monkeypatch):
    sizes = split_auto(monkeypatch)
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    key = jax.random.key(2)
    default = noise_tunnel(saliency, n_samples=7, stdev=0.2)(trained_cnn, x, t, key=key)
    explicit = [
        noise_tunnel(saliency, n_samples=7, stdev=0.2, batch_size=b)(trained_cnn, x, t, key=key)
        for b in (None, 4)
    ]
    assert_auto_matches(default, explicit, sizes, 3 * 7)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_blur_ig_auto_batch_size_matches_explicit_sizes(trained_cnn, digits, monkeypatch):
    sizes = split_auto(monkeypatch)
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    kw = {"max_sigma": 4.0, "n_steps": 17}
    default = blur_integrated_gradients(trained_cnn, x, t, **kw)
    explicit = [blur_integrated_gradients(trained_cnn, x, t, **kw, batch_size=b) for b in (None, 8)]
    assert_auto_matches(default, explicit, sizes, 3 * 17)


@pytest.mark.parametrize("bad", BAD_BATCH_SIZES)
def test_bad_batch_sizes_are_refused(trained_cnn, digits, bad):
    x = jnp.asarray(digits.test.x[:2])
    with pytest.raises(ValueError, match="`batch_size`"):
        noise_tunnel(saliency, batch_size=bad)
    with pytest.raises(ValueError, match="`batch_size`"):
        blur_integrated_gradients(trained_cnn, x, 0, batch_size=bad)
