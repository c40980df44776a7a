"""CAM methods against their floors and pytorch-grad-cam, on the digits CNN and the digits ResNet.

Floors: Grad-CAM's is one jitted forward and backward to the layer gradient; Score-CAM's one
jitted forward over exactly the ``N·C`` masked inputs (built beforehand); Ablation-CAM's the
``N·C`` forwards from the layer on (on the CNN written by hand: ReLU, pool, dense). On the ResNet
the full forwards of ``N·C`` inputs are shown instead, to see whether XLA drops the work before
the layer: it does (XLA's cost analysis: 2.1e9 flops from ``stages.1`` on, 9.2e9 for the full
forwards), though the time fell only about 2x, the late small-grid convolutions being slow.
Each case also times the default call (``batch_size="auto"``; for Grad-CAM, which has no size
to tune, the call without a jit around it). pytorch-grad-cam runs its per-example loops with
``batch_size = C`` (one forward per example, all its channels at once); its progress bars are
switched off.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.harness import measure, report, run_benchmark
from visjax.attribution.cam import _core, score
from visjax.attribution.cam.gradient import grad_cam
from visjax.attribution.cam.process import bilinear_resize
from visjax.base.batching import FORWARD_UNROLL, chunked_sum
from visjax.zoo import digits_resnet
from visjax.zoo.pretrained import trained_digits_cnn

os.environ.setdefault("TQDM_DISABLE", "1")
N, CHUNK = 256, 2048


@pytest.fixture(scope="module")
def cnn(digits, tmp_path_factory):
    model = trained_digits_cnn(epochs=10, cache=tmp_path_factory.mktemp("cache")).model
    return "digits CNN", model, "conv2", "conv2"


@pytest.fixture(scope="module")
def resnet():
    return "digits ResNet-8", digits_resnet(seed=0), "stages.1", "stages.1"


def data(digits):
    return jnp.asarray(digits.test.x[:N]), jnp.asarray(digits.test.y[:N])


def torch_setup(name, model):
    """``(torch model, its target layer)`` on the same weights, or None without the peers."""
    try:
        from benchmarks.peers import bridge

        bridge.import_torch()
        bridge.import_peer("pytorch_grad_cam")
    except ImportError:
        return None
    if name.startswith("digits CNN"):
        tm = bridge.torch_digits_cnn(model.params)
        return tm, tm.conv2
    tm = bridge.torch_resnet(model.params)
    return tm, tm.stages[1]


def peer_thunk(cls_name, tm, layer, x, t, **attrs):
    from benchmarks.peers import bridge

    gc = bridge.import_peer("pytorch_grad_cam")
    targets_mod = bridge.import_peer("pytorch_grad_cam.utils.model_targets")
    cam = getattr(gc, cls_name)(tm, [layer])
    for k, v in attrs.items():
        setattr(cam, k, v)
    xt = bridge.to_torch_input(x)
    targets = [targets_mod.ClassifierOutputTarget(int(c)) for c in np.asarray(t)]
    return lambda: cam(input_tensor=xt, targets=targets)


def masked_inputs(model, x, layer):
    """The ``N·C`` masked inputs of Score-CAM (outside the timing)."""
    act = model.activations(x, layer)[1][layer]
    up = bilinear_resize(act, x.shape[1:3], align_corners=True)
    lo, hi = up.min((1, 2), keepdims=True), up.max((1, 2), keepdims=True)
    masks = (up - lo) / (hi - lo + 1e-8)
    xm = x[:, None] * jnp.moveaxis(masks, -1, 1)[..., None]
    return xm.reshape(-1, *x.shape[1:]), jnp.repeat(jnp.arange(x.shape[0]), act.shape[-1])


def forward_floor(model, xm, e, t, chunk):
    """Target scores of every masked input in chunks (forward driver): the unavoidable work."""

    def part(xx, ee):
        return model(xx)[jnp.arange(xx.shape[0]), t[ee]].sum()

    return chunked_sum(part, xm, e, batch_size=chunk, max_unroll=FORWARD_UNROLL)


def cnn_head_floor(model, x, t, chunk):
    """Ablation-CAM's unavoidable work on the CNN: conv2 once, then ``N·C`` heads by hand."""
    a = model.activations(x, "conv2")[1]["conv2"]
    n, c = a.shape[0], a.shape[-1]
    rows = jnp.arange(n * c)
    w, b = model.params["fc"]["kernel"], model.params["fc"]["bias"]

    def part(r):
        e, ch = r // c, r % c
        ab = jnp.where(jnp.arange(c) == ch[:, None, None, None], -1e7, a[e])
        logits = jax.nn.relu(ab).mean((1, 2)) @ w + b
        return logits[jnp.arange(r.shape[0]), t[e]].sum()

    return chunked_sum(part, rows, batch_size=chunk, max_unroll=FORWARD_UNROLL)


