"""visjax's infidelity and max-sensitivity against Captum's on the same weights and noise."""

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
from visjax.attribution import saliency
from visjax.attribution.metrics import infidelity, sensitivity_max
from visjax.attribution.metrics.perturbation import INFIDELITY_STDEV, sample_keys

pytestmark = pytest.mark.peers
KEY = jax.random.key(21)
N_SAMPLES = 5


@pytest.fixture(scope="module")
def setup(peer_cnn):
    return peer_cnn.model, peer_cnn.torch_model, peer_cnn.x[:8], peer_cnn.t[:8]


def nchw_rows(a):
    """(N, S, H, W, C) noise as Captum's (N * S, C, H, W) rows (repeat_interleave order)."""
    a = np.asarray(a)
    return bridge.to_torch_input(a.reshape(-1, *a.shape[2:]))


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_matches_captum(setup, normalize):
    import torch

    metrics = bridge.import_peer("captum.metrics")
    model, tm, x, t = setup
    attr = saliency(model, jnp.asarray(x), jnp.asarray(t), absolute=False)
    ours = infidelity(
        model, x, jnp.asarray(t), attr, key=KEY, n_perturb_samples=N_SAMPLES, normalize=normalize
    )
    keys = sample_keys(KEY, x.shape[0], N_SAMPLES)
    noise = jax.vmap(jax.vmap(lambda k: jax.random.normal(k, x.shape[1:])))(keys)
    noise_t = nchw_rows(INFIDELITY_STDEV * noise)

    def perturb(inputs):
        return noise_t, inputs - noise_t

    with torch.no_grad():
        theirs = metrics.infidelity(
            tm,
            perturb,
            bridge.to_torch_input(x),
            bridge.to_torch_input(np.asarray(attr)),
            target=torch.as_tensor(np.asarray(t, np.int64)),
            n_perturb_samples=N_SAMPLES,
            normalize=normalize,
        )
    # float32 forward differences of ~1e-3: the squared error keeps ~1e-3 relative precision
    assert rel_err(ours, bridge.from_torch(theirs)) < 5e-3


def test_sensitivity_matches_captum(setup):
    import torch

    attr_lib = bridge.import_peer("captum.attr")
    metrics = bridge.import_peer("captum.metrics")
    model, tm, x, t = setup
    r = 0.05
    ours = sensitivity_max(
        functools.partial(saliency, absolute=False),
        model,
        x,
        jnp.asarray(t),
        key=KEY,
        perturb_radius=r,
        n_perturb_samples=N_SAMPLES,
    )
    keys = sample_keys(KEY, x.shape[0], N_SAMPLES)
    delta = jax.vmap(jax.vmap(lambda k: jax.random.uniform(k, x.shape[1:], minval=-r, maxval=r)))(
        keys
    )
    delta_t = nchw_rows(delta)

    def perturb(inputs):
        return (inputs.detach() + delta_t).requires_grad_(True)

    sal = attr_lib.Saliency(tm)
    theirs = metrics.sensitivity_max(
        functools.partial(sal.attribute, abs=False),
        bridge.to_torch_input(x).requires_grad_(True),
        perturb_func=perturb,
        n_perturb_samples=N_SAMPLES,
        target=torch.as_tensor(np.asarray(t, np.int64)),
    )
    assert rel_err(ours, bridge.from_torch(theirs)) < 1e-4
