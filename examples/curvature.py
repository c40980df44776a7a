"""Curvature of the digits CNN's training loss: top Hessian eigenvalues, spectral density, trace.

1. The top 3 eigenvalues (Lanczos) and Hutchinson's trace with 20 deflation steps (Hutch++).
2. The eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019), as PyHessian
   draws it, with the top eigenvalues marked.
3. The top three eigenvalues along training (one checkpoint every few epochs).

Run: ``python examples/curvature.py --out out/examples/curvature`` (``--small``: a quick run).
"""

from __future__ import annotations

from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")

from _common import KeepCheckpoints, cli, out_dir, save_all

from visjax import curvature as vc
from visjax import plot
from visjax.landscape import model_losses
from visjax.zoo import Split, digits_cnn, load_digits, train


def main(out: str | Path = "out/examples/curvature", small: bool = False) -> list[Path]:
    out = out_dir(out)
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
    return save_all(figures, out, "curvature-")


if __name__ == "__main__":
    cli(main, __doc__, "a quick run on less data", "folder for the figures")
