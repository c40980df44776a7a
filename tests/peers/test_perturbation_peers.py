"""visjax's occlusion and feature ablation against Captum on the same digits CNN weights."""

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from tests.peers import rel_err
from visjax.attribution.ablation import feature_ablation, occlusion
from visjax.attribution.masks import square_patches
from visjax.zoo import load_digits

pytestmark = pytest.mark.peers
RTOL = 1e-4  # max |visjax - captum| / max |captum|, float32 on both sides


@pytest.fixture(scope="module")
def setup(peer_cnn):
    return peer_cnn[:4]


def captum(name, torch_model, x, t, **kwargs):
    import torch

    attr = bridge.import_peer("captum.attr")
    method = getattr(attr, name)(torch_model)
    xt = bridge.to_torch_input(x)
    with torch.no_grad():
        out = method.attribute(xt, target=torch.as_tensor(np.asarray(t, np.int64)), **kwargs)
    return bridge.from_torch(out)


def nchw(hwc):
    """An (H, W, C) window or stride tuple in Captum's (C, H, W) order."""
    return (hwc[2], hwc[0], hwc[1])


@pytest.mark.parametrize(
    "window, strides, baseline",
    [
        ((3, 3, 1), (1, 1, 1), 0.0),
        ((2, 2, 1), (2, 2, 1), 0.0),
        ((3, 3, 1), (2, 2, 1), 0.5),  # the last window is cut at the edge
        ((4, 2, 1), (3, 1, 1), -0.25),
    ],
)
def test_occlusion_matches_captum(setup, window, strides, baseline):
    model, tm, x, t = setup
    ours = occlusion(
        model, jnp.asarray(x), jnp.asarray(t), window=window, strides=strides, baseline=baseline
    )
    theirs = captum(
        "Occlusion",
        tm,
        x,
        t,
        sliding_window_shapes=nchw(window),
        strides=nchw(strides),
        baselines=baseline,
        perturbations_per_eval=16,
    )
    assert rel_err(ours, theirs) < RTOL


def test_occlusion_with_an_array_baseline_matches_captum(setup):
    model, tm, x, t = setup
    b = np.asarray(load_digits().train.x[:200].mean(0))
    ours = occlusion(model, jnp.asarray(x), jnp.asarray(t), window=(3, 3), baseline=b)
    theirs = captum(
        "Occlusion",
        tm,
        x,
        t,
        sliding_window_shapes=(1, 3, 3),
        strides=1,
        baselines=bridge.to_torch_input(b[None]),
    )
    assert rel_err(ours, theirs) < RTOL


@pytest.mark.parametrize("patches", [None, 2, 3])
def test_feature_ablation_matches_captum(setup, patches):
    model, tm, x, t = setup
    mask = None if patches is None else square_patches((8, 8, 1), patches)
    ours = feature_ablation(model, jnp.asarray(x), jnp.asarray(t), mask=mask, baseline=0.1)
    kwargs = {} if mask is None else {"feature_mask": bridge.to_torch_input(mask[None]).long()}
    theirs = captum("FeatureAblation", tm, x, t, baselines=0.1, perturbations_per_eval=8, **kwargs)
    assert rel_err(ours, theirs) < RTOL
