"""The report's curvature section: the training loss's Hessian at the trained weights."""

from __future__ import annotations

import time

import jax
import numpy as np

from visjax.base.io import save_figure
from visjax.curvature import spectral_density, top_eigenvalues
from visjax.landscape import model_losses
from visjax.plot import eigenvalue_density
from visjax.report.context import DemoContext
from visjax.report.html import Figure, Section


def curvature_section(ctx: DemoContext) -> Section:
    """Top Hessian eigenvalues (Lanczos) and the eigenvalue density (stochastic Lanczos
    quadrature, Ghorbani et al. 2019) of the training cross-entropy."""
    model = ctx.model
    loss = model_losses(model, "cross_entropy")["cross_entropy"]
    # Quick: 512 training examples (the HVPs compile and run in a few seconds).
    n_data = 512 if ctx.quick else len(ctx.train.y)
    data = (np.asarray(ctx.train.x)[:n_data], np.asarray(ctx.train.y)[:n_data])
    k1, k2 = jax.random.split(jax.random.key(ctx.seed))
    k = 3 if ctx.quick else 5
    n_iter = 24 if ctx.quick else 80

    t0 = time.perf_counter()
    top = top_eigenvalues(loss, model.params, data=data, k=k, n_iter=40, tol=1e-3, key=k1)
    density = spectral_density(loss, model.params, data=data, n_iter=n_iter, key=k2)
    seconds = time.perf_counter() - t0
    nodes = density.nodes[np.isfinite(density.nodes)]
    n_params = sum(int(np.size(p)) for p in jax.tree.leaves(model.params))
    fig = save_figure(
        eigenvalue_density(density, outliers=top.eigenvalues, title="Hessian eigenvalue density"),
        ctx.out / "curvature_density.png",
    )
    values = ", ".join(f"{v:.3g}" for v in top.eigenvalues)
    return Section(
        "Curvature",
        f"The Hessian of the training cross-entropy ({len(data[1])} examples, {n_params:,} "
        f"parameters) at the trained weights. Top {k} eigenvalues (Lanczos, "
        f"{'converged' if top.converged else 'not converged'} after {top.n_hvp} "
        f"Hessian-vector products): {values}. The density (stochastic Lanczos quadrature, "
        f"one random probe x {n_iter} steps, log scale) shows the bulk of eigenvalues near "
        f"zero (smallest node {nodes.min():.3g}: negative values are directions of negative "
        "curvature) and the few large outliers, marked red at the top eigenvalues: the sharp "
        f"directions that limit the stable learning rate. Computed in {seconds:.1f} s.",
        figures=[Figure(fig, f"Hessian eigenvalue density; top {k} eigenvalues in red.")],
    )
