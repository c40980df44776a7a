import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax
from visjax.attribution import saliency
from visjax.attribution.deeplift import _deeplift, deeplift, deeplift_shap
from visjax.attribution.integrated import completeness_error


def pool_net():
    """conv -> tanh -> 2x2 max-pool -> relu -> dense: a network with max-pooling."""
    k1, k2 = jax.random.split(jax.random.key(7))
    params = {"k": jax.random.normal(k1, (3, 3, 1, 4)) * 0.5, "w": jax.random.normal(k2, (64, 3))}

    def apply(p, x):
        h = jax.lax.conv_general_dilated(
            x, p["k"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        h = jnp.tanh(h)
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = jax.nn.relu(h + 0.1)
        return h.reshape(h.shape[0], -1) @ p["w"]

    return visjax.as_model(apply, params, input_shape=(8, 8, 1))


def delta(model, x, b, t):
    out, ref = model(x), model(jnp.broadcast_to(b, x.shape))
    return np.take_along_axis(np.asarray(out - ref), np.asarray(t)[:, None], 1)[:, 0]


@pytest.mark.parametrize("baseline", [0.0, 0.3])
def test_summation_to_delta_digits_cnn(cnn_models, batch, baseline):
    model = cnn_models["function"]
    t = jnp.arange(batch.shape[0]) % 10
    phi = deeplift(model, batch, t, baseline=baseline)
    sums = np.asarray(phi).reshape(batch.shape[0], -1).sum(1)
    np.testing.assert_allclose(sums, delta(model, batch, baseline, t), rtol=1e-4, atol=1e-5)
    err = completeness_error(model, batch, t, attributions=phi, baseline=baseline)
    assert float(err.max()) < 1e-4
    if baseline == 0.0:  # untrained zoo CNN has zero biases: ReLU net is homogeneous
        return
    # with a nonzero baseline it is not the plain gradient x input
    plain = saliency(model, batch, t, absolute=False) * (batch - baseline)
    assert np.abs(np.asarray(phi - plain)).max() > 1e-4


def test_summation_to_delta_max_pool_network():
    model = pool_net()
    x = jax.random.normal(jax.random.key(1), (5, 8, 8, 1))
    b = jax.random.normal(jax.random.key(2), (5, 8, 8, 1)) * 0.5
    t = jnp.array([0, 1, 2, 0, 1])
    phi = deeplift(model, x, t, baseline=b)
    sums = np.asarray(phi).reshape(5, -1).sum(1)
    np.testing.assert_allclose(sums, delta(model, x, b, t), rtol=1e-4, atol=1e-5)


def test_deeplift_shap_is_the_mean_over_references(cnn_models, batch):
    model = cnn_models["function"]
    refs = jax.random.uniform(jax.random.key(3), (3, *batch.shape[1:]))
    got = deeplift_shap(model, batch, 2, references=refs)
    want = sum(deeplift(model, batch, 2, baseline=r) for r in refs) / 3
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    t = jnp.full((batch.shape[0],), 2)
    mean_delta = np.mean([delta(model, batch, r, t) for r in refs], 0)
    sums = np.asarray(got).reshape(batch.shape[0], -1).sum(1)
    np.testing.assert_allclose(sums, mean_delta, rtol=1e-4, atol=1e-5)


def test_same_for_nnx_linen_and_function(cnn_models, batch):
    results = {form: deeplift(m, batch, 4, baseline=0.2) for form, m in cnn_models.items()}
    for form in ("nnx", "linen"):
        np.testing.assert_allclose(results[form], results["function"], rtol=1e-5, atol=1e-6)


def test_jit_batch_and_no_retrace(cnn_models, batch):
    model = cnn_models["nnx"]
    t = jnp.arange(batch.shape[0]) % 10
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return deeplift(m, x, t)

    jitted = jax.jit(traced)
    out = jitted(model, batch, t)
    np.testing.assert_allclose(out, deeplift(model, batch, t), rtol=1e-5, atol=1e-6)
    singles = [deeplift(model, batch[i : i + 1], t[i : i + 1]) for i in range(batch.shape[0])]
    np.testing.assert_allclose(out, jnp.concatenate(singles), rtol=1e-5, atol=1e-6)
    new = model.replace(params=jax.tree.map(lambda a: a * 0.9, model.params))
    jitted(new, batch + 0.5, t[::-1]).block_until_ready()
    assert len(traces) == 1
    size = _deeplift._cache_size()
    deeplift(new, batch * 2.0, t).block_until_ready()
    assert _deeplift._cache_size() == size


@pytest.mark.parametrize(
    "act", [jax.nn.sigmoid, jax.nn.softplus, jax.nn.elu, lambda h: jnp.maximum(h, 0.0)]
)
def test_elementwise_units_sum_to_delta(act):
    w = jax.random.normal(jax.random.key(4), (5, 4))
    v = jax.random.normal(jax.random.key(5), (4, 3))
    model = visjax.as_model(lambda p, x: act(x @ p[0]) @ p[1], (w, v), input_shape=(5,))
    x = jax.random.normal(jax.random.key(6), (4, 5))
    t = jnp.array([0, 1, 2, 0])
    phi = deeplift(model, x, t)
    np.testing.assert_allclose(phi.sum(1), delta(model, x, 0.0, t), rtol=1e-4, atol=1e-5)


def test_unsupported_primitive_raises():
    w = jnp.ones((3, 3))
    model = visjax.as_model(lambda p, x: (x @ p) * (x @ p), w, input_shape=(3,))
    with pytest.raises(ValueError, match="`mul`"):
        deeplift(model, jnp.ones((2, 3)), 0)
    model = visjax.as_model(lambda p, x: jax.nn.softmax(x @ p) @ p, w, input_shape=(3,))
    with pytest.raises(ValueError, match="deeplift: the primitive `reduce_max`"):
        deeplift(model, jnp.ones((2, 3)), 0)


def test_bad_baseline(cnn_models, batch):
    model = cnn_models["function"]
    with pytest.raises(ValueError, match=r"`baseline` of shape \(3, 3\) does not broadcast"):
        deeplift(model, batch, 0, baseline=jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="`baseline` contains NaN or Inf"):
        deeplift(model, batch, 0, baseline=jnp.nan)
    with pytest.raises(ValueError, match="`references` must have shape"):
        deeplift_shap(model, batch, 0, references=batch[0])
