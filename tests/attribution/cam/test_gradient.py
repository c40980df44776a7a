import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax
from visjax.attribution.cam import gradient as gc
from visjax.attribution.cam.gradient import (
    _gradient_cam,
    grad_cam,
    grad_cam_plus_plus,
    guided_grad_cam,
    hires_cam,
    layer_cam,
    xgrad_cam,
)
from visjax.attribution.cam.process import postprocess
from visjax.attribution.modified import guided_backprop
from visjax.zoo import digits_vit

METHODS = (grad_cam, grad_cam_plus_plus, xgrad_cam, hires_cam, layer_cam)
ids = [m.__name__ for m in METHODS]


@pytest.fixture(scope="module")
def gap_net():
    """feat = tanh(x P) per pixel (a 1x1 conv), then global average pool and a linear head."""
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    p = {
        "P": jax.random.normal(k1, (3, 5)),
        "W": jax.random.normal(k2, (5, 4)),
        "c": jax.random.normal(k3, (4,)),
    }

    def apply(p, x):
        feat = visjax.tag(jnp.tanh(x @ p["P"]) + 0.5, "feat")
        return feat.mean((1, 2)) @ p["W"] + p["c"]

    model = visjax.as_model(apply, p, input_shape=(4, 6, 3))
    x = jax.random.normal(jax.random.key(1), (3, 4, 6, 3))
    return model, p, x


def numpy_cams(a, g):
    """NumPy transcription of pytorch-grad-cam's get_cam_image, NHWC."""
    a, g = np.asarray(a, np.float64), np.asarray(g, np.float64)
    s = a.sum((1, 2), keepdims=True)
    g2 = g**2
    aij = np.where(g != 0, g2 / (2 * g2 + s * g2 * g + 1e-6), 0)
    w = {
        "grad_cam": g.mean((1, 2)),
        "grad_cam_plus_plus": (np.maximum(g, 0) * aij).sum((1, 2)),
        "xgrad_cam": (g * a / (s + 1e-7)).sum((1, 2)),
    }
    out = {k: (v[:, None, None, :] * a).sum(-1) for k, v in w.items()}
    out["hires_cam"] = (g * a).sum(-1)
    out["layer_cam"] = (np.maximum(g, 0) * a).sum(-1)
    return out


def test_closed_form_after_global_average_pooling(gap_net):
    model, p, x = gap_net
    t = jnp.array([0, 3, 1])
    a = np.asarray(jnp.tanh(x @ p["P"]) + 0.5, np.float64)
    hw = a.shape[1] * a.shape[2]
    w = np.asarray(p["W"], np.float64)[:, np.asarray(t)].T  # (N, C): the head's column
    g = np.broadcast_to(w[:, None, None, :] / hw, a.shape)  # dy/dA is constant over positions
    expect = numpy_cams(a, g)
    # Grad-CAM and HiResCAM coincide here: w_k = W_kt / (H W), the map is Σ_k W_kt A^k / (H W)
    np.testing.assert_allclose(expect["grad_cam"], (w[:, None, None] * a).sum(-1) / hw)
    np.testing.assert_allclose(expect["hires_cam"], expect["grad_cam"])
    for method in METHODS:
        got = method(model, x, t, layer="feat")
        assert got.shape == (3, 4, 6)
        np.testing.assert_allclose(got, expect[method.__name__], rtol=2e-5, atol=1e-6)
    # HiResCAM sums to the score minus the head's bias
    scores = np.asarray(model(x))[np.arange(3), np.asarray(t)] - np.asarray(p["c"])[t]
    np.testing.assert_allclose(hires_cam(model, x, t).sum((1, 2)), scores, rtol=1e-5)


def test_cnn_matches_numpy_formulas_on_its_own_grads(cnn_models, batch):
    model = cnn_models["function"]
    t = jnp.array([0, 3, 5, 7, 9])
    from visjax.attribution.cam._core import activation_and_grad

    a, g, _ = activation_and_grad(model, batch, t, None, "conv2")
    expect = numpy_cams(a, g)
    for method in METHODS:
        got = method(model, batch, t, layer="conv2")
        np.testing.assert_allclose(got, expect[method.__name__], rtol=1e-4, atol=1e-6)


