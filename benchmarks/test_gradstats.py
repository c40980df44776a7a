"""Gradient statistics: the cost of collecting them inside the jitted training step.

Cases: the digits CNN and the zoo's digits ResNet-8, cross-entropy, Adam, batches of 64 digits.
Each variant is a jitted training step driven from Python for ``STEPS`` steps (parameters and
optimiser state donated), timed per step after compilation, in interleaved rounds:

- bare: ``value_and_grad`` + ``adam.update`` + ``apply_updates``;
- track (layers): the same optimiser wrapped in ``visjax.gradstats.track`` with the per-layer
  statistics (norm, mean, std, max |g|, zero fraction, non-finite count, update ratio), ring buffer;
- track (+ histograms): the same plus a 64-bin histogram per layer;
- host (wandb.watch style): the bare step also returns the gradients, which are pulled to the host
  every step and histogrammed/normed per layer with NumPy;
- per-example statistics (``per_example_stats`` on the same batch, a separate jitted call): its own
  time against the bare step, the set Cockpit computes with BackPACK; the default call
  (``batch_size="auto"``) next to explicit sizes (one batch, chunks of 16).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from visjax.gradstats import per_example_stats, track
from visjax.landscape import model_losses
from visjax.zoo import digits_cnn, digits_resnet, load_digits

STEPS, BATCH, ROUNDS = 40, 64, 5
PE_SIZES = {
    "default": {},
    "batch_size=None": {"batch_size": None},
    "batch_size=16": {"batch_size": 16},
}
LAYER_STATS = ("norm", "mean", "std", "max_abs", "zero_fraction", "nonfinite", "update_ratio")


def make_step(loss, opt, *, with_grads=False):
    @jax.jit
    def step(params, state, batch):
        value, grads = jax.value_and_grad(loss)(params, batch)
        updates, state = opt.update(grads, state, params)
        out = (optax.apply_updates(params, updates), state, value)
        return (*out, grads) if with_grads else out

    return step


def host_stats(grads):
    flat = jax.tree_util.tree_flatten_with_path(jax.device_get(grads))[0]
    return {jax.tree_util.keystr(p): (np.linalg.norm(g), np.histogram(g, 64)[0]) for p, g in flat}


def run(step, params, state, batches, host=False):
    for b in batches:
        out = step(params, state, b)
        params, state = out[0], out[1]
        if host:
            host_stats(out[3])
    jax.block_until_ready(params)
    return params, state


def per_step_times(variants, params, batches):
    """Median seconds per step of each variant, interleaved rounds after one warm-up run."""
    states = {}
    for name, (step, opt, host) in variants.items():
        states[name] = (params, opt.init(params))
        run(step, *states[name], batches[:2], host)  # compile
    times = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, (step, opt, host) in variants.items():
            p, s = params, opt.init(params)
            t = time.perf_counter()
            run(step, p, s, batches, host)
            times[name].append((time.perf_counter() - t) / len(batches))
    return {name: float(np.median(t)) for name, t in times.items()}


def test_gradstats_overhead(benchmark):
    data = load_digits().train
    rng = np.random.default_rng(0)
    idx = [rng.choice(len(data.x), BATCH, replace=False) for _ in range(STEPS)]
    batches = [(jnp.asarray(data.x[i]), jnp.asarray(data.y[i])) for i in idx]
    rows = []
    for name, model in (
        ("digits CNN", digits_cnn("function")),
        ("digits ResNet-8", digits_resnet()),
    ):
        loss = model_losses(model)["cross_entropy"]
        adam = optax.adam(1e-3)
        tracked = track(adam, stats=LAYER_STATS)
        with_hist = track(adam, stats=(*LAYER_STATS, "histogram"))
        variants = {
            "bare": (make_step(loss, adam), adam, False),
            "track (layers)": (make_step(loss, tracked), tracked, False),
            "track (+ histograms)": (make_step(loss, with_hist), with_hist, False),
            "host (wandb.watch style)": (make_step(loss, adam, with_grads=True), adam, True),
        }
        t = per_step_times(variants, model.params, batches)
        # The user's call (batch_size "auto") and explicit sizes, interleaved.
        pe = {
            f"per-example stats ({label})": jax.jit(
                lambda p, b, loss=loss, kw=kw: per_example_stats(loss, p, data=b, **kw)
            )
            for label, kw in PE_SIZES.items()
        }
        for fn in pe.values():
            jax.block_until_ready(fn(model.params, batches[0]))
        pe_times = {label: [] for label in pe}
        for b in batches[:10]:
            for label, fn in pe.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fn(model.params, b))
                pe_times[label].append(time.perf_counter() - t0)
        t.update({label: float(np.median(v)) for label, v in pe_times.items()})
        for variant, s in t.items():
            rows.append((name, variant, s, s / t["bare"]))
            benchmark.extra_info[f"{name} {variant} s/step"] = s
    print(f"\n{'model':<16} {'variant':<30} {'ms/step':>8} {'x bare':>7}")
    for name, variant, s, ratio in rows:
        print(f"{name:<16} {variant:<30} {s * 1e3:8.2f} {ratio:7.2f}")
    benchmark.pedantic(lambda: None, rounds=1)
