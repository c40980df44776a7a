"""visjax's gradient and path methods against Captum on the same digits CNN weights."""

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from tests.peers import rel_err
from visjax import attribution as va
from visjax.attribution.integrated import RULES

pytestmark = pytest.mark.peers
RTOL = 1e-4  # max |visjax - captum| / max |captum|, float32 on both sides


@pytest.fixture(scope="module")
def setup(peer_cnn):
    return peer_cnn[:4]


def captum(name, torch_model, x, t, **kwargs):
    import torch

    attr = bridge.import_peer("captum.attr")
    method = getattr(attr, name)(torch_model)
    xt = bridge.to_torch_input(x).requires_grad_(True)
    out = method.attribute(xt, target=torch.as_tensor(np.asarray(t, np.int64)), **kwargs)
    return bridge.from_torch(out.detach())


def test_saliency_matches_captum(setup):
    model, tm, x, t = setup
    ours = va.saliency(model, jnp.asarray(x), jnp.asarray(t))
    assert rel_err(ours, captum("Saliency", tm, x, t)) < RTOL
    signed = va.saliency(model, jnp.asarray(x), jnp.asarray(t), absolute=False)
    assert rel_err(signed, captum("Saliency", tm, x, t, abs=False)) < RTOL


def test_gradient_x_input_matches_captum(setup):
    model, tm, x, t = setup
    ours = va.gradient_x_input(model, jnp.asarray(x), jnp.asarray(t))
    assert rel_err(ours, captum("InputXGradient", tm, x, t)) < RTOL


@pytest.mark.parametrize("method", RULES)
def test_integrated_gradients_matches_captum_for_every_rule(setup, method):
    model, tm, x, t = setup
    ours = va.integrated_gradients(
        model, jnp.asarray(x), jnp.asarray(t), n_steps=24, rule=method, baseline=0.1
    )
    theirs = captum("IntegratedGradients", tm, x, t, n_steps=24, method=method, baselines=0.1)
    assert rel_err(ours, theirs) < RTOL


def test_layer_integrated_gradients_matches_captum(setup):
    model, tm, x, t = setup
    ours = va.at_layer(va.integrated_gradients, "conv2")(
        model, jnp.asarray(x), jnp.asarray(t), n_steps=16, rule="riemann_middle"
    )
    import torch

    attr = bridge.import_peer("captum.attr")
    lig = attr.LayerIntegratedGradients(tm, tm.conv2)
    xt = bridge.to_torch_input(x)
    out = lig.attribute(
        xt, target=torch.as_tensor(np.asarray(t, np.int64)), n_steps=16, method="riemann_middle"
    )
    assert rel_err(ours, bridge.from_torch(out)) < RTOL
