"""Many runs on one plane: three digits CNNs trained from different seeds, drawn together.

1. The plane through the three solutions (Garipov et al. 2018): the loss computed once, each
   solution on its own coordinates, every run's path (one checkpoint per epoch) projected on it.
2. The plane of the top two principal directions of all checkpoints of all runs (Li et al. 2018,
   section 6, for several runs at once), with the explained variance on the axes.
3. Side by side: each run's loss around its own solution along its own PCA directions, on one
   grid and one colour scale.

Run: ``python examples/landscape_runs.py --out out/examples/landscape_runs`` (``--small``: a
quick run).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

from _common import KeepCheckpoints, cli, out_dir, save_all

from visjax import landscape as vl
from visjax import plot
from visjax.zoo import Split, digits_cnn, load_digits, train


def main(out: str | Path = "out/examples/landscape_runs", small: bool = False) -> list[Path]:
    out = out_dir(out)
    epochs, resolution, n_train = (3, 7, 256) if small else (12, 21, None)

    data = load_digits()
    split = Split(data.train.x[:n_train], data.train.y[:n_train])
    train_xy = (split.x, split.y)
    runs, solutions = [], []
    for seed in range(3):  # same architecture, different initialisation and shuffling
        path = KeepCheckpoints()
        model, _ = train(
            digits_cnn("nnx", seed=seed), split, epochs=epochs, seed=seed, trajectory=path
        )
        runs.append(path.params)
        solutions.append(model.params)
    losses = vl.model_losses(model, "cross_entropy")  # the same forward for every seed
    names = [f"seed {s}" for s in range(3)]

    # 1. The plane through the three solutions, one sweep for all three runs.
    through = vl.runs_surface(
        losses,
        vl.solutions_plane(solutions),
        data=train_xy,
        runs=runs,
        resolution=resolution,
        margin=0.2,
    )
    # 2. The PCA plane of all checkpoints of all runs, centred on their mean.
    pca_plane = vl.runs_pca_plane(runs, origin="mean")
    pca = vl.runs_surface(
        losses, pca_plane, data=train_xy, runs=runs, resolution=resolution, margin=0.2
    )
    # 3. Each run around its own solution, along its own PCA directions; one grid, one scale.
    grid = np.linspace(-1.0, 1.0, resolution) * float(np.abs(pca.xs).max())
    specs = {
        name: vl.SurfaceSpec(losses, run[-1], checkpoints=run)
        for name, run in zip(names, runs, strict=True)
    }
    row = vl.side_by_side(specs, grid, grid, data=train_xy, directions="pca")
    lo, hi = row.scale["cross_entropy"]

    figures = {
        "through": plot.runs_contour(
            through.xs,
            through.ys,
            through.surface["cross_entropy"],
            paths=dict(zip(names, (p.coords for p in through.paths), strict=True)),
            solutions=dict(zip(names, through.solutions.coords, strict=True)),
            title="plane through the three solutions",
        ),
        "pca": plot.runs_contour(
            pca.xs,
            pca.ys,
            pca.surface["cross_entropy"],
            paths=dict(zip(names, (p.coords for p in pca.paths), strict=True)),
            explained_variance_ratio=pca_plane.explained_variance_ratio,
            title="PCA plane of all three runs",
        ),
        "side-by-side": plot.surface_row(
            row.xs,
            row.ys,
            {k: v["cross_entropy"] for k, v in row.surfaces.items()},
            vmin=lo,
            vmax=hi,
            paths=row.paths,
            xlabel="1st PC",
            ylabel="2nd PC",
            zlabel="cross-entropy",
            title="each run's own PCA plane, one colour scale",
        ),
    }
    return save_all(figures, out, "landscape-runs-")


if __name__ == "__main__":
    cli(main, __doc__, "a quick run on less data", "folder for the figures")
