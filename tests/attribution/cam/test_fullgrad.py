import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution.cam import fullgrad
from visjax.attribution.cam.process import bilinear_matrix
from visjax.zoo import digits_cnn


def with_biases(model, seed=0):
    """The zoo's fresh weights have zero biases: draw some so the bias terms matter."""
    keys = iter(jax.random.split(jax.random.key(seed), 8))

    def f(path, a):
        if jax.tree_util.keystr(path).endswith("['bias']"):
            return 0.2 * jax.random.normal(next(keys), a.shape, a.dtype)
        return a

    return model.replace(params=jax.tree_util.tree_map_with_path(f, model.params))


@pytest.fixture(scope="module")
def cnn():
    return with_biases(digits_cnn("function", seed=2))


@pytest.fixture(scope="module")
def x():
    return jax.random.uniform(jax.random.key(4), (3, 8, 8, 1))


def test_completeness_of_the_raw_terms(cnn, x):
    """ReLU network: x·∇f + Σ_l Σ b_l ∂f/∂z_l = f(x), over all biased layers (the head too)."""
    t = jnp.array([1, 5, 9])
    gx, terms = fullgrad._raw_terms(cnn, x, t, None, ("conv1", "conv2", "fc"))
    total = gx.sum((1, 2, 3)) + sum(term.reshape(3, -1).sum(1) for term in terms)
    np.testing.assert_allclose(total, cnn(x)[jnp.arange(3), t], rtol=1e-4, atol=1e-5)


def test_bias_layers_are_the_spatial_biased_ones(cnn, x):
    assert fullgrad.bias_layers(cnn, x) == ("conv1", "conv2")
    linen = digits_cnn("linen", cnn.params)
    assert fullgrad.bias_layers(linen, x) == ("conv1", "conv2")


def test_post_processing_closed_form(cnn, x):
    """S(Σ_k S|g⊙x|_k + Σ_l Σ_c S|g_l b_l|_c) written out (same-size layers: no resize)."""
    t = jnp.array([1, 5, 9])
    gx, terms = fullgrad._raw_terms(cnn, x, t, None, ("conv1", "conv2"))

    def s(m):
        m = np.asarray(m, np.float64)
        m = m - m.min((1, 2), keepdims=True)
        return m / (1e-7 + m.max((1, 2), keepdims=True))

    total = s(np.abs(gx)).sum(-1) + sum(s(np.abs(term)).sum(-1) for term in terms)
    want = s(total[..., None])[..., 0]
    got = fullgrad.full_grad(cnn, x, t)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert got.shape == (3, 8, 8) and float(got.min()) == 0.0 and float(got.max()) <= 1.0


def test_jit_batch_and_no_retrace(cnn, x):
    t = jnp.array([1, 5, 9])
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return fullgrad.full_grad(m, x, t)

    jitted = jax.jit(traced)
    out = jitted(cnn, x, t)
    np.testing.assert_allclose(out, fullgrad.full_grad(cnn, x, t), rtol=1e-5, atol=1e-6)
    singles = [fullgrad.full_grad(cnn, x[i : i + 1], t[i : i + 1]) for i in range(3)]
    np.testing.assert_allclose(out, jnp.concatenate(singles), rtol=1e-5, atol=1e-6)
    new = cnn.replace(params=jax.tree.map(lambda a: a * 0.9, cnn.params))
    jitted(new, x + 0.5, t[::-1]).block_until_ready()
    assert len(traces) == 1


def test_layers_override(cnn, x):
    only = fullgrad.full_grad(cnn, x, 2, layers=["conv2"])
    assert not np.allclose(only, fullgrad.full_grad(cnn, x, 2))


def test_bad_input(cnn, x):
    with pytest.raises(ValueError, match="not a layer"):
        fullgrad.full_grad(cnn, x, 0, layers=["nope"])
    with pytest.raises(ValueError, match="not spatial"):
        fullgrad.full_grad(cnn, x, 0, layers=["fc"])
    with pytest.raises(ValueError, match="target"):
        fullgrad.full_grad(cnn, x, 10)


def test_half_pixel_matrix():
    np.testing.assert_array_equal(bilinear_matrix(4, 4, align_corners=False), np.eye(4))
    # samples at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
    m = bilinear_matrix(2, 4, align_corners=False)
    np.testing.assert_allclose(m, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
