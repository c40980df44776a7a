"""LRP composites against Zennit on the same digits CNN weights.

visjax applies the norm rule to the CNN's functional mean; the torch twin pools with an
``AdaptiveAvgPool2d`` module, to which Zennit applies its ``Norm`` rule, so the two agree.
"""

import functools

import jax
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
    one_hot = torch.eye(10, dtype=xt.dtype)[torch.as_tensor(np.asarray(t, np.int64))]
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


# ----------------------------------------------------------------------------- BatchNorm ResNet


# The ResNet comparisons run in float64 on both sides, so that any difference of convention
# shows above the rounding (the stabilizer of the mean before `fc`, stabilized as Zennit's
# average pool, was found so: 1.6e-4 of max |R| on two digits whose pooled channels are tiny).


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def peer_resnet(peer_cnn):
    """The BatchNorm digits ResNet with non-trivial statistics (float64), digits and labels."""
    from tests.zoo.test_resnet_bn import random_stats
    from visjax.zoo import digits_resnet

    model = random_stats(digits_resnet(norm=True, seed=2), seed=3)
    with jax.enable_x64(True):
        f64 = functools.partial(jax.tree.map, lambda a: np.asarray(a, np.float64))
        model = model.replace(params=f64(model.params), state=f64(model.state))
    return model, np.asarray(peer_cnn.x, np.float64), peer_cnn.t


def zennit_canonized(model, name, x, t, exact=True):
    """Zennit on a fresh torch twin: SequentialMergeBatchNorm and the Sum module for residuals
    (``exact``: the merged BatchNorm left as the exact identity, as visjax's; see below)."""
    from benchmarks.peers.zennit_resnet import resnet_canonizers, torch_resnet_bn

    comps = bridge.import_peer("zennit.composites")
    kw = {"canonizers": resnet_canonizers(exact=exact)}
    composite = {
        "epsilon_plus": lambda: comps.EpsilonPlus(**kw),
        "epsilon_alpha2_beta1": lambda: comps.EpsilonAlpha2Beta1(**kw),
        "epsilon_plus_flat": lambda: comps.EpsilonPlusFlat(**kw),
        "epsilon_gamma_box": lambda: comps.EpsilonGammaBox(low=0.0, high=1.0, **kw),
    }[name]()
    import torch

    return zennit(torch_resnet_bn(model, dtype=torch.float64), composite, x, t)


def test_resnet_twin_outputs(peer_resnet, x64):
    import torch

    from benchmarks.peers.zennit_resnet import torch_resnet_bn

    model, x, _ = peer_resnet
    with torch.no_grad():
        twin = torch_resnet_bn(model, dtype=torch.float64)
        want = bridge.from_torch(twin(bridge.to_torch_input(x)))
    assert rel_err(model(jnp.asarray(x)), want) < 1e-12


@pytest.mark.parametrize(
    "name", ["epsilon_plus", "epsilon_alpha2_beta1", "epsilon_plus_flat", "epsilon_gamma_box"]
)
def test_resnet_preset_matches_zennit(peer_resnet, name, x64):
    model, x, t = peer_resnet
    ours = presets()[name][0]
    got = lrp(model, jnp.asarray(x), jnp.asarray(t), composite=ours)
    want = zennit_canonized(model, name, x, t)
    assert np.abs(want).max() > 0
    assert rel_err(got, want) < RTOL


def test_resnet_zennit_merge_convention(peer_resnet, x64):
    """The one difference: Zennit's merge leaves the BatchNorm dividing by sqrt(1 + eps).

    Zennit sets the merged BatchNorm's variance to 1, so it still scales its input (and, having
    no rule, its relevance) by 1 / sqrt(1 + eps) = 1 - 5e-6; visjax sets it to 1 - eps, the
    identity. Over the ResNet's seven BatchNorms and its residual sums the relevances differ by
    up to a few 1e-4 of max |R| (an example whose residual sum nearly cancels shows the most).
    """
    import torch

    from benchmarks.peers.zennit_resnet import resnet_canonizers, torch_resnet_bn

    model, x, t = peer_resnet
    twin = torch_resnet_bn(model, dtype=torch.float64)
    handles = [c.apply(twin) for c in resnet_canonizers(exact=False)[:1]]
    ones = torch.ones(1, 16, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        scaled = bridge.from_torch(twin.stem_bn(ones))
    np.testing.assert_allclose(scaled, 1.0 / np.sqrt(1.0 + 1e-5), rtol=1e-12)
    for hs in handles:
        for h in hs:
            h.remove()
    got = lrp(model, jnp.asarray(x), jnp.asarray(t), composite=epsilon_plus())
    stock = zennit_canonized(model, "epsilon_plus", x, t, exact=False)
    exact = zennit_canonized(model, "epsilon_plus", x, t)
    assert rel_err(got, exact) < RTOL
    assert 1e-6 < rel_err(exact, stock) < 1e-3
