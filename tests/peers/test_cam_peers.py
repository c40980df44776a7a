"""visjax's gradient CAMs and Eigen-CAMs against pytorch-grad-cam on the same digits CNN weights.

Target layer: visjax's "conv2" is the convolution's output before its ReLU, the same tensor
pytorch-grad-cam hooks on ``tm.conv2``. Raw maps are compared with its ``get_cam_image`` on the
activations and gradients its hooks captured; processed maps with its ``__call__``.
"""

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from tests.peers import rel_err
from visjax.attribution.cam import eigen, gradient
from visjax.attribution.cam.process import postprocess
from visjax.zoo import digits_cnn

pytestmark = pytest.mark.peers
RTOL = 1e-4  # max |visjax - pytorch-grad-cam| / max |pytorch-grad-cam|, float32 on both sides

PEERS = {
    "grad_cam": ("GradCAM", gradient.grad_cam),
    "grad_cam_plus_plus": ("GradCAMPlusPlus", gradient.grad_cam_plus_plus),
    "xgrad_cam": ("XGradCAM", gradient.xgrad_cam),
    "hires_cam": ("HiResCAM", gradient.hires_cam),
    "layer_cam": ("LayerCAM", gradient.layer_cam),
    "eigen_cam": ("EigenCAM", eigen.eigen_cam),
    "eigen_grad_cam": ("EigenGradCAM", eigen.eigen_grad_cam),
}


@pytest.fixture(scope="module")
def setup(peer_cnn):
    return peer_cnn[:4]


def peer(name, tm, x, t):
    """pytorch-grad-cam's raw maps (get_cam_image, NHWC grid) and its processed maps."""
    gc = bridge.import_peer("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = getattr(gc, name)(model=tm, target_layers=[tm.conv2])
    xt = bridge.to_torch_input(x)
    targets = [ClassifierOutputTarget(int(c)) for c in t]
    processed = cam(input_tensor=xt, targets=targets)
    acts = cam.activations_and_grads.activations[0].numpy()
    grads = cam.activations_and_grads.gradients[0].numpy() if cam.uses_gradients else None
    raw = cam.get_cam_image(xt, tm.conv2, targets, acts, grads, False)
    cam.activations_and_grads.release()
    return np.asarray(raw), np.asarray(processed)


def up_to_sign(ours, theirs):
    """Each of pytorch-grad-cam's maps flipped to agree in sign with ours (SVD sign is free)."""
    s = np.sign((np.asarray(ours, np.float64) * theirs).sum((1, 2)))
    return theirs * s[:, None, None]


@pytest.mark.parametrize("name", list(PEERS))
def test_raw_and_processed_maps_match_pytorch_grad_cam(setup, name):
    model, tm, x, t = setup
    cls, method = PEERS[name]
    raw, processed = peer(cls, tm, x, t)
    ours = method(model, jnp.asarray(x), jnp.asarray(t), layer="conv2")
    if name.startswith("eigen"):
        # pytorch-grad-cam keeps LAPACK's sign; visjax fixes one (see visjax.attribution.cam.eigen)
        raw = up_to_sign(ours, raw)
        assert np.abs(ours).max() > 0
    assert rel_err(ours, raw) < RTOL
    if not name.startswith("eigen"):
        assert rel_err(postprocess(ours, (8, 8)), processed) < RTOL


@pytest.mark.parametrize("form", ["nnx", "linen"])
def test_grad_cam_from_nnx_and_linen(setup, form):
    model, tm, x, t = setup
    raw, processed = peer("GradCAM", tm, x, t)
    ours = gradient.grad_cam(digits_cnn(form, model.params), jnp.asarray(x), jnp.asarray(t))
    assert rel_err(ours, raw) < RTOL
    assert rel_err(postprocess(ours, (8, 8)), processed) < RTOL


def test_guided_grad_cam_as_in_pytorch_grad_cams_example(setup):
    model, tm, x, t = setup
    gc = bridge.import_peer("pytorch_grad_cam")
    _, processed = peer("GradCAM", tm, x, t)
    gb = gc.GuidedBackpropReLUModel(model=tm, device="cpu")
    xt = bridge.to_torch_input(x)
    # its __call__ takes one target category for the whole batch: one example at a time
    want = np.stack(
        [
            gb(xt[i : i + 1], target_category=int(t[i])) * processed[i][..., None]
            for i in range(len(t))
        ]
    )
    ours = gradient.guided_grad_cam(model, jnp.asarray(x), jnp.asarray(t), layer="conv2")
    assert rel_err(ours, want) < RTOL
