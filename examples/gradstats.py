"""Gradient statistics while training the digits CNN, collected inside the jitted step.

1. ``gs.track`` wraps Adam: each update also records per-layer gradient norms, histograms and
   update-to-parameter ratios in the optimiser state (no host callbacks).
2. Every few steps, ``gs.per_example_stats`` gives the gradient noise scale B_simple
   (McCandlish et al. 2018) from per-example gradients of the current batch.
3. At the end, ``gs.per_example_grads`` gives each example's gradient: which examples pull hardest.

Run: ``python examples/gradstats.py --out out/examples/gradstats`` (``--small``: a quick run).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _common import cli, out_dir, save_all

from visjax import gradstats as gs
from visjax import plot
from visjax.landscape import model_losses
from visjax.zoo import digits_cnn, load_digits


def main(out: str | Path = "out/examples/gradstats", small: bool = False) -> list[Path]:
    out = out_dir(out)
    steps, every, batch_size = (30, 10, 32) if small else (300, 10, 64)

    train = load_digits().train
    model = digits_cnn("nnx", seed=0)
    loss = model_losses(model, "cross_entropy")["cross_entropy"]  # (params, batch) -> scalar
    opt = gs.track(
        optax.adam(1e-2),
        stats=("norm", "update_ratio", "histogram"),
        history=steps,  # a ring buffer of the last `steps` updates
    )

    @jax.jit
    def step(params, state, batch):
        value, grads = jax.value_and_grad(loss)(params, batch)
        updates, state = opt.update(grads, state, params)  # the statistics ride along
        return optax.apply_updates(params, updates), state, value

    noise = jax.jit(lambda p, b: gs.per_example_stats(loss, p, data=b).total.noise_scale)

    rng = np.random.default_rng(0)
    params, state = model.params, opt.init(model.params)
    noise_steps, noise_values = [], []
    for t in range(steps):
        idx = rng.choice(len(train.x), batch_size, replace=False)
        batch = (jnp.asarray(train.x[idx]), jnp.asarray(train.y[idx]))
        if t % every == 0:
            noise_steps.append(t)
            noise_values.append(float(noise(params, batch)))
        params, state, _ = step(params, state, batch)

    snap = gs.snapshot(state)  # host NumPy: snap.steps, snap.stats[statistic][layer], snap.edges
    print(
        "flagged:",
        {k: [g for g, v in t.items() if np.any(v)] for k, t in gs.flags(snap.stats).items()},
    )

    # Each example's gradient norm on 256 training images, at the end of training.
    grads = gs.per_example_grads(loss, params, data=(train.x[:256], train.y[:256]))
    norms = np.sqrt(
        sum(np.sum(np.reshape(g, (256, -1)) ** 2, axis=1) for g in jax.tree.leaves(grads))
    )
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.hist(norms, bins=40, log=True)
    ax.set_xlabel("‖per-example gradient‖")
    ax.set_ylabel("examples")
    ax.set_title(f"after {steps} steps: a few examples dominate")

    figures = {
        "norms": plot.gradient_norms(snap, title="gradient norm per layer"),
        "histograms": plot.histograms_over_time(snap, "conv2", title="conv2 gradient histograms"),
        "update-ratios": plot.update_ratios(snap),
        "noise-scale": plot.noise_scale(noise_steps, noise_values, title=f"batch {batch_size}"),
        "per-example": fig,
    }
    return save_all(figures, out, "gradstats-")


if __name__ == "__main__":
    cli(main, __doc__, "a quick run, fewer steps", "folder for the figures")
