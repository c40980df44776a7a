"""Score-CAM, Ablation-CAM and FullGrad against pytorch-grad-cam on the same digits CNN weights."""

import zlib

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from tests.peers import rel_err
from visjax.attribution.cam import fullgrad, score
from visjax.attribution.cam.process import bilinear_resize
from visjax.zoo import digits_resnet, load_digits

pytestmark = pytest.mark.peers
RTOL = 1e-4  # max |visjax - pytorch-grad-cam| / max |pytorch-grad-cam|, float32 on both sides


@pytest.fixture(scope="module")
def setup(peer_cnn):
    return peer_cnn[:4]


def raw_cam(name, torch_model, layer, x, t, **attrs):
    """pytorch-grad-cam's raw map (``get_cam_image``) of method ``name`` at ``layer``."""
    gc = bridge.import_peer("pytorch_grad_cam")
    targets_mod = bridge.import_peer("pytorch_grad_cam.utils.model_targets")
    cam = getattr(gc, name)(torch_model, [layer])
    for k, v in attrs.items():
        setattr(cam, k, v)
    xt = bridge.to_torch_input(x)
    targets = [targets_mod.ClassifierOutputTarget(int(c)) for c in np.asarray(t)]
    cam.activations_and_grads(xt)
    acts = cam.activations_and_grads.activations[0].numpy()
    out = cam.get_cam_image(xt, layer, targets, acts, None)
    cam.activations_and_grads.release()
    return np.asarray(out)


def test_score_cam_matches_pytorch_grad_cam(setup):
    model, tm, x, t = setup
    ours = score.score_cam(model, jnp.asarray(x), jnp.asarray(t), layer="conv2", batch_size=40)
    theirs = raw_cam("ScoreCAM", tm, tm.conv2, x, t, batch_size=16)
    assert rel_err(ours, theirs) < RTOL


def test_ablation_cam_matches_pytorch_grad_cam(setup):
    model, tm, x, t = setup
    ours = score.ablation_cam(model, jnp.asarray(x), jnp.asarray(t), layer="conv2", batch_size=40)
    theirs = raw_cam("AblationCAM", tm, tm.conv2, x, t)
    assert rel_err(ours, theirs) < RTOL


def test_full_grad_matches_pytorch_grad_cam(setup):
    model, tm, x, t = setup
    gc = bridge.import_peer("pytorch_grad_cam")
    targets_mod = bridge.import_peer("pytorch_grad_cam.utils.model_targets")
    targets = [targets_mod.ClassifierOutputTarget(int(c)) for c in np.asarray(t)]
    theirs = gc.FullGrad(tm, [])(input_tensor=bridge.to_torch_input(x), targets=targets)
    ours = fullgrad.full_grad(model, jnp.asarray(x), jnp.asarray(t))
    assert rel_err(ours, theirs) < RTOL


def test_full_grad_on_the_resnet_resizes_as_opencv():
    """The ResNet's stride-2 stages give 4x4 and 2x2 bias maps: the resize is exercised."""
    model = digits_resnet(seed=3)
    model = model.replace(params=random_biases(model.params))
    tm = bridge.torch_resnet(model.params)
    data = load_digits()
    x, t = data.test.x[:8], data.test.y[:8]
    gc = bridge.import_peer("pytorch_grad_cam")
    targets_mod = bridge.import_peer("pytorch_grad_cam.utils.model_targets")
    targets = [targets_mod.ClassifierOutputTarget(int(c)) for c in np.asarray(t)]
    theirs = gc.FullGrad(tm, [])(input_tensor=bridge.to_torch_input(x), targets=targets)
    ours = fullgrad.full_grad(model, jnp.asarray(x), jnp.asarray(t))
    assert rel_err(ours, theirs) < RTOL


def random_biases(params):
    """Fresh models have zero biases (no bias maps at all): draw some."""
    import jax

    def f(path, a):
        if jax.tree_util.keystr(path).endswith("['bias']"):
            seed = zlib.crc32(jax.tree_util.keystr(path).encode())
            return 0.1 * jax.random.normal(jax.random.key(seed), a.shape, a.dtype)
        return a

    return jax.tree_util.tree_map_with_path(f, params)


@pytest.mark.parametrize("size", [(8, 8), (16, 12), (3, 5)])
def test_interpolation_matches_torch_and_opencv(size):
    import cv2
    import torch

    a = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype(np.float32)
    up = torch.nn.UpsamplingBilinear2d(size=size)(torch.from_numpy(a.transpose(0, 3, 1, 2)))
    ours = bilinear_resize(jnp.asarray(a), size, align_corners=True)
    assert rel_err(ours, up.numpy().transpose(0, 2, 3, 1)) < 1e-6
    cv = np.stack([cv2.resize(a[0, :, :, c], size[::-1]) for c in range(3)], -1)
    ours = fullgrad._resize(jnp.asarray(a[:1]), size)[0]
    assert rel_err(ours, cv) < 1e-5
