"""The report's landscape sections: the line from initial to trained weights and a plane (the
demo), a plane around a user's trained weights (:func:`visjax.report.write`), and the demo's
training trajectory."""

from __future__ import annotations

import time

import jax
import numpy as np

from visjax.base.io import save_figure
from visjax.landscape import model_losses, pca_directions, plane, random_plane, save_npz
from visjax.plot import loss_contour, loss_surface_3d, trajectory_contour
from visjax.report.context import DemoContext, ReportContext, SkipSection
from visjax.report.html import Figure, Section
from visjax.report.sweep import sweep_trained
from visjax.zoo import digits_cnn
from visjax.zoo.train import train

#: A user's plane: its points per axis and the training examples it averages over (a seeded
#: subset of larger data), quick and full; small, so that `write()` stays fast.
USER_RESOLUTION = 11
USER_EXAMPLES = {True: 256, False: 1024}


def _lowest(ce: np.ndarray, xs: np.ndarray) -> str:
    """Where the cross-entropy on the plane is lowest, in words."""
    resolution = len(xs)
    i, j = divmod(int(ce.argmin()), resolution)
    centre = float(ce[resolution // 2, resolution // 2])
    if (i, j) == (resolution // 2, resolution // 2):
        return f"lowest cross-entropy {centre:.3f}, at the centre (the trained weights)"
    return (
        f"lowest cross-entropy {ce.min():.3f} at (alpha, beta) = ({xs[i]:.2f}, "
        f"{xs[j]:.2f}); {centre:.3f} at the centre (the trained weights)"
    )


def landscape_section(ctx: ReportContext) -> Section:
    """1-D interpolation init -> trained and a filter-normalised 2-D contour (Li et al. 2018);
    for a user's model the plane only (:func:`_user_landscape`)."""
    if not ctx.demo:
        return _user_landscape(ctx)
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
    where = _lowest(run.surfaces["cross_entropy"], run.xs)
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


def _user_landscape(ctx: ReportContext) -> Section:
    """A filter-normalised random plane around the user's trained weights (Li et al. 2018),
    :data:`USER_RESOLUTION` points a side, over a seeded subset of the training data; no line
    from the initial weights (a user's context has none)."""
    x, y = np.asarray(ctx.train.x), np.asarray(ctx.train.y)
    n = min(len(y), USER_EXAMPLES[bool(ctx.quick)])
    subset = f"all {n:,} training examples"
    if n < len(y):
        idx = np.sort(np.random.default_rng(ctx.seed).choice(len(y), n, replace=False))
        x, y = x[idx], y[idx]
        subset = f"a random {n:,} of the {len(ctx.train.y):,} training examples (seed {ctx.seed})"
    resolution = USER_RESOLUTION
    xs = np.linspace(-1.0, 1.0, resolution, dtype=np.float32)
    t0 = time.perf_counter()
    params = ctx.model.params
    d1, d2 = random_plane(params, key=jax.random.key(ctx.seed), normalization="filter")
    losses = model_losses(ctx.model, "cross_entropy", "accuracy")
    surfaces = plane(losses, params, d1, d2, xs, xs, data=(x, y), progress=False)
    seconds = time.perf_counter() - t0
    out = ctx.out / "landscape"
    out.mkdir(parents=True, exist_ok=True)
    save_npz(
        out / "landscape.npz",
        xs=xs,
        ys=xs,
        **{f"surface_{k}": v for k, v in surfaces.items()},
    )
    ce = surfaces["cross_entropy"]
    figs = [
        save_figure(
            loss_contour(xs, xs, ce, marks={"trained": (0.0, 0.0)}, title="cross_entropy"),
            out / "contour.png",
        ),
        save_figure(loss_surface_3d(xs, xs, ce, title="cross_entropy"), out / "surface3d.png"),
    ]
    acc = surfaces["accuracy"]
    return Section(
        "Loss landscape",
        f"Training cross-entropy on a filter-normalised random plane around the trained "
        f"weights, Li et al. 2018 ({resolution}x{resolution} points, range [-1, 1]; "
        f"{_lowest(ce, xs)}; accuracy {float(acc.min()):.1%} to {float(acc.max()):.1%}), over "
        f"{subset}, in {seconds:.1f} s. No line from the initial to the trained weights: "
        "`write()` is not given the initial weights. Arrays: landscape/landscape.npz.",
        figures=figs,
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
