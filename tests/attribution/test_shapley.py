import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax
from tests.attribution.test_integrated import (
    BAD_BATCH_SIZES,
    assert_auto_matches,
    split_auto,
)
from visjax.attribution.shapley import (
    _exact,
    _sampling,
    exact_shapley,
    shapley_value_sampling,
)

KEY = jax.random.key(0)
# 4 features of 2x2 pixels on the linear fixture's (4, 4, 1) inputs
MASK4 = np.arange(4).reshape(2, 2).repeat(2, 0).repeat(2, 1)[..., None]
# 8 features on 8x8 digits: a 2x4 grid of 4x2 patches
GRID8 = (np.arange(8).reshape(2, 4).repeat(4, 0).repeat(2, 1))[..., None]


def per_feature(phi, mask):
    """One value per feature (every element of a feature carries it)."""
    labels = np.broadcast_to(mask, phi.shape[1:]).reshape(-1)
    k = labels.max() + 1
    first = np.array([np.flatnonzero(labels == i)[0] for i in range(k)])
    return np.asarray(phi).reshape(phi.shape[0], -1)[:, first]


def linear_expected(linear, x, baseline, mask, target=2):
    _, w = linear
    contrib = np.asarray((x - baseline) * w[:, target].reshape(4, 4, 1)).reshape(x.shape[0], -1)
    labels = np.broadcast_to(mask, x.shape[1:]).reshape(-1)
    per = np.stack([contrib[:, labels == k].sum(1) for k in range(labels.max() + 1)], 1)
    return per[:, labels].reshape(x.shape)


def test_exact_on_linear_model_is_the_per_feature_effect(linear, images):
    model, _ = linear
    phi = exact_shapley(model, images, 2, mask=MASK4, baseline=0.25)
    expected = linear_expected(linear, images, 0.25, MASK4)
    np.testing.assert_allclose(phi, expected, rtol=1e-5, atol=1e-6)


def test_sampling_on_linear_model_is_exact_for_any_permutation(linear, images):
    model, _ = linear
    phi = shapley_value_sampling(
        model, images, 2, mask=MASK4, baseline=0.25, n_samples=3, key=KEY, batch_size=16
    )
    expected = linear_expected(linear, images, 0.25, MASK4)
    np.testing.assert_allclose(phi, expected, rtol=1e-5, atol=1e-6)


def test_mask_none_makes_every_element_a_feature(linear, images):
    model, w = linear
    phi = shapley_value_sampling(model, images[:1], 0, n_samples=1, key=KEY)
    np.testing.assert_allclose(phi, images[:1] * w[:, 0].reshape(4, 4, 1), rtol=1e-4, atol=1e-5)


def interacting_model():
    """A nonlinear function of the 4 feature sums, symmetric under permuting them."""

    def apply(p, x):
        s = x.reshape(x.shape[0], 2, 2, 2, 2).sum((2, 4)).reshape(x.shape[0], 4) * p
        pair = s[:, :, None] * s[:, None, :]
        return jnp.stack([jnp.tanh(0.1 * pair.sum((1, 2))) + jnp.prod(s, 1), (s**2).sum(1)], 1)

    return visjax.as_model(apply, jnp.float32(1.0), input_shape=(4, 4, 1))


def test_exact_efficiency_and_symmetry():
    model = interacting_model()
    x = jax.random.uniform(jax.random.key(3), (2, 4, 4, 1))
    # features 0, 1 and 2 hold the same values: symmetric players
    x = x.at[:, 2:, :2].set(x[:, :2, :2]).at[:, :2, 2:].set(x[:, :2, :2])
    phi = exact_shapley(model, x, 0, mask=MASK4)
    feats = per_feature(phi, MASK4)
    delta = model(x)[:, 0] - model(jnp.zeros_like(x))[:, 0]
    np.testing.assert_allclose(feats.sum(1), delta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats[:, 1], feats[:, 2], rtol=1e-5)
    np.testing.assert_allclose(feats[:, 0], feats[:, 1], rtol=1e-5)
    assert np.abs(feats[:, 3] - feats[:, 0]).max() > 1e-3


def test_absent_features_are_null_players():
    model = interacting_model()
    x = jax.random.uniform(jax.random.key(4), (2, 4, 4, 1))
    # example 1 uses only features 0..2 (feature 3 absent): its last patch joins feature 2
    three = np.minimum(MASK4, 2)
    per = np.stack([MASK4, three])
    ex = exact_shapley(model, x, 0, mask=per)
    np.testing.assert_allclose(ex[:1], exact_shapley(model, x[:1], 0, mask=MASK4), rtol=1e-5)
    np.testing.assert_allclose(
        ex[1:], exact_shapley(model, x[1:], 0, mask=three), rtol=1e-5, atol=1e-6
    )
    sampled = shapley_value_sampling(model, x, 0, mask=per, n_samples=400, key=KEY)
    delta = model(x)[:, 0] - model(jnp.zeros_like(x))[:, 0]
    np.testing.assert_allclose(per_feature(sampled[1:], three).sum(1), delta[1:], rtol=1e-5)
    assert relative_error(sampled, ex) < 0.1


def relative_error(phi, ref):
    return float(jnp.abs(phi - ref).max() / jnp.abs(ref).max())


