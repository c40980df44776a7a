import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution.cam.gradient import grad_cam
from visjax.attribution.cam.process import multi_layer, normalize, positive, postprocess, upsample

cv2 = pytest.importorskip("cv2")


def scale_cam_image(cam, size=None):
    """pytorch-grad-cam's scale_cam_image, transcribed (size is OpenCV's (width, height))."""
    out = []
    for img in cam:
        img = img - np.min(img)
        img = img / (1e-7 + np.max(img))
        if size is not None:
            img = cv2.resize(np.float32(img), size)
        out.append(img)
    return np.float32(out)


@pytest.fixture(scope="module")
def maps():
    return jax.random.normal(jax.random.key(0), (3, 4, 5))


def test_positive_and_normalize(maps):
    np.testing.assert_array_equal(positive(maps), np.maximum(maps, 0))
    np.testing.assert_allclose(normalize(maps), scale_cam_image(np.asarray(maps)), rtol=1e-6)
    assert float(jnp.abs(normalize(jnp.ones((2, 3, 3)))).max()) == 0.0


@pytest.mark.parametrize("size", [(8, 10), (13, 7), (2, 3), (4, 5)])
def test_upsample_matches_opencv_inter_linear(maps, size):
    want = np.stack([cv2.resize(np.asarray(m), size[::-1]) for m in np.asarray(maps)])
    np.testing.assert_allclose(upsample(maps, size), want, rtol=1e-5, atol=1e-6)


def test_postprocess_is_pytorch_grad_cams_pipeline(maps):
    m = np.asarray(maps)
    want = scale_cam_image(scale_cam_image(np.maximum(m, 0), (10, 8)))
    np.testing.assert_allclose(postprocess(maps, (8, 10)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        postprocess(maps), scale_cam_image(scale_cam_image(np.maximum(m, 0))), rtol=1e-6
    )
    assert jax.jit(postprocess, static_argnums=1)(maps, (8, 10)).shape == (3, 8, 10)


def test_multi_layer_aggregates_as_pytorch_grad_cam(cnn_models, batch):
    model = cnn_models["function"]
    per = [
        scale_cam_image(np.maximum(np.asarray(grad_cam(model, batch, 3, layer=n)), 0), (8, 8))
        for n in ("conv1", "conv2")
    ]
    want = scale_cam_image(np.maximum(np.stack(per, 1), 0).mean(1))
    got = multi_layer(grad_cam, ["conv1", "conv2"])(model, batch, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    single = multi_layer(grad_cam, ["conv2"])(model, batch, 3)
    np.testing.assert_allclose(single, postprocess(grad_cam(model, batch, 3), (8, 8)), atol=1e-6)


def test_bad_input(maps):
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        normalize(maps[0])
    with pytest.raises(ValueError, match="`size`"):
        upsample(maps, (0, 3))
    with pytest.raises(ValueError, match="`size`"):
        upsample(maps, 5)
    with pytest.raises(ValueError, match="at least one"):
        multi_layer(grad_cam, [])
    with pytest.raises(TypeError, match="`layers`"):
        multi_layer(grad_cam, "conv2")


def test_postprocess_refuses_non_finite_maps(maps):
    bad = jnp.asarray(maps).at[0, 0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="`cams`"):
        postprocess(bad, (8, 8))
    with pytest.raises(ValueError, match="`cams`"):
        postprocess(jnp.asarray(maps).at[1, 1, 1].set(jnp.inf))
