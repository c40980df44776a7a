"""LRP against its floor (the plain input gradient) and Zennit, in one interleaved run.

Two models, 256 digits each: the trained digits CNN, and the BatchNorm digits ResNet (random
weights and batch statistics; BatchNorm merged by visjax, by Zennit's canonizers on the torch
twin). Cases: the floor (``jax.grad`` of the target logits, jitted), visjax's EpsilonPlus and
EpsilonAlpha2Beta1 (jitted, and the user's default call: no jit), and Zennit's two presets on the
torch twin (the attributor entered once, its call timed), when the peers are installed.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.harness import measure, report, run_benchmark
from visjax.attribution.lrp import epsilon_alpha2_beta1, epsilon_plus, lrp
from visjax.zoo import digits_resnet
from visjax.zoo.pretrained import trained_digits_cnn

N = 256
PRESETS = {"EpsilonPlus": epsilon_plus(), "EpsilonAlpha2Beta1": epsilon_alpha2_beta1()}


def bn_resnet():
    """The BatchNorm ResNet with non-trivial statistics (as the peer test's)."""
    model = digits_resnet(norm=True, seed=2)
    k = jax.random.split(jax.random.key(3), 3)

    def stat(path, a):
        if "var" in jax.tree_util.keystr(path):
            return jax.random.uniform(k[0], a.shape, minval=0.5, maxval=2.0)
        return 0.3 * jax.random.normal(k[1], a.shape)

    def param(path, a):
        bn = "bn" in jax.tree_util.keystr(path)
        return a + 0.3 * jax.random.normal(k[2], a.shape) if bn else a

    return model.replace(
        params=jax.tree_util.tree_map_with_path(param, model.params),
        state=jax.tree_util.tree_map_with_path(stat, model.state),
    )


@pytest.fixture(scope="module")
def models(digits, tmp_path_factory):
    cnn = trained_digits_cnn(epochs=10, cache=tmp_path_factory.mktemp("cache")).model
    x = jnp.asarray(digits.test.x[:N])
    t = jnp.asarray(digits.test.y[:N])
    return {"digits CNN": cnn, "BatchNorm ResNet": bn_resnet()}, x, t


@jax.jit
def floor(model, x, t):
    """The input gradient of the target logits: one forward and one backward pass."""
    return jax.grad(lambda x: jnp.sum(jnp.take_along_axis(model(x), t[:, None], 1)))(x)


def zennit_cases(name, model, x, t):
    """Zennit's presets on the torch twin (canonizers for the ResNet), or {} without peers."""
    try:
        from benchmarks.peers import bridge

        torch = bridge.import_torch()
        comps = bridge.import_peer("zennit.composites")
        attribution = bridge.import_peer("zennit.attribution")
    except ImportError:
        return {}
    from benchmarks.peers.zennit_resnet import resnet_canonizers, torch_resnet_bn

    xt = bridge.to_torch_input(np.asarray(x)).requires_grad_(True)
    one_hot = torch.eye(10)[torch.as_tensor(np.asarray(t, np.int64))]
    cases = {}
    for preset in PRESETS:
        if name == "digits CNN":
            tm, kw = bridge.torch_digits_cnn(model.params), {}
        else:
            tm, kw = torch_resnet_bn(model), {"canonizers": resnet_canonizers()}
        attributor = attribution.Gradient(model=tm, composite=getattr(comps, preset)(**kw))
        attributor.__enter__()  # hooks stay on this twin for the whole run

        def run(attributor=attributor):
            return attributor(xt, one_hot)[1]

        cases[f"Zennit {preset}"] = (run, ())
    return cases


@pytest.mark.parametrize("name", ["digits CNN", "BatchNorm ResNet"])
def test_lrp_vs_floor_and_zennit(benchmark, models, name):
    all_models, x, t = models
    model = all_models[name]
    cases = {"floor (input gradient)": (floor, (model, x, t))}
    for preset, comp in PRESETS.items():
        jitted = jax.jit(functools.partial(lrp, composite=comp))
        cases[f"visjax {preset} jit"] = (jitted, (model, x, t))
        cases[f"visjax {preset} default"] = (functools.partial(lrp, composite=comp), (model, x, t))
    cases.update(zennit_cases(name, model, x, t))
    timings = measure(cases, rounds=10, warmup=2)
    ratios = report(f"LRP, {name}, {N} digits", timings, baseline="floor (input gradient)")
    benchmark.extra_info.update(ratios)
    run_benchmark(benchmark, cases["visjax EpsilonPlus jit"][0], model, x, t, rounds=5)