@pytest.mark.slow
def test_sampling_converges_to_exact_on_the_digits_cnn(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:4]), jnp.asarray(digits.test.y[:4])
    ref = exact_shapley(trained_cnn, x, t, mask=GRID8)
    errors = {}
    for n in (10, 100, 1000):
        phi = shapley_value_sampling(
            trained_cnn, x, t, mask=GRID8, n_samples=n, key=KEY, batch_size=2048
        )
        errors[n] = relative_error(phi, ref)
        # efficient for every n
        np.testing.assert_allclose(phi.sum((1, 2, 3)) / 32, ref.sum((1, 2, 3)) / 32, rtol=1e-4)
    print("\nshapley_value_sampling, relative max error vs exact, 8 features:", errors)
    assert errors[10] > errors[100] > errors[1000]
    assert errors[1000] < 0.05


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_chunked_equals_unchunked_jit_and_batch_equals_singles(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    full = shapley_value_sampling(trained_cnn, x, t, mask=GRID8, n_samples=4, key=KEY)
    chunked = shapley_value_sampling(
        trained_cnn, x, t, mask=GRID8, n_samples=4, key=KEY, batch_size=40
    )
    np.testing.assert_allclose(chunked, full, rtol=1e-5, atol=1e-6)
    singles = [
        shapley_value_sampling(
            trained_cnn, x[i : i + 1], t[i : i + 1], mask=GRID8, n_samples=4, key=KEY
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(jnp.concatenate(singles), full, rtol=1e-5, atol=1e-6)
    ex = exact_shapley(trained_cnn, x, t, mask=GRID8)
    ex_chunked = exact_shapley(trained_cnn, x, t, mask=GRID8, batch_size=200)
    np.testing.assert_allclose(ex_chunked, ex, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sampling", "exact"])
def test_jit_and_no_retrace(trained_cnn, digits, name):
    x, t = jnp.asarray(digits.test.x[:2]), jnp.asarray(digits.test.y[:2])
    traces = []

    def method(m, x, t, key):
        if name == "exact":
            return exact_shapley(m, x, t, mask=GRID8, batch_size=128)
        return shapley_value_sampling(m, x, t, mask=GRID8, n_samples=3, key=key, batch_size=16)

    def traced(m, x, t, key):
        traces.append(1)
        return method(m, x, t, key)

    jitted = jax.jit(traced)
    out = jitted(trained_cnn, x, t, KEY)
    np.testing.assert_allclose(out, method(trained_cnn, x, t, KEY), rtol=1e-5, atol=1e-6)
    jitted(trained_cnn, x + 0.5, t[::-1], jax.random.key(7)).block_until_ready()
    assert len(traces) == 1
    core = _exact if name == "exact" else _sampling
    size = core._cache_size()
    method(trained_cnn, x * 2.0, t, jax.random.key(8)).block_until_ready()
    assert core._cache_size() == size


def test_errors(linear, images):
    model, _ = linear
    with pytest.raises(TypeError, match="required keyword-only argument: 'key'"):
        shapley_value_sampling(model, images, 0, mask=MASK4)
    with pytest.raises(ValueError, match="n_samples"):
        shapley_value_sampling(model, images, 0, mask=MASK4, n_samples=0, key=KEY)
    wide = visjax.as_model(lambda p, x: x * p, jnp.float32(1.0), input_shape=(17,))
    with pytest.raises(ValueError, match="at most 16 features, got K = 17"):
        exact_shapley(wide, jnp.zeros((1, 17)), 0)
    with pytest.raises(ValueError, match="batch_size"):
        exact_shapley(model, images, 0, mask=MASK4, batch_size=0)


def test_exact_matches_a_reference_over_all_permutations(trained_cnn, digits):
    import itertools

    x, t = jnp.asarray(digits.test.x[:2]), jnp.asarray(digits.test.y[:2])
    mask = np.minimum(GRID8, 4)  # 5 features: 120 orderings
    labels = np.broadcast_to(mask, x.shape[1:])
    bits = (np.arange(32)[:, None] >> np.arange(5)) & 1  # coalition c holds feature k if bit k
    inputs = jnp.where(bits[:, labels][None] == 1, x[:, None], 0.0).reshape(64, 8, 8, 1)
    v = np.asarray(trained_cnn(inputs)).reshape(2, 32, -1)[np.arange(2), :, np.asarray(t)]
    ref = np.zeros((2, 5))
    perms = list(itertools.permutations(range(5)))
    for p in perms:
        c = 0
        for k in p:
            ref[:, k] += v[:, c | (1 << k)] - v[:, c]
            c |= 1 << k
    ref /= len(perms)
    phi = per_feature(exact_shapley(trained_cnn, x, t, mask=mask), mask)
    np.testing.assert_allclose(phi, ref, rtol=1e-4, atol=1e-4)


def test_auto_batch_size_matches_explicit_sizes(trained_cnn, digits, monkeypatch):
    sizes = split_auto(monkeypatch)
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    default = shapley_value_sampling(trained_cnn, x, t, mask=GRID8, n_samples=5, key=KEY)
    explicit = [
        shapley_value_sampling(trained_cnn, x, t, mask=GRID8, n_samples=5, key=KEY, batch_size=b)
        for b in (None, 16)
    ]
    assert_auto_matches(default, explicit, sizes, 3 * 5 * 8)
    sizes.clear()
    default = exact_shapley(trained_cnn, x[:1], t[:1], mask=GRID8)
    explicit = [
        exact_shapley(trained_cnn, x[:1], t[:1], mask=GRID8, batch_size=b) for b in (None, 16)
    ]
    assert_auto_matches(default, explicit, sizes, 2**8)


@pytest.mark.parametrize("bad", BAD_BATCH_SIZES)
def test_bad_batch_sizes_are_refused(linear, images, bad):
    model, _ = linear
    with pytest.raises(ValueError, match="`batch_size`"):
        exact_shapley(model, images, 0, mask=MASK4, batch_size=bad)
    with pytest.raises(ValueError, match="`batch_size`"):
        shapley_value_sampling(model, images, 0, mask=MASK4, key=KEY, batch_size=bad)
