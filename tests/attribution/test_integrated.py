import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution import (
    at_layer,
    completeness_error,
    expected_gradients,
    integrated_gradients,
    make_baseline,
    rule_nodes,
)
from visjax.attribution.integrated import RULES
from visjax.base import batching

BAD_BATCH_SIZES = [0, -1, 1.5, "big", True]


def split_auto(monkeypatch) -> list:
    """``batch_size="auto"`` with a 64 KiB chunk budget, so small cases split into several chunks;
    returns the list of the sizes auto resolves to (recorded while tracing: use shapes no other
    test compiles, or the jit cache skips the trace)."""
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 64 * 2**10)
    monkeypatch.setattr(batching, "CPU_FORWARD_CHUNK_BYTES", 64 * 2**10)
    monkeypatch.setattr(batching, "ACCELERATOR_CHUNK_BYTES", 64 * 2**10)
    sizes = []
    real = batching.resolve_batch_size

    def spy(*args, **kwargs):
        sizes.append(real(*args, **kwargs))
        return sizes[-1]

    monkeypatch.setattr(batching, "resolve_batch_size", spy)
    monkeypatch.setattr("visjax.attribution.noise.resolve_batch_size", spy)
    return sizes


def assert_auto_matches(default, explicit, sizes, rows):
    """The default (``"auto"``) split ``rows`` into several chunks and equals every explicit
    size's result up to float32 reordering."""
    assert any(s is not None and s < rows for s in sizes), (sizes, rows)
    scale = float(jnp.abs(default).max())
    for out in explicit:
        np.testing.assert_allclose(out, default, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("method", RULES)
def test_linear_model_closed_form_for_every_rule(linear, images, method):
    model, w = linear
    baseline = jnp.full(images.shape, 0.25)
    phi = integrated_gradients(model, images, 2, baseline=baseline, n_steps=7, rule=method)
    total_weight = 1 - 1 / 7 if method == "riemann_trapezoid" else 1.0
    expected = (images - baseline) * w[:, 2].reshape(4, 4, 1) * total_weight
    np.testing.assert_allclose(phi, expected, rtol=1e-5, atol=1e-7)


def test_rule_nodes_follow_captum():
    a, w = rule_nodes("riemann_trapezoid", n_steps=5)
    np.testing.assert_allclose(a, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(w, [0.1, 0.2, 0.2, 0.2, 0.1])
    a, w = rule_nodes("riemann_left", n_steps=4)
    np.testing.assert_allclose(a, [0, 0.25, 0.5, 0.75])
    a, _ = rule_nodes("riemann_right", n_steps=4)
    np.testing.assert_allclose(a, [0.25, 0.5, 0.75, 1])
    a, _ = rule_nodes("riemann_middle", n_steps=4)
    np.testing.assert_allclose(a, [0.125, 0.375, 0.625, 0.875])
    a, w = rule_nodes("gausslegendre", n_steps=3)
    np.testing.assert_allclose(w.sum(), 1.0)
    np.testing.assert_allclose(a, 0.5 * (1 + np.array([-np.sqrt(0.6), 0, np.sqrt(0.6)])))


def test_completeness_error_falls_with_n_steps(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:16]), jnp.asarray(digits.test.y[:16])
    medians = []
    for n in (4, 16, 64):
        phi = integrated_gradients(trained_cnn, x, t, n_steps=n)
        medians.append(float(jnp.median(completeness_error(trained_cnn, x, t, attributions=phi))))
    assert medians[0] > medians[1] > medians[2]
    assert medians[2] < 0.02


def test_batch_size_does_not_change_the_result(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:5]), jnp.asarray(digits.test.y[:5])
    full = integrated_gradients(trained_cnn, x, t, n_steps=12, rule="riemann_middle")
    for bs in (7, 60):
        chunked = integrated_gradients(
            trained_cnn, x, t, n_steps=12, rule="riemann_middle", batch_size=bs
        )
        np.testing.assert_allclose(chunked, full, rtol=1e-4, atol=1e-6)


def test_layer_integrated_gradients_is_complete(trained_cnn, digits):
    x, t = jnp.asarray(digits.test.x[:4]), jnp.asarray(digits.test.y[:4])
    phi = at_layer(integrated_gradients, "conv2")(
        trained_cnn, x, t, n_steps=512, rule="riemann_middle", batch_size=1024
    )
    assert phi.shape == (4, 8, 8, 32)
    delta = trained_cnn(x)[jnp.arange(4), t] - trained_cnn(jnp.zeros_like(x))[jnp.arange(4), t]
    np.testing.assert_allclose(phi.reshape(4, -1).sum(1), delta, rtol=0.02, atol=0.02)


def test_named_baselines(images):
    assert float(jnp.abs(make_baseline(images, "zeros")).max()) == 0.0
    u = make_baseline(images, "uniform", key=jax.random.key(0))
    assert u.shape == images.shape
    assert bool(jnp.all(u >= images.min((1, 2, 3), keepdims=True)))
    assert bool(jnp.all(u <= images.max((1, 2, 3), keepdims=True)))
    blurred = make_baseline(images, "blur")
    np.testing.assert_allclose(blurred.mean(), images.mean(), rtol=0.05)
    assert float(blurred.std()) < float(images.std())
    np.testing.assert_allclose(make_baseline(images, 0.5), jnp.full_like(images, 0.5))


