import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.attribution.test_integrated import (
    BAD_BATCH_SIZES,
    assert_auto_matches,
    split_auto,
)
from tests.attribution.test_shapley import (
    GRID8,
    MASK4,
    interacting_model,
    linear_expected,
    per_feature,
    relative_error,
)
from visjax.attribution.shapley import exact_shapley
from visjax.attribution.surrogate import _kernel_shap, _lime, kernel_shap, lime

KEY = jax.random.key(0)


def test_kernel_shap_on_linear_model_is_exact(linear, images):
    model, _ = linear
    phi = kernel_shap(model, images, 2, mask=MASK4, baseline=0.25, n_samples=6, key=KEY)
    np.testing.assert_allclose(
        phi, linear_expected(linear, images, 0.25, MASK4), rtol=1e-4, atol=1e-5
    )


def test_lime_on_linear_model_fits_the_per_feature_effects(linear, images):
    # f(h(z)) = f(b) + Σ_k z_k c_k exactly: the weighted fit with an intercept recovers c_k
    model, _ = linear
    phi = lime(model, images, 2, mask=MASK4, baseline=0.25, n_samples=24, key=KEY)
    np.testing.assert_allclose(
        phi, linear_expected(linear, images, 0.25, MASK4), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("n_samples", [8, 11, 100])
def test_kernel_shap_is_efficient_for_any_n_samples(trained_cnn, digits, n_samples):
    x, t = jnp.asarray(digits.test.x[:4]), jnp.asarray(digits.test.y[:4])
    phi = kernel_shap(trained_cnn, x, t, mask=GRID8, n_samples=n_samples, key=KEY)
    rows = jnp.arange(4)
    delta = trained_cnn(x)[rows, t] - trained_cnn(jnp.zeros_like(x))[rows, t]
    total = per_feature(phi, GRID8).sum(1)
    np.testing.assert_allclose(total, delta, rtol=1e-5, atol=1e-5 * float(jnp.abs(delta).max()))


@pytest.mark.slow
def test_kernel_shap_converges_to_exact_on_the_digits_cnn(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:4]), jnp.asarray(digits.test.y[:4])
    ref = exact_shapley(trained_cnn, x, t, mask=GRID8)
    errors = {}
    for n in (10, 100, 1000, 10000):
        phi = kernel_shap(trained_cnn, x, t, mask=GRID8, n_samples=n, key=KEY, batch_size=4096)
        errors[n] = relative_error(phi, ref)
    print("\nkernel_shap, relative max error vs exact, 8 features:", errors)
    assert errors[10] > errors[100] > errors[1000] > errors[10000]
    assert errors[10000] < 0.02


@pytest.mark.slow
def test_kernel_shap_absent_features(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:2]), jnp.asarray(digits.test.y[:2])
    five = np.minimum(GRID8, 4)
    per = np.stack([GRID8, five])
    phi = kernel_shap(trained_cnn, x, t, mask=per, n_samples=64, key=KEY)
    rows = jnp.arange(2)
    delta = trained_cnn(x)[rows, t] - trained_cnn(jnp.zeros_like(x))[rows, t]
    np.testing.assert_allclose(per_feature(phi[1:], five).sum(1), delta[1:], rtol=1e-5)
    assert relative_error(phi[1:], exact_shapley(trained_cnn, x[1:], t[1:], mask=five)) < 0.3
    # an example with a single feature gets f(x) - f(b) on it
    one = kernel_shap(trained_cnn, x, t, mask=np.stack([GRID8, 0 * GRID8]), n_samples=8, key=KEY)
    np.testing.assert_allclose(one[1], jnp.full((8, 8, 1), delta[1]), rtol=1e-5)
    lam = lime(trained_cnn, x, t, mask=per, n_samples=64, key=KEY)
    assert bool(jnp.isfinite(lam).all())


@pytest.mark.slow
@pytest.mark.parametrize("method", [kernel_shap, lime], ids=lambda m: m.__name__)
def test_chunked_batch_singles_jit_and_no_retrace(trained_cnn, digits, method):
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    full = method(trained_cnn, x, t, mask=GRID8, n_samples=20, key=KEY)
    chunked = method(trained_cnn, x, t, mask=GRID8, n_samples=20, key=KEY, batch_size=16)
    np.testing.assert_allclose(chunked, full, rtol=1e-4, atol=1e-5)
    singles = [
        method(trained_cnn, x[i : i + 1], t[i : i + 1], mask=GRID8, n_samples=20, key=KEY)
        for i in range(3)
    ]
    np.testing.assert_allclose(jnp.concatenate(singles), full, rtol=1e-4, atol=1e-5)
    traces = []

    def traced(m, x, t, key):
        traces.append(1)
        return method(m, x, t, mask=GRID8, n_samples=20, key=key, batch_size=16)

    jitted = jax.jit(traced)
    np.testing.assert_allclose(jitted(trained_cnn, x, t, KEY), full, rtol=1e-4, atol=1e-5)
    jitted(trained_cnn, x + 0.5, t[::-1], jax.random.key(3)).block_until_ready()
    assert len(traces) == 1
    core = _kernel_shap if method is kernel_shap else _lime
    size = core._cache_size()
    method(trained_cnn, x * 2.0, t, mask=GRID8, n_samples=20, key=jax.random.key(4))
    assert core._cache_size() == size


def test_lime_kernel_width_is_traced_and_matters():
    model = interacting_model()
    x = jax.random.uniform(jax.random.key(5), (2, 4, 4, 1))
    f = jax.jit(lambda w: lime(model, x, 0, mask=MASK4, n_samples=40, kernel_width=w, key=KEY))
    a, b = f(0.3), f(3.0)
    assert float(jnp.abs(a - b).max()) > 1e-4


def test_errors(linear, images):
    model, _ = linear
    with pytest.raises(TypeError, match="required keyword-only argument: 'key'"):
        kernel_shap(model, images, 0, mask=MASK4)
    with pytest.raises(TypeError, match="required keyword-only argument: 'key'"):
        lime(model, images, 0, mask=MASK4)
    with pytest.raises(ValueError, match=r"`n_samples` must be an int >= 16 for K = 16"):
        kernel_shap(model, images, 0, n_samples=15, key=KEY)
    with pytest.raises(ValueError, match=r"`n_samples` must be an int >= 5 for K = 4"):
        lime(model, images, 0, mask=MASK4, n_samples=4, key=KEY)
    with pytest.raises(ValueError, match="n_samples"):
        lime(model, images, 0, mask=MASK4, n_samples=10.0, key=KEY)


@pytest.mark.parametrize("method", [kernel_shap, lime])
def test_auto_batch_size_matches_explicit_sizes(trained_cnn, digits, monkeypatch, method):
    sizes = split_auto(monkeypatch)
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    kw = {"mask": GRID8, "n_samples": 23, "key": KEY}
    default = method(trained_cnn, x, t, **kw)
    explicit = [method(trained_cnn, x, t, **kw, batch_size=b) for b in (None, 16)]
    assert_auto_matches(default, explicit, sizes, 3 * 23)


@pytest.mark.parametrize("bad", BAD_BATCH_SIZES)
@pytest.mark.parametrize("method", [kernel_shap, lime])
def test_bad_batch_sizes_are_refused(linear, images, method, bad):
    model, _ = linear
    with pytest.raises(ValueError, match="`batch_size`"):
        method(model, images, 0, mask=MASK4, key=KEY, batch_size=bad)