def timings_for(net, digits, method):
    name, model, layer, _ = net
    x, t = data(digits)
    c = model.activations(x[:1], layer)[1][layer].shape[-1]
    peer = torch_setup(name, model)
    cases = {}
    if method == "grad_cam":
        fn = jax.jit(functools.partial(grad_cam, layer=layer))
        floor = jax.jit(
            lambda m, x, t: _core.activation_and_grad(m, x, t, None, layer)[1],
        )
        cases["visjax Grad-CAM"] = (fn, (model, x, t))
        # No batch_size to tune: the default call is the one above; this is it unjitted.
        cases["visjax default, eager call"] = (
            functools.partial(grad_cam, layer=layer),
            (model, x, t),
        )
        cases["floor (fwd+bwd to layer)"] = (floor, (model, x, t))
        base = "floor (fwd+bwd to layer)"
        if peer is not None:
            cases["pytorch-grad-cam GradCAM"] = (peer_thunk("GradCAM", *peer, x, t), ())
    elif method == "score_cam":
        fn = jax.jit(functools.partial(score.score_cam, layer=layer, batch_size=CHUNK))
        xm, e = masked_inputs(model, x, layer)
        floor = jax.jit(functools.partial(forward_floor, chunk=CHUNK))
        cases["visjax Score-CAM"] = (fn, (model, x, t))
        cases["visjax default"] = (
            jax.jit(functools.partial(score.score_cam, layer=layer)),
            (model, x, t),
        )
        cases["floor (N·C masked fwd)"] = (floor, (model, xm, e, t))
        base = "floor (N·C masked fwd)"
        if peer is not None:
            cases["pytorch-grad-cam ScoreCAM"] = (
                peer_thunk("ScoreCAM", *peer, x, t, batch_size=c),
                (),
            )
    else:
        fn = jax.jit(functools.partial(score.ablation_cam, layer=layer, batch_size=CHUNK))
        cases["visjax Ablation-CAM"] = (fn, (model, x, t))
        cases["visjax default"] = (
            jax.jit(functools.partial(score.ablation_cam, layer=layer)),
            (model, x, t),
        )
        xm, e = masked_inputs(model, x, layer)
        cases["N·C full forwards"] = (
            jax.jit(functools.partial(forward_floor, chunk=CHUNK)),
            (model, xm, e, t),
        )
        base = "N·C full forwards"
        if name.startswith("digits CNN"):
            cases["floor (N·C heads)"] = (
                jax.jit(functools.partial(cnn_head_floor, chunk=CHUNK)),
                (model, x, t),
            )
            base = "floor (N·C heads)"
        if peer is not None:
            cases["pytorch-grad-cam AblationCAM"] = (
                peer_thunk("AblationCAM", *peer, x, t, batch_size=c),
                (),
            )
    timings = measure(cases, rounds=5, warmup=1)
    ratios = report(
        f"{method} on the {name} at {layer!r}, {N} digits, C={c}", timings, baseline=base
    )
    for peer_name in [k for k in timings if k.startswith("pytorch-grad-cam")]:
        ours = next(k for k in timings if k.startswith("visjax"))
        speed = timings[peer_name].median_s / timings[ours].median_s
        print(f"  speed-up over {peer_name}: {speed:.1f}x")
    return fn, (model, x, t), ratios


@pytest.mark.parametrize("method", ["grad_cam", "score_cam", "ablation_cam"])
@pytest.mark.parametrize("net", ["cnn", "resnet"])
def test_cam_vs_floor_and_pytorch_grad_cam(benchmark, request, digits, net, method):
    fn, args, ratios = timings_for(request.getfixturevalue(net), digits, method)
    benchmark.extra_info.update(ratios)
    run_benchmark(benchmark, fn, *args, rounds=3)
