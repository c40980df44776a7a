"""LRP composites against Zennit on the same digits CNN weights.

visjax applies the norm rule to the CNN's functional mean; the torch twin pools with an
``AdaptiveAvgPool2d`` module, to which Zennit applies its ``Norm`` rule, so the two agree.
"""

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from tests.peers import rel_err
from visjax.attribution.lrp import (
    epsilon_alpha2_beta1,
    epsilon_gamma_box,
    epsilon_plus,
    epsilon_plus_flat,
    lrp,
)
from visjax.zoo import digits_cnn

pytestmark = pytest.mark.peers
RTOL = 1e-4  # max |visjax - zennit| / max |zennit|, float32 on both sides


def zennit(torch_model, composite, x, t):
    import torch

    attribution = bridge.import_peer("zennit.attribution")
    xt = bridge.to_torch_input(x).requires_grad_(True)
    one_hot = torch.eye(10)[torch.as_tensor(np.asarray(t, np.int64))]
    with attribution.Gradient(model=torch_model, composite=composite) as attributor:
        _, rel = attributor(xt, one_hot)
    return bridge.from_torch(rel.detach())


def presets():
    comps = bridge.import_peer("zennit.composites")
    return {
        "epsilon_plus": (epsilon_plus(), comps.EpsilonPlus()),
        "epsilon_alpha2_beta1": (epsilon_alpha2_beta1(), comps.EpsilonAlpha2Beta1()),
        "epsilon_plus_flat": (epsilon_plus_flat(), comps.EpsilonPlusFlat()),
        "epsilon_gamma_box": (
            epsilon_gamma_box(0.0, 1.0),
            comps.EpsilonGammaBox(low=0.0, high=1.0),
        ),
    }


@pytest.mark.parametrize(
    "name", ["epsilon_plus", "epsilon_alpha2_beta1", "epsilon_plus_flat", "epsilon_gamma_box"]
)
@pytest.mark.parametrize("form", ["function", "nnx"])
def test_preset_matches_zennit(peer_cnn, name, form):
    model, tm, x, t, _ = peer_cnn
    ours, theirs = presets()[name]
    got = lrp(digits_cnn(form, model.params), jnp.asarray(x), jnp.asarray(t), composite=ours)
    want = zennit(tm, theirs, x, t)
    assert np.abs(want).max() > 0
    assert rel_err(got, want) < RTOL
