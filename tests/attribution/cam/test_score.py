import jax
import jax.numpy as jnp
import numpy as np
import pytest

import visjax
from visjax.attribution.cam import score
from visjax.attribution.cam.process import bilinear_matrix
from visjax.base import batching
from visjax.zoo import digits_cnn


def toy_params(key, channels=2):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "k": jax.random.normal(k1, (channels,)),
        "b": 0.1 * jax.random.normal(k2, (channels,)),
        "w": jax.random.normal(k3, (channels, 3)),
        "c": jnp.array([0.5, -0.2, 0.1]),
    }


def toy_apply(p, x):
    """8x8 images -> 2x2 average pool -> per-channel affine ("feat", 4x4xC) -> ReLU -> GAP -> fc."""
    pooled = x.reshape(x.shape[0], 4, 2, 4, 2, 1).mean((2, 4))
    feat = visjax.tag(pooled * p["k"] + p["b"], "feat")
    return jax.nn.relu(feat).mean((1, 2)) @ p["w"] + p["c"]


@pytest.fixture(scope="module")
def toy():
    return visjax.as_model(toy_apply, toy_params(jax.random.key(0)), input_shape=(8, 8, 1))


@pytest.fixture(scope="module")
def x8():
    return jax.random.uniform(jax.random.key(3), (3, 8, 8, 1))


