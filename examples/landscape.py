"""Loss landscapes of the digits CNN: a 1-D line, a 2-D plane and the training path.

1. The straight line from the initial to the trained weights (Goodfellow et al. 2015).
2. A plane through the trained weights spanned by two filter-normalised random directions
   (Li et al. 2018), drawn as contours and as a 3-D surface.
3. The training path (one checkpoint per epoch) projected on the plane of its top two PCA
   directions, over the loss on that plane (Li et al. 2018, section 6).

Run: ``python examples/landscape.py --out out/examples/landscape`` (``--small``: a quick run).
"""

from __future__ import annotations

from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")

from _common import KeepCheckpoints, cli, out_dir, save_all

from visjax import landscape as vl
from visjax import plot
from visjax.zoo import Split, digits_cnn, load_digits, train


def main(out: str | Path = "out/examples/landscape", small: bool = False) -> list[Path]:
    out = out_dir(out)
    epochs, resolution, n_train = (4, 7, 256) if small else (30, 31, None)

    data = load_digits()
    split = Split(data.train.x[:n_train], data.train.y[:n_train])  # all 1,347 images at full size
    train_xy = (split.x, split.y)
    initial = digits_cnn("nnx", seed=0)
    path = KeepCheckpoints()  # one checkpoint per epoch
    model, _ = train(initial, split, epochs=epochs, seed=0, trajectory=path)
    losses = vl.model_losses(model, "cross_entropy", "accuracy")  # name -> loss(params, batch)

    # 1. Along the line (1 - alpha) * initial + alpha * trained.
    alphas = np.linspace(-0.25, 1.25, 2 * resolution)
    line = vl.interpolate(losses, initial.params, model.params, alphas, data=train_xy)

    # 2. A plane through the trained weights, filter-normalised random directions.
    d1, d2 = vl.random_plane(model.params, key=jax.random.key(0), normalization="filter")
    xs = np.linspace(-1, 1, resolution)
    surf = vl.plane(losses, model.params, d1, d2, xs, xs, data=train_xy)["cross_entropy"]

    # 3. The training path in the plane of its top two principal directions.
    pca = vl.pca_directions(path.params)  # offsets to the final checkpoint, centred
    coords = np.asarray(pca.coords)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    pad = 0.15 * (hi - lo) + 1e-3
    px = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    py = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    final = path.params[-1]
    around_path = vl.plane(losses, final, pca.d1, pca.d2, px, py, data=train_xy)["cross_entropy"]

    figures = {
        "line": plot.loss_curve(
            alphas, line, marks={"init": 0.0, "trained": 1.0}, title="initial -> trained"
        ),
        "contour": plot.loss_contour(
            xs, xs, surf, marks={"trained": (0, 0)}, title="filter-normalised random plane"
        ),
        "surface": plot.loss_surface_3d(xs, xs, surf, title="the same plane in 3-D"),
        "trajectory": plot.trajectory_contour(
            px,
            py,
            around_path,
            coords,
            explained_variance_ratio=pca.explained_variance_ratio,
            title="training path, PCA plane",
        ),
    }
    return save_all(figures, out, "landscape-")


if __name__ == "__main__":
    cli(main, __doc__, "a quick run on less data", "folder for the figures")
