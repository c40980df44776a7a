"""Curvature of the digits CNN's training loss: top Hessian eigenvalues, spectral density, trace.

1. The top 3 eigenvalues (Lanczos) and Hutchinson's trace with 20 deflation steps (Hutch++).
2. The eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019), as PyHessian
   draws it, with the top eigenvalues marked.
3. The top three eigenvalues along training (one checkpoint every few epochs).

Run: ``python examples/curvature.py --out out/examples/curvature`` (``--small``: a quick run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from visjax import curvature as vc
from visjax import plot
from visjax.landscape import model_losses
from visjax.zoo import Split, digits_cnn, load_digits, train


class KeepCheckpoints:
    """A trajectory writer that keeps the parameters of every epoch in memory."""

    def __init__(self):
        self.params = []

    def save(self, step, params):
        self.params.append(params)


def main(out: str | Path = "out/examples/curvature", small: bool = False) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    epochs, every, n_iter, n_train = (2, 1, 30, 256) if small else (30, 5, 100, None)

    data = load_digits()
    split = Split(data.train.x[:n_train], data.train.y[:n_train])  # all 1,347 images at full size
    checkpoints = KeepCheckpoints()
    model, _ = train(digits_cnn("nnx", seed=0), split, epochs=epochs, trajectory=checkpoints)
    loss = model_losses(model, "cross_entropy")["cross_entropy"]  # (params, batch) -> scalar
    batch = (split.x, split.y)  # the whole training set, summed in chunks

    # tol=1e-3: Lanczos stops once the top k Ritz values are that accurate (default 1e-6).
    top = vc.top_eigenvalues(loss, model.params, data=batch, k=3, tol=1e-3, key=jax.random.key(0))
    tr = vc.trace(loss, model.params, data=batch, n_probes=10, deflate=20, key=jax.random.key(1))
    density = vc.spectral_density(
        loss, model.params, data=batch, n_iter=n_iter, key=jax.random.key(2)
    )
    print(
        f"top eigenvalues {np.round(top.eigenvalues, 3)}, trace {tr.estimate:.2f} ± {tr.stderr:.2f}"
    )

    epochs_seen = list(range(0, len(checkpoints.params), every))
    along = np.stack(
        [
            vc.top_eigenvalues(
                loss, checkpoints.params[e], data=batch, k=3, tol=1e-3, key=jax.random.key(3)
            ).eigenvalues
            for e in epochs_seen
        ]
    )

    figures = {
        "density": plot.eigenvalue_density(
            density,
            outliers=top.eigenvalues,
            title=f"Hessian spectrum (SLQ); trace {tr.estimate:.1f} ± {tr.stderr:.1f}",
        ),
        "training": plot.eigenvalues_over_training(
            np.array(epochs_seen) + 1, along, title="top eigenvalues during training"
        ),
    }
    figures["training"].axes[0].set_xlabel("epoch")
    paths = []
    for name, fig in figures.items():
        paths.append(out / f"curvature-{name}.png")
        fig.savefig(paths[-1], dpi=80, bbox_inches="tight")
        plt.close(fig)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/examples/curvature", help="folder for the figures")
    parser.add_argument("--small", action="store_true", help="a quick run on less data")
    args = parser.parse_args()
    for p in main(args.out, small=args.small):
        print(p)
