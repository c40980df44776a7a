"""The demo report's landscape section: the line from initial to trained weights and a plane."""

from __future__ import annotations

from visjax.report.context import DemoContext
from visjax.report.html import Section
from visjax.report.sweep import sweep_trained
from visjax.zoo import digits_cnn


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
