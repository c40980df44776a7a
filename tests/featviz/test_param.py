import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.featviz.param import (
    LUCID_COLOR_CORRELATION,
    LUCID_COLOR_CORRELATION_NORMALIZED,
    LUCID_COLOR_MEAN,
    color_correlation,
    fourier,
    pixel,
)

KINDS = {"pixel": pixel, "fourier": fourier}


def _param_shape(p):
    # jax.random compiles slowly on XLA:CPU (about 1 s), so most tests draw with NumPy.
    return jax.eval_shape(p.init, jax.random.key(0)).shape


def _lucid_fft_image(spectrum, h, w, decay_power=1.0):
    """NumPy transcription of Lucid's ``fft_image`` (float64), spectrum ``(2, B, C, h, wf)``."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay_power
    scale *= np.sqrt(w * h)
    s = scale * (spectrum[0] + 1j * spectrum[1])
    image = np.transpose(np.fft.irfft2(s), (0, 2, 3, 1))  # TF irfft2d: last axis 2 (n - 1)
    return image[:, :h, :w, :] / 4.0


# Every (valid, decorrelate) pair for each kind, across channels {1, 3, 4} and batch {1, 2}.
RANGE_CASES = [
    (channels, batch, *modes)
    for (channels, batch), modes in zip(
        [(1, 1), (3, 2), (4, 1), (1, 2), (3, 1), (4, 2)],
        [("sigmoid", False), ("sigmoid", True), ("clip", False), ("clip", True)] * 2,
        strict=False,
    )
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("channels", "batch", "valid", "decorrelate"), RANGE_CASES)
def test_valid_range_and_finite_gradients(kind, channels, batch, valid, decorrelate):
    p = KINDS[kind]((7, 6, channels), batch=batch, sd=1.0, decorrelate=decorrelate, valid=valid)
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(batch, 7, 6, channels)).astype(np.float32)
    params = rng.normal(size=_param_shape(p)).astype(np.float32)

    @jax.jit
    def run(params, weights):
        loss = lambda q: (jnp.sum(p.image(q) * weights), p.image(q))  # noqa: E731
        (_, x), g = jax.value_and_grad(loss, has_aux=True)(params)
        return x, g

    x, g = map(np.asarray, run(params, weights))
    assert x.shape == (batch, 7, 6, channels) == (p.batch, *p.shape)
    assert np.all((x >= 0) & (x <= 1))
    if valid == "clip":
        assert 0.0 in x and 1.0 in x  # sd=1 reaches both edges
    assert g.shape == params.shape
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("shape", "decorrelate", "valid"),
    [
        ((8, 6, 3), False, "sigmoid"),
        ((8, 6, 3), True, "sigmoid"),
        ((7, 9, 3), True, "sigmoid"),
        ((7, 9, 3), False, "clip"),
        ((5, 1, 3), True, "clip"),
        ((6, 5, 4), True, "sigmoid"),
        ((6, 5, 1), False, "sigmoid"),
    ],
)
def test_inverse_reproduces_the_image(kind, shape, decorrelate, valid):
    matrix = None
    if shape[2] == 4:
        matrix = np.eye(4) + 0.3 * np.random.default_rng(0).normal(size=(4, 4))
    p = KINDS[kind](shape, batch=2, decorrelate=decorrelate, color_matrix=matrix, valid=valid)
    x = np.random.default_rng(3).uniform(0.1, 0.9, size=(2, *shape)).astype(np.float32)
    np.testing.assert_allclose(jax.jit(lambda y: p.image(p.inverse(y)))(x), x, atol=1e-5)


def test_pixel_inverse_is_a_bijection():
    p = pixel((4, 5, 3), decorrelate=True)
    params = np.random.default_rng(0).normal(scale=0.5, size=_param_shape(p)).astype(np.float32)
    np.testing.assert_allclose(p.inverse(p.image(params)), params, atol=1e-4)


@pytest.mark.parametrize("shape", [(8, 8, 3), (7, 9, 2), (5, 4, 1), (6, 3, 3)])
@pytest.mark.parametrize("decay_power", [1.0, 1.5])
def test_fourier_matches_lucid_fft_image(shape, decay_power):
    h, w, c = shape
    p = fourier(shape, batch=2, sd=0.5, decay_power=decay_power, decorrelate=False, valid="clip")
    assert _param_shape(p) == (2, 2, c, h, w // 2 + 1 + w % 2)
    spectrum = np.random.default_rng(0).normal(scale=0.5, size=(2, 2, c, h, w // 2 + 1 + w % 2))
    spectrum = spectrum.astype(np.float32)
    lucid = _lucid_fft_image(np.asarray(spectrum, np.float64), h, w, decay_power)
    np.testing.assert_allclose(jax.jit(p.image)(spectrum), np.clip(lucid, 0, 1), atol=1e-5)
    sig = fourier(shape, batch=2, decay_power=decay_power, decorrelate=False)
    np.testing.assert_allclose(jax.jit(sig.image)(spectrum), 1 / (1 + np.exp(-lucid)), atol=1e-5)


@pytest.mark.parametrize(("ky", "kx", "row"), [(3, 5, 3), (-3, 5, 13), (0, 8, 0)])
def test_fourier_of_a_sinusoid_concentrates_in_its_frequency(ky, kx, row):
    n = 16
    yy, xx = np.mgrid[:n, :n]
    wave = 0.5 + 0.3 * np.cos(2 * np.pi * (ky * yy + kx * xx) / n)
    p = fourier((n, n, 1), decorrelate=False, valid="clip")
    spectrum = jax.jit(p.inverse)(wave[None, :, :, None])
    power = np.array(spectrum[0] ** 2 + spectrum[1] ** 2)[0, 0]
    power[0, 0] = 0.0  # the mean
    assert np.unravel_index(power.argmax(), power.shape) == (row, kx)
    assert power[row, kx] / power.sum() > 0.999


def test_lucid_color_matrix_values():
    np.testing.assert_array_equal(
        LUCID_COLOR_CORRELATION,
        np.float32([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]),
    )
    norms = np.linalg.norm(LUCID_COLOR_CORRELATION_NORMALIZED, axis=0)
    np.testing.assert_allclose(norms.max(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(LUCID_COLOR_CORRELATION_NORMALIZED[0, 0], 0.26 / 0.2134**0.5, 1e-6)
    np.testing.assert_array_equal(LUCID_COLOR_MEAN, np.float32([0.48, 0.46, 0.41]))


def test_to_valid_follows_lucid():
    t = jnp.asarray(np.random.default_rng(0).normal(size=(1, 3, 4, 3)), jnp.float32)
    m = LUCID_COLOR_CORRELATION_NORMALIZED
    decorrelated = np.asarray(t) @ m.T
    sig = pixel((3, 4, 3), decorrelate=True)
    np.testing.assert_allclose(sig.image(t), 1 / (1 + np.exp(-decorrelated)), atol=1e-6)
    clip = pixel((3, 4, 3), decorrelate=True, valid="clip")
    expected = np.clip(decorrelated + LUCID_COLOR_MEAN, 0, 1)
    np.testing.assert_allclose(clip.image(t), expected, atol=1e-6)
    # Lucid adds the colour mean only when decorrelating.
    plain = pixel((3, 4, 3), valid="clip")
    np.testing.assert_allclose(plain.image(t), np.clip(t, 0, 1), atol=1e-7)
    assert float(pixel((3, 4, 3), valid="clip").image(jnp.zeros((1, 3, 4, 3))).max()) == 0.0


def test_color_matrix_is_normalised_and_identity_for_other_channels():
    t = jnp.asarray(np.random.default_rng(0).normal(size=(1, 3, 3, 4)), jnp.float32)
    np.testing.assert_allclose(
        pixel((3, 3, 4), decorrelate=True).image(t), pixel((3, 3, 4)).image(t), atol=1e-7
    )
    m = 2.0 * np.diag([1.0, 0.5, 0.25, 0.5])
    np.testing.assert_allclose(
        pixel((3, 3, 4), decorrelate=True, color_matrix=m).image(t),
        jax.nn.sigmoid(np.asarray(t) * np.diag(m) / 2.0),
        atol=1e-6,
    )
    lucid = pixel((3, 3, 3), decorrelate=True, color_matrix=LUCID_COLOR_CORRELATION)
    np.testing.assert_allclose(
        lucid.image(t[..., :3]), pixel((3, 3, 3), decorrelate=True).image(t[..., :3])
    )


def test_clip_gradient_is_straight_through():
    p = pixel((2, 2, 1), valid="clip")
    params = jnp.array([-2.0, 0.3, 0.7, 3.0]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(p.image(params).ravel(), np.float32([0.0, 0.3, 0.7, 1.0]))
    g = jax.grad(lambda q: jnp.sum(p.image(q) * jnp.array([1.0, -2.0, 3.0, -4.0]).reshape(q.shape)))
    np.testing.assert_array_equal(g(params).ravel(), [1.0, -2.0, 3.0, -4.0])


def test_color_correlation_recovers_a_known_mixing():
    rng = np.random.default_rng(0)
    m = LUCID_COLOR_CORRELATION.astype(np.float64)  # columns nearly orthogonal: U sqrt(S) form
    z = rng.normal(size=(64, 16, 16, 3))
    a = np.asarray(color_correlation(z @ m.T + 0.45))
    np.testing.assert_allclose(a, m, atol=0.01)
    mixing = np.array([[1.0, 0.5, 0.0], [0.2, 1.0, 0.3], [0.0, -0.4, 1.0]])
    b = np.asarray(color_correlation(z @ mixing.T))
    np.testing.assert_allclose(b @ b.T, mixing @ mixing.T, atol=0.05)
    gram = b.T @ b
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-4)
    assert np.all(np.diff(np.diag(gram)) <= 0) and np.all(b[0] >= 0)
    grey = color_correlation(0.3 * z[..., :1])
    assert grey.shape == (1, 1) and abs(float(grey[0, 0]) - 0.3) < 0.01


@pytest.mark.parametrize("kind", KINDS)
def test_jit_and_vmap_over_keys(kind):
    p = KINDS[kind]((6, 7, 3), batch=2)
    keys = jax.random.split(jax.random.key(0), 3)
    params = jax.jit(jax.vmap(p.init))(keys)
    assert params.shape == (3, *_param_shape(p))
    assert not np.allclose(params[0], params[1])
    image = jax.jit(jax.vmap(p.image))
    images = image(params)
    assert images.shape == (3, 2, 6, 7, 3)
    one = jax.jit(p.image)
    for i in range(3):
        np.testing.assert_allclose(images[i], one(params[i]), atol=1e-6)
    back = jax.jit(jax.vmap(p.inverse))(images)
    np.testing.assert_allclose(image(back), images, atol=1e-5)
    assert 0.005 < float(jnp.std(params)) < 0.02  # sd=0.01


def test_bad_input():
    for shape in [(8, 8), (0, 8, 3), (8.0, 8, 3), (8, 8, True), "888"]:
        with pytest.raises(ValueError, match="shape"):
            pixel(shape)
        with pytest.raises(ValueError, match="shape"):
            fourier(shape)
    with pytest.raises(ValueError, match="batch"):
        fourier((8, 8, 3), batch=0)
    with pytest.raises(ValueError, match="valid"):
        pixel((8, 8, 3), valid="tanh")
    with pytest.raises(ValueError, match="color_matrix"):
        fourier((8, 8, 3), color_matrix=np.eye(4))
    with pytest.raises(ValueError, match="color_matrix"):
        pixel((8, 8, 2), color_matrix=np.ones((2, 2)))
    with pytest.raises(ValueError, match="images"):
        fourier((8, 8, 3)).inverse(jnp.full((1, 8, 8, 1), 0.5))
    with pytest.raises(ValueError, match="images"):
        color_correlation(jnp.ones((1, 1)))