def numpy_score_cam(p, x, t):
    """A NumPy transcription of pytorch-grad-cam's ScoreCAM on the toy model."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x = np.asarray(x, np.float64)

    def forward(xx):
        pooled = xx.reshape(xx.shape[0], 4, 2, 4, 2, 1).mean((2, 4))
        feat = pooled * p["k"] + p["b"]
        return feat, np.maximum(feat, 0).mean((1, 2)) @ p["w"] + p["c"]

    feat, _ = forward(x)
    n, h, w, c = feat.shape
    src = np.arange(8) * (h - 1) / 7  # aligned corners, 4 -> 8
    up = np.zeros((n, 8, 8, c))
    for i in range(8):
        for j in range(8):
            i0, j0 = int(np.floor(src[i])), int(np.floor(src[j]))
            i1, j1 = min(i0 + 1, h - 1), min(j0 + 1, w - 1)
            fi, fj = src[i] - i0, src[j] - j0
            up[:, i, j] = (
                (1 - fi) * (1 - fj) * feat[:, i0, j0]
                + (1 - fi) * fj * feat[:, i0, j1]
                + fi * (1 - fj) * feat[:, i1, j0]
                + fi * fj * feat[:, i1, j1]
            )
    cams = []
    for e in range(n):
        s = []
        for ch in range(c):
            u = up[e, :, :, ch]
            m = (u - u.min()) / (u.max() - u.min() + 1e-8)
            s.append(forward(x[e : e + 1] * m[None, :, :, None])[1][0, t[e]])
        wts = np.exp(s - np.max(s))
        wts /= wts.sum()
        cams.append((feat[e] * wts).sum(-1))
    return np.stack(cams)


def test_score_cam_matches_numpy_transcription(toy, x8):
    t = jnp.array([0, 1, 2])
    got = score.score_cam(toy, x8, t, layer="feat")
    np.testing.assert_allclose(got, numpy_score_cam(toy.params, x8, t), rtol=1e-5, atol=1e-6)


def test_ablation_cam_closed_form_for_linear_head(toy, x8):
    """A ReLU then GAP and a linear head: ablating channel c (to min - 1e7, which the ReLU turns
    into 0) removes its contribution, so w_c = W[c, t] mean(relu(A_c)) / f(x)."""
    t = jnp.array([0, 1, 2])
    feat = toy.activations(x8, "feat")[1]["feat"]
    contrib = jax.nn.relu(feat).mean((1, 2)) * toy.params["w"][:, t].T
    weights = contrib / toy(x8)[jnp.arange(3), t][:, None]
    want = jnp.einsum("nhwc,nc->nhw", feat, weights)
    got = score.ablation_cam(toy, x8, t, layer="feat")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_ablation_value_is_zero_after_a_relu():
    a = jnp.stack([jnp.array([[0.0, 2.0]]), jnp.array([[-1.0, 2.0]])])
    np.testing.assert_array_equal(score.ablation_value(a), [0.0, -1.0 - 1e7])


@pytest.mark.parametrize("method", [score.score_cam, score.ablation_cam])
def test_chunked_equals_unchunked_and_batch_equals_singles(method, toy, x8):
    t = jnp.array([2, 1, 0])
    full = method(toy, x8, t, layer="feat", batch_size=None)
    chunked = method(toy, x8, t, layer="feat", batch_size=4)  # 6 rows: 4 + 2
    np.testing.assert_allclose(chunked, full, rtol=1e-5, atol=1e-6)
    singles = [method(toy, x8[i : i + 1], t[i : i + 1], layer="feat") for i in range(3)]
    np.testing.assert_allclose(jnp.concatenate(singles), full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pick", [None, 4])
@pytest.mark.parametrize("method", [score.score_cam, score.ablation_cam])
def test_auto_default_splits_and_equals_explicit_sizes(method, toy, x8, pick, monkeypatch):
    # pick None: a 1-byte chunk budget, so "auto" (the default) runs the 6 rows one per chunk;
    # pick 4: two chunks of 4, the rows padded to 8.
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 1)
    monkeypatch.setattr(batching, "CPU_FORWARD_CHUNK_BYTES", 1)
    monkeypatch.setattr(batching, "ACCELERATOR_CHUNK_BYTES", 1)
    picks = []
    real = batching.auto_rows
    monkeypatch.setattr(
        batching, "auto_rows", lambda *a, **k: picks.append(pick or real(*a, **k)) or picks[-1]
    )
    core = score._score_cam if method is score.score_cam else score._ablation_cam
    core.clear_cache()
    t = jnp.array([2, 1, 0])
    default = method(toy, x8, t, layer="feat")
    core.clear_cache()
    assert picks == [pick or 1]
    for size in (None, 4):
        np.testing.assert_allclose(
            default, method(toy, x8, t, layer="feat", batch_size=size), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("method", [score.score_cam, score.ablation_cam])
def test_jit_and_no_retrace(method, toy, x8):
    t = jnp.array([0, 1, 2])
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return method(m, x, t, layer="feat", batch_size=4)

    jitted = jax.jit(traced)
    np.testing.assert_allclose(jitted(toy, x8, t), method(toy, x8, t, layer="feat"), 1e-5)
    new = toy.replace(params=jax.tree.map(lambda a: a * 0.9, toy.params))
    jitted(new, x8 + 0.5, t[::-1]).block_until_ready()
    assert len(traces) == 1


def test_callable_target_is_the_score(toy, x8):
    got = score.score_cam(toy, x8, lambda o: o[1], layer="feat")
    np.testing.assert_allclose(got, score.score_cam(toy, x8, 1, layer="feat"), rtol=1e-6)
    got = score.ablation_cam(toy, x8, lambda o: o[1], layer="feat")
    np.testing.assert_allclose(got, score.ablation_cam(toy, x8, 1, layer="feat"), rtol=1e-6)


def test_default_layer_is_the_last_spatial_one(toy, x8):
    np.testing.assert_array_equal(
        score.score_cam(toy, x8, 0), score.score_cam(toy, x8, 0, layer="feat")
    )


@pytest.mark.parametrize("method", [score.score_cam, score.ablation_cam])
def test_bad_input(method):
    model = digits_cnn("function")
    x = jnp.ones((2, 8, 8, 1))
    with pytest.raises(ValueError, match="not a layer"):
        method(model, x, 0, layer="nope")
    with pytest.raises(ValueError, match="not spatial"):
        method(model, x, 0, layer="fc")
    with pytest.raises(ValueError, match="target"):
        method(model, x, 10, layer="conv2")
    for bad in (0, -3, 1.5, True, "big"):
        with pytest.raises(ValueError, match="batch_size"):
            method(model, x, 0, layer="conv2", batch_size=bad)


def test_interpolation_matrices():
    np.testing.assert_array_equal(bilinear_matrix(5, 5, align_corners=True), np.eye(5))
    m = bilinear_matrix(4, 8, align_corners=True)
    np.testing.assert_allclose(m.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(m[[0, -1]][:, [0, -1]], np.eye(2))
