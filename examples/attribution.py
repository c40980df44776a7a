"""Gradient attributions on the digits CNN: saliency, integrated gradients and SmoothGrad.

Run: ``python examples/attribution.py [--out FOLDER] [--small]``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import cli, out_dir, save

from visjax import attribution as va
from visjax import plot
from visjax.zoo import load_digits
from visjax.zoo.pretrained import trained_digits_cnn


def main(out: str | Path = "out/examples/attribution", small: bool = False) -> list[Path]:
    out = out_dir(out)
    model = trained_digits_cnn().model  # trained once, then loaded from the weight cache
    data = load_digits()
    n, steps, samples = (4, 16, 8) if small else (6, 64, 32)
    x, y = jnp.asarray(data.test.x[:n]), jnp.asarray(data.test.y[:n])
    pred = np.asarray(model(x).argmax(-1))

    smoothgrad = va.noise_tunnel(va.saliency, n_samples=samples, stdev=0.15)  # 15 % of [0, 1]
    ig = va.integrated_gradients(model, x, y, n_steps=steps)  # baseline: zeros (black)
    maps = {
        "saliency": va.saliency(model, x, y),
        "SmoothGrad": smoothgrad(model, x, y, key=jax.random.key(0)),
        "gradient x input": va.gradient_x_input(model, x, y),
        f"IG ({steps} steps)": ig,
    }
    # completeness: IG sums to f(x) - f(baseline); the error shrinks as n_steps grows
    err = va.completeness_error(model, x, y, attributions=ig)
    print("IG completeness error per example:", np.round(np.asarray(err), 5))

    labels = [f"true {t} / pred {p}" for t, p in zip(np.asarray(y), pred, strict=True)]
    paths = [out / "attribution-grid.png", out / "attribution-overlay.png"]
    fig = plot.attribution_grid(x, maps, row_labels=labels)
    save(fig, paths[0], dpi=80)

    # one example, signed IG drawn over the input (red: raises the logit, blue: lowers it)
    fig = plot.overlay(x[0], ig[0], title=f"IG for class {int(y[0])}")
    save(fig, paths[1], dpi=100)
    return paths


if __name__ == "__main__":
    cli(main, __doc__, "fewer examples and steps")