def test_expected_gradients_with_one_reference_is_exact_on_a_linear_model(linear, images):
    model, w = linear
    ref = jnp.full((1, 4, 4, 1), 0.3)
    phi = expected_gradients(model, images, 0, references=ref, n_samples=5, key=jax.random.key(1))
    np.testing.assert_allclose(phi, (images - 0.3) * w[:, 0].reshape(4, 4, 1), rtol=1e-5)


def test_expected_gradients_is_complete_in_expectation(linear, images):
    model, w = linear
    refs = jax.random.uniform(jax.random.key(5), (4, 4, 4, 1))
    phi = expected_gradients(
        model, images, 0, references=refs, n_samples=4000, batch_size=3000, key=jax.random.key(1)
    )
    expected = (images - refs.mean(0)) * w[:, 0].reshape(4, 4, 1)
    np.testing.assert_allclose(phi.sum((1, 2, 3)), expected.sum((1, 2, 3)), atol=0.1)


def test_bad_arguments(linear, images):
    model, _ = linear
    with pytest.raises(ValueError, match="`n_steps` must be an int >= 2"):
        integrated_gradients(model, images, 0, n_steps=1, rule="riemann_left")
    with pytest.raises(ValueError, match="`rule` must be one of"):
        integrated_gradients(model, images, 0, rule="simpson")
    with pytest.raises(ValueError, match="`baseline` of shape"):
        integrated_gradients(model, images, 0, baseline=jnp.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="`key` is required"):
        integrated_gradients(model, images, 0, baseline="uniform")
    with pytest.raises(TypeError, match="required keyword-only argument: 'key'"):
        expected_gradients(model, images, 0, references=images)
    with pytest.raises(ValueError, match="`references` must have shape"):
        expected_gradients(model, images, 0, references=images[0], key=jax.random.key(0))
    with pytest.raises(ValueError, match="`baseline` contains NaN"):
        integrated_gradients(model, images, 0, baseline=jnp.nan)
    with pytest.raises(ValueError, match="`batch_size`"):
        integrated_gradients(model, images, 0, batch_size=0)


def test_completeness_error_checks_the_attributions_shape(linear, images):
    model, _ = linear
    with pytest.raises(ValueError, match="`attributions`"):
        completeness_error(model, images, 0, attributions=jnp.zeros((3, 16)))
    with pytest.raises(ValueError, match="`attributions`"):
        completeness_error(model, images, 0, attributions=jnp.zeros((2, 4, 4, 1)))


def test_auto_batch_size_is_the_default(trained_cnn, digits, monkeypatch):
    sizes = split_auto(monkeypatch)
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    kw = {"n_steps": 13, "rule": "riemann_trapezoid"}
    default = integrated_gradients(trained_cnn, x, t, **kw)
    explicit = [integrated_gradients(trained_cnn, x, t, **kw, batch_size=b) for b in (None, 8)]
    assert_auto_matches(default, explicit, sizes, 3 * 13)


def test_auto_batch_size_expected_gradients(trained_cnn, digits, monkeypatch):
    sizes = split_auto(monkeypatch)
    x, t = jnp.asarray(digits.test.x[:3]), jnp.asarray(digits.test.y[:3])
    kw = {"references": jnp.asarray(digits.train.x[:5]), "n_samples": 11, "key": jax.random.key(4)}
    default = expected_gradients(trained_cnn, x, t, **kw)
    explicit = [expected_gradients(trained_cnn, x, t, **kw, batch_size=b) for b in (None, 8)]
    assert_auto_matches(default, explicit, sizes, 3 * 11)


@pytest.mark.parametrize("bad", BAD_BATCH_SIZES)
def test_bad_batch_sizes_are_refused(linear, images, bad):
    model, _ = linear
    with pytest.raises(ValueError, match="`batch_size`"):
        integrated_gradients(model, images, 0, batch_size=bad)
    with pytest.raises(ValueError, match="`batch_size`"):
        expected_gradients(
            model, images, 0, references=images, key=jax.random.key(0), batch_size=bad
        )


def test_auto_example_groups_equal_one_batch(trained_cnn, digits, monkeypatch):
    # A tiny group budget forces the Python-driven example groups (7 examples: groups of 3, the
    # last one padded); the result equals one batch up to float32 reordering.
    from visjax.attribution import integrated

    calls = []
    real = integrated.auto_example_group

    def spy(n, example_bytes, **kw):
        monkeypatch.setattr(batching, "CPU_GROUP_BYTES", 3 * example_bytes)
        calls.append(real(n, example_bytes, **kw))
        return calls[-1]

    monkeypatch.setattr(integrated, "auto_example_group", spy)
    x, t = jnp.asarray(digits.test.x[:7]), jnp.asarray(digits.test.y[:7])
    kw = {"n_steps": 9, "rule": "riemann_trapezoid"}
    grouped = integrated_gradients(trained_cnn, x, t, **kw)
    assert (calls and calls[-1] == 3) or jax.default_backend() != "cpu"
    full = integrated_gradients(trained_cnn, x, t, **kw, batch_size=None)
    np.testing.assert_allclose(grouped, full, rtol=1e-5, atol=1e-6)