def test_layer_none_picks_the_last_spatial_layer(cnn_models, batch):
    model = cnn_models["nnx"]
    np.testing.assert_array_equal(
        grad_cam(model, batch, 2), grad_cam(model, batch, 2, layer="conv2")
    )
    assert grad_cam(model, batch, 2, layer="conv1").shape == (5, 8, 8)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_vit_tokens_become_the_patch_grid(batch):
    vit = digits_vit()
    got = grad_cam(vit, batch, 1, layer="blocks.1.norm1")
    assert got.shape == (5, 4, 4) and float(jnp.abs(got).max()) > 0
    # the automatic rule: class token dropped, the 16 patch tokens row by row
    rows = lambda a: a[:, 1:].reshape(a.shape[0], 4, 4, a.shape[2])  # noqa: E731
    np.testing.assert_allclose(
        grad_cam(vit, batch, 1, layer="blocks.1.norm1", reshape=rows), got, rtol=1e-6
    )
    cols = lambda a: rows(a).transpose(0, 2, 1, 3)  # noqa: E731
    np.testing.assert_allclose(
        hires_cam(vit, batch, 1, layer="blocks.1.norm1", reshape=cols),
        hires_cam(vit, batch, 1, layer="blocks.1.norm1").transpose(0, 2, 1),
        rtol=1e-5,
        atol=1e-7,
    )


@pytest.mark.parametrize("method", (*METHODS, guided_grad_cam), ids=[*ids, "guided_grad_cam"])
def test_same_for_nnx_linen_and_function(method, cnn_models, batch):
    results = {form: method(m, batch, 4, layer="conv2") for form, m in cnn_models.items()}
    for form in ("nnx", "linen"):
        np.testing.assert_allclose(results[form], results["function"], rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(results["function"]).max()) > 0


@pytest.mark.parametrize("method", (grad_cam, guided_grad_cam), ids=["grad_cam", "guided"])
def test_jit_batch_and_no_retrace(method, cnn_models, batch):
    model = cnn_models["nnx"]
    t = jnp.array([0, 3, 5, 7, 9])
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return method(m, x, t, layer="conv2")

    jitted = jax.jit(traced)
    out = jitted(model, batch, t)
    np.testing.assert_allclose(out, method(model, batch, t, layer="conv2"), rtol=1e-5, atol=1e-6)
    singles = [method(model, batch[i : i + 1], t[i : i + 1], layer="conv2") for i in range(5)]
    np.testing.assert_allclose(out, jnp.concatenate(singles), rtol=1e-5, atol=1e-6)
    new = model.replace(params=jax.tree.map(lambda a: a * 0.9, model.params))
    jitted(new, batch + 0.5, t[::-1]).block_until_ready()
    assert len(traces) == 1


def test_eager_entry_compiles_once(cnn_models, batch):
    model = cnn_models["function"]
    grad_cam(model, batch, 1)
    size = _gradient_cam._cache_size()
    new = model.replace(params=jax.tree.map(lambda a: a * 1.1, model.params))
    grad_cam(new, batch * 2.0, 3).block_until_ready()
    assert _gradient_cam._cache_size() == size


def test_callable_target(cnn_models, batch):
    model = cnn_models["function"]
    pick = lambda out: out[6]  # noqa: E731
    np.testing.assert_allclose(layer_cam(model, batch, pick), layer_cam(model, batch, 6), rtol=1e-6)


def test_guided_grad_cam_is_guided_backprop_times_the_map(cnn_models, batch):
    model = cnn_models["function"]
    got = guided_grad_cam(model, batch, 2)
    cam = postprocess(grad_cam(model, batch, 2), (8, 8))
    np.testing.assert_allclose(
        got, guided_backprop(model, batch, 2) * cam[..., None], rtol=1e-5, atol=1e-7
    )


def test_bad_input(cnn_models, batch):
    model = cnn_models["function"]
    with pytest.raises(ValueError, match=r"known layers: \['conv1', 'conv2', 'fc'\]"):
        grad_cam(model, batch, 1, layer="conv3")
    with pytest.raises(ValueError, match=r"'fc' has activation shape \(5, 10\)"):
        grad_cam(model, batch, 1, layer="fc")
    with pytest.raises(ValueError, match=r"`target` must be in \[0, 10\)"):
        hires_cam(model, batch, 10)
    with pytest.raises(TypeError, match="`layer`"):
        grad_cam(model, batch, 1, layer=2)
    with pytest.raises(TypeError, match="`reshape`"):
        grad_cam(model, batch, 1, reshape="tokens")
    with pytest.raises(ValueError, match="NaN"):
        grad_cam(model, batch.at[0, 0, 0, 0].set(jnp.nan), 1)
    assert gc.__doc__
