"""The demo report's landscape section: the line from initial to trained weights and a plane."""

from __future__ import annotations

import time

import numpy as np

from visjax.base.io import save_figure
from visjax.landscape import model_losses, pca_directions, plane
from visjax.plot import trajectory_contour
from visjax.report.context import DemoContext, SkipSection
from visjax.report.html import Figure, Section
from visjax.report.sweep import sweep_trained
from visjax.zoo import digits_cnn
from visjax.zoo.train import train


def landscape_section(ctx: DemoContext) -> Section:
    """1-D interpolation init -> trained and a filter-normalised 2-D contour (Li et al. 2018)."""
    resolution = 11 if ctx.quick else 31
    run = sweep_trained(
        ctx.out / "landscape",
        ctx.digits_cnn.model,
        digits_cnn("nnx", seed=ctx.seed).params,
        name="digits CNN",
        resolution=resolution,
        seed=ctx.seed,
        progress=False,
        log=ctx.log,
    )
    ce = run.surfaces["cross_entropy"]
    i, j = divmod(int(ce.argmin()), resolution)
    centre = float(ce[resolution // 2, resolution // 2])
    if (i, j) == (resolution // 2, resolution // 2):
        where = f"lowest cross-entropy {centre:.3f}, at the centre (the trained weights)"
    else:
        where = (
            f"lowest cross-entropy {ce.min():.3f} at (alpha, beta) = ({run.xs[i]:.2f}, "
            f"{run.xs[j]:.2f}); {centre:.3f} at the centre (the trained weights)"
        )
    return Section(
        "Loss landscape",
        f"Training-set cross-entropy and accuracy along the straight line from the initial "
        f"(alpha = 0) to the trained weights (alpha = 1), Goodfellow et al. 2015; and on a "
        f"filter-normalised random plane around the trained weights, Li et al. 2018 "
        f"({resolution}x{resolution} points, range [-1, 1]; {where}). "
        f"{run.alphas.size + resolution**2}"
        f" points over 1,347 images in {run.seconds:.1f} s. Arrays: landscape/landscape.npz; "
        "ParaView: landscape/*.vtp.",
        figures=[run.files["line"], run.files["contour"], run.files["surface3d"]],
    )


class _InMemory:
    """A trajectory writer that keeps the checkpoints in memory (a short run: no files)."""

    def __init__(self):
        self.checkpoints = []

    def save(self, step, params):
        self.checkpoints.append(params)


def trajectory_section(ctx: DemoContext) -> Section:
    """The training path in the PCA plane of its checkpoints, over the loss there (Li et al.)."""
    if not ctx.demo:
        raise SkipSection("the trajectory retrains the demo's digits CNN")
    epochs = 15 if ctx.quick else 30
    resolution = 11 if ctx.quick else 25
    writer = _InMemory()
    t0 = time.perf_counter()
    # The demo's recipe again (Adam 1e-2, batch 64, same seed): one checkpoint per epoch.
    final, _ = train(
        digits_cnn("nnx", seed=ctx.seed),
        ctx.train,
        epochs=epochs,
        seed=ctx.seed,
        trajectory=writer,
    )
    r = pca_directions(writer.checkpoints)
    coords = np.asarray(r.coords)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    margin = 0.15 * (hi - lo) + 1e-3
    xs = np.linspace(lo[0] - margin[0], hi[0] + margin[0], resolution, dtype=np.float32)
    ys = np.linspace(lo[1] - margin[1], hi[1] + margin[1], resolution, dtype=np.float32)
    losses = model_losses(final, "cross_entropy")
    surface = plane(losses, final.params, r.d1, r.d2, xs, ys, data=(ctx.train.x, ctx.train.y))[
        "cross_entropy"
    ]
    seconds = time.perf_counter() - t0
    ratio = np.asarray(r.explained_variance_ratio)
    fig = save_figure(
        trajectory_contour(
            xs,
            ys,
            surface,
            coords,
            explained_variance_ratio=ratio,
            title="digits CNN: training path",
        ),
        ctx.out / "landscape_trajectory.png",
    )
    return Section(
        "Training trajectory",
        f"The digits CNN trained again with the demo's recipe ({epochs} epochs), its weights "
        f"saved after every epoch: {len(writer.checkpoints)} checkpoints. Random directions "
        "are nearly orthogonal to an optimisation path, so the path is drawn in the plane of "
        "the top two principal directions of the checkpoints' offsets from the final weights "
        f"(Li et al. 2018): they explain {ratio[0]:.1%} and {ratio[1]:.1%} of the offsets' "
        "variance (axis labels). Red dots: the checkpoints, from the initial weights to the "
        "star at the final ones; contours: training cross-entropy on that plane "
        f"({resolution}x{resolution} points, {surface.min():.3f} to {surface.max():.3f}). "
        f"Training, PCA and sweep took {seconds:.1f} s.",
        figures=[Figure(fig, "The training path over the loss in its PCA plane.")],
    )
