"""DeepLIFT and DeepLIFT-SHAP against Captum on the same digits CNN weights."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from tests.peers import rel_err
from visjax.attribution.deeplift import deeplift, deeplift_shap
from visjax.zoo import digits_cnn

pytestmark = pytest.mark.peers
RTOL = 1e-4  # max |visjax - captum| / max |captum|, float32 on both sides


@pytest.fixture(scope="module")
def setup(peer_cnn):
    return (*peer_cnn[:4], peer_cnn.data.train.x[:5])


def captum(name, torch_model, x, t, baselines):
    import torch

    attr = bridge.import_peer("captum.attr")
    xt = bridge.to_torch_input(x).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Setting forward, backward hooks", UserWarning)
        warnings.filterwarnings("ignore", ".*backward hooks.*", UserWarning)
        out = getattr(attr, name)(torch_model).attribute(
            xt,
            baselines=bridge.to_torch_input(baselines),
            target=torch.as_tensor(np.asarray(t, np.int64)),
        )
    return bridge.from_torch(out.detach())


@pytest.mark.parametrize("form", ["function", "nnx", "linen"])
def test_deeplift_matches_captum(setup, form):
    model, tm, x, t, refs = setup
    model = digits_cnn(form, model.params)
    b = np.broadcast_to(refs[:1], x.shape).copy()
    got = deeplift(model, jnp.asarray(x), jnp.asarray(t), baseline=b)
    want = captum("DeepLift", tm, x, t, b)
    assert np.abs(want).max() > 0
    assert rel_err(got, want) < RTOL


def test_deeplift_shap_matches_captum(setup):
    model, tm, x, t, refs = setup
    got = deeplift_shap(model, jnp.asarray(x), jnp.asarray(t), references=refs)
    want = captum("DeepLiftShap", tm, x, t, refs)
    assert np.abs(want).max() > 0
    assert rel_err(got, want) < RTOL
