import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution.cam._core import activation_and_grad
from visjax.attribution.cam.eigen import _eigen, eigen_cam, eigen_grad_cam, principal_projection
from visjax.attribution.cam.gradient import hires_cam
from visjax.zoo import digits_vit


def get_2d_projection(m):
    """pytorch-grad-cam's get_2d_projection, transcribed for NHWC (float64)."""
    out = []
    for a in np.asarray(m, np.float64):
        r = a.reshape(-1, a.shape[-1])
        r = r - r.mean(0)
        _, _, vt = np.linalg.svd(r, full_matrices=True)
        out.append((r @ vt[0]).reshape(a.shape[:2]))
    return np.stack(out)


def signed_like(ref, total):
    """Flip each reference map to correlate non-negatively with the channel sum."""
    t = total - total.mean((1, 2), keepdims=True)
    s = np.where((ref * t).sum((1, 2)) < 0, -1.0, 1.0)
    return ref * s[:, None, None]


def assert_maps_close(got, want, m):
    """Maps from a float32 SVD agree up to the per-example sign, to within its conditioning.

    The SVD determines ``v₁`` to ``‖δM‖ / (s₁ − s₂)`` for a perturbation ``δM`` of the centred
    matrix (Wedin), and the map ``M v₁`` to ``‖δM‖ (1 + s₁ / (s₁ − s₂))``. Float32 rounding of
    the layer and LAPACK's backward error give ``‖δM‖ ≈ eps₃₂ ‖M‖_F``; which rounding depends on
    the batch shape and on OpenBLAS's kernels (``OPENBLAS_CORETYPE``), so batch and singles, or
    two runs, differ at ~1e-4 relative on a small gap. The tolerance is 4x that bound, per example.
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    r = np.asarray(m, np.float64).reshape(len(m), -1, m.shape[-1])
    r = r - r.mean(1, keepdims=True)
    s = np.linalg.svd(r, compute_uv=False)
    eps32 = np.finfo(np.float32).eps
    bound = eps32 * np.linalg.norm(r, axis=(1, 2)) * (1 + s[:, 0] / (s[:, 0] - s[:, 1]))
    sign = np.where((got * want).sum((1, 2)) < 0, -1.0, 1.0)
    err = np.abs(sign[:, None, None] * got - want).max((1, 2))
    assert (err <= 4 * bound).all(), (err, 4 * bound)


def test_principal_projection_matches_numpy_svd():
    m = jax.random.normal(jax.random.key(0), (4, 5, 6, 7)) + jnp.linspace(0, 2, 7)
    want = signed_like(get_2d_projection(m), np.asarray(m, np.float64).sum(-1))
    np.testing.assert_allclose(principal_projection(m), want, rtol=1e-4, atol=1e-5)
    # the sign rule: non-negative correlation with the channel sum
    total = np.asarray(m).sum(-1)
    corr = (np.asarray(principal_projection(m)) * (total - total.mean((1, 2), keepdims=True))).sum(
        (1, 2)
    )
    assert (corr >= 0).all()


def test_eigen_cams_on_the_cnn(cnn_models, batch):
    model = cnn_models["function"]
    t = jnp.array([0, 3, 5, 7, 9])
    a, g, _ = activation_and_grad(model, batch, t, None, "conv2")
    a, g = np.asarray(a, np.float64), np.asarray(g, np.float64)
    want = signed_like(get_2d_projection(a), a.sum(-1))
    np.testing.assert_allclose(eigen_cam(model, batch), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(eigen_cam(model, batch, t), want, rtol=1e-4, atol=1e-5)
    want = signed_like(get_2d_projection(g * a), np.asarray(hires_cam(model, batch, t)))
    np.testing.assert_allclose(eigen_grad_cam(model, batch, t), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", (eigen_cam, eigen_grad_cam), ids=lambda m: m.__name__)
def test_forms_jit_batch_and_no_retrace(method, cnn_models, batch):
    def matrix(t):
        a, g, _ = activation_and_grad(cnn_models["function"], batch, t, None, "conv2")
        return g * a if method is eigen_grad_cam else a

    results = {form: method(m, batch, 4, layer="conv2") for form, m in cnn_models.items()}
    for form in ("nnx", "linen"):
        assert_maps_close(results[form], results["function"], matrix(jnp.full(5, 4)))
    model = cnn_models["nnx"]
    t = jnp.array([0, 3, 5, 7, 9])
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return method(m, x, t)

    jitted = jax.jit(traced)
    out = jitted(model, batch, t)
    singles = [method(model, batch[i : i + 1], t[i : i + 1]) for i in range(5)]
    assert_maps_close(out, jnp.concatenate(singles), matrix(t))
    jitted(model.replace(params=jax.tree.map(lambda a: a * 0.9, model.params)), batch, t)
    assert len(traces) == 1
    size = _eigen._cache_size()
    method(model, batch * 2.0, t).block_until_ready()
    assert _eigen._cache_size() == size


def test_vit_and_bad_input(cnn_models, batch):
    assert eigen_cam(digits_vit(), batch, layer="blocks.1").shape == (5, 4, 4)
    with pytest.raises(ValueError, match="known layers"):
        eigen_cam(cnn_models["function"], batch, layer="nope")
    with pytest.raises(ValueError, match=r"`target` must be in"):
        eigen_grad_cam(cnn_models["function"], batch, -1)
