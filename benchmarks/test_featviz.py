"""Feature visualisation: many units per compiled call, against the floor and Lucent.

Case (issue 15): torchvision's ResNet-18 with random weights (the same weights in JAX when torch
is installed), the channel objective at ``layer3.0.conv1`` (Lucent: ``layer3_0_conv1``), 64x64
Fourier + decorrelated-colour images, Lucid's standard transforms (the network then sees 76x76
images), Adam 0.05, 128 steps. The floor is the work no renderer can avoid: per step, the
forward pass to that layer and the input gradient for the same batch of transformed-size images
(no parameterisation, no transforms), as a Python loop of jitted steps and inside a
``fori_loop``. Lucent (torch-lucent 0.1.8) renders one unit at a time and a batch of 8 units (an
objective summing ``channel(layer, c, batch=i)``), ``fixed_image_size=64`` so it does not upsample
to 224. All JAX timings exclude compilation (one warm-up call with the same shapes first).
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.resnet18 import params_from_torch, random_params, resnet18_model
from visjax.featviz import fourier, output_shape, render, standard_transforms

LAYER, LUCENT_LAYER = "layer3.0.conv1", "layer3_0_conv1"
SIZE, STEPS = 64, 128
ROWS: list[tuple] = []


def lucent_setup():
    """(torch, torchvision ResNet-18 in eval mode, lucent modules) or None without the peers."""
    try:
        from benchmarks.peers import bridge

        torch = bridge.import_torch()
        torchvision = bridge.import_peer("torchvision")
        render_mod = bridge.import_peer("lucent.optvis.render")
        param_mod = bridge.import_peer("lucent.optvis.param")
        objectives = bridge.import_peer("lucent.optvis.objectives")
        transform = bridge.import_peer("lucent.optvis.transform")
    except ImportError as e:
        print(f"\nLucent parts skipped: {e}")
        return None
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    return torch, net, render_mod, param_mod, objectives, transform


@pytest.fixture(scope="module")
def setup():
    peer = lucent_setup()
    params = params_from_torch(peer[1].state_dict()) if peer else random_params(0)
    model = resnet18_model(params)
    if peer:  # the same network: logits agree with torchvision's
        from benchmarks.peers import bridge

        x = np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
        with peer[0].no_grad():
            want = bridge.from_torch(peer[1](bridge.to_torch_input(x)))
        got = np.asarray(model(jnp.asarray(x)))
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), np.abs(got - want).max()
    return model, peer


def timed(fn, rounds=1):
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def floor_fns(model, n_units, size):
    """Per-step forward-to-layer + input gradient for ``n_units`` images: loop and fori_loop."""
    units = jnp.arange(n_units)

    def objective(x, model):
        acts = model.activations(x, [LAYER])[1][LAYER]
        return jnp.sum(jax.vmap(lambda a, u: a[..., u].mean())(acts, units))

    @jax.jit
    def step(x, model):
        return x + 0.05 * jax.grad(objective)(x, model)

    @jax.jit
    def looped(x, model):
        return jax.lax.fori_loop(0, STEPS, lambda _, x: step(x, model), x)

    x0 = jax.random.uniform(jax.random.key(1), (n_units, size, size, 3))

    def python_loop():
        x = x0
        for _ in range(STEPS):
            x = step(x, model)
        return x

    return python_loop, lambda: looped(x0, model)


def lucent_seconds(peer, n_units):
    _, net, render_mod, param_mod, objectives, transform = peer
    if n_units == 1:
        obj = objectives.channel(LUCENT_LAYER, 0)
    else:
        obj = sum(
            (objectives.channel(LUCENT_LAYER, c, batch=c) for c in range(1, n_units)),
            objectives.channel(LUCENT_LAYER, 0, batch=0),
        )

    def param_f():
        return param_mod.image(SIZE, fft=True, decorrelate=True, batch=n_units)

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        render_mod.render_vis(
            net,
            obj,
            param_f,
            transforms=transform.standard_transforms,
            thresholds=(STEPS,),
            show_image=False,
            progress=False,
            fixed_image_size=SIZE,
        )
    return time.perf_counter() - t


def test_featviz_vs_floor_and_lucent(benchmark, setup):
    model, peer = setup
    info = benchmark.extra_info
    param = fourier((SIZE, SIZE, 3))
    transforms = standard_transforms()
    seen = output_shape(transforms, param.shape)[0]
    opt = optax.adam(0.05)
    results = {}
    for n_units in (1, 8):
        units = [(LAYER, c) for c in range(n_units)]
        # "python"/"scan": every unit in one vmapped program (batch_size=None); "default": the
        # user's call, no batch_size ("auto": units per chunk from the per-unit step's bytes).
        for loop in ("python", "scan", "default"):

            def run(units=units, loop=loop):
                tuned = {} if loop == "default" else {"loop": loop, "batch_size": None}
                return render(
                    model,
                    units=units,
                    param=param,
                    transforms=transforms,
                    n_steps=STEPS,
                    optimizer=opt,
                    key=jax.random.key(0),
                    **tuned,
                ).images

            results[(n_units, loop)] = timed(run) / n_units
        py_loop, fori = floor_fns(model, n_units, seen)
        floor_py, floor_fori = timed(py_loop) / n_units, timed(fori) / n_units
        floor64 = timed(floor_fns(model, n_units, SIZE)[0]) / n_units
        lucent = lucent_seconds(peer, n_units) / n_units if peer else None
        ours = results[(n_units, "python")]
        default = results[(n_units, "default")]
        ROWS.append(
            (
                n_units,
                ours,
                default,
                results[(n_units, "scan")],
                floor_py,
                floor_fori,
                floor64,
                lucent,
            )
        )
        info[f"units={n_units}"] = {
            "visjax_python_s_per_unit": ours,
            "visjax_default_s_per_unit": default,
            "visjax_scan_s_per_unit": results[(n_units, "scan")],
            f"floor_python_{seen}px_s_per_unit": floor_py,
            f"floor_fori_{seen}px_s_per_unit": floor_fori,
            "floor_python_64px_s_per_unit": floor64,
            "lucent_s_per_unit": lucent,
        }
    print(
        f"\nper unit, {STEPS} steps, {LAYER}, {SIZE}px Fourier+decorrelated, standard transforms"
        f" (network sees {seen}px)"
    )
    print(
        f"{'units':>5} {'visjax':>8} {'default':>8} {'scan':>8} {'floor':>8} {'fori':>8}"
        f" {'floor64':>8} {'vj/floor':>8} {'def/vj':>6} {'Lucent':>8} {'Lu/vj':>6}"
    )
    for n, ours, default, scan, fp, ff, f64, lu in ROWS:
        lus = f"{lu:8.2f}" if lu else f"{'-':>8}"
        sp = f"{lu / ours:6.1f}" if lu else f"{'-':>6}"
        print(
            f"{n:5d} {ours:8.3f} {default:8.3f} {scan:8.3f} {fp:8.3f} {ff:8.3f} {f64:8.3f}"
            f" {ours / fp:8.2f} {default / ours:6.2f} {lus} {sp}"
        )
    benchmark.pedantic(lambda: None, rounds=1)
