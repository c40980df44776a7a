"""Curvature plots: the Hessian's eigenvalue density and top eigenvalues along training.

The estimates come from ``visjax.curvature`` (``spectral_density``, ``top_eigenvalues``); these
functions only draw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


_FLOOR = 1e-7  # relative to the density's maximum; PyHessian plots density + 1e-7


def eigenvalue_density(
    density: Any,
    *,
    ax: Axes | None = None,
    log: bool = True,
    outliers: Any = None,
    title: str | None = None,
    figsize: tuple[float, float] = (5.6, 3.6),
) -> Figure | SubFigure:
    """The eigenvalue density of the Hessian (stochastic Lanczos quadrature), with outliers marked.

    Args:
      density: a :class:`visjax.curvature.SpectralDensity` (anything with ``grid`` ``(G,)`` and
        ``density`` ``(G,)``).
      ax: a matplotlib ``Axes`` to draw on; default: a new figure.
      log: a log y scale (as Ghorbani et al. and PyHessian draw it). On it, values ``<= 0`` are
        drawn at the floor ``1e-7 · max(density)`` (PyHessian adds ``1e-7``), so the Gaussian
        tails stay visible and the curve has no gaps; NaN and ±Inf are gaps on either scale.
      outliers: eigenvalues ``(k,)`` to mark (e.g. the top eigenvalues from
        :func:`visjax.curvature.top_eigenvalues`), drawn as dashed red vertical lines with a
        triangle marker at the top of the axes.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    grid = np.asarray(getattr(density, "grid", None), dtype=np.float64)
    values = np.asarray(getattr(density, "density", None), dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"`density.grid` must be 1-D with at least 2 points, got {grid.shape}")
    if values.shape != grid.shape:
        raise ValueError(f"`density.density` must have shape {grid.shape}, got {values.shape}")
    marks = np.zeros(0) if outliers is None else np.asarray(outliers, dtype=np.float64)
    if marks.ndim > 1:
        raise ValueError(f"`outliers` must be a scalar or 1-D, got shape {marks.shape}")
    marks = marks.reshape(-1)
    shown = np.where(np.isfinite(values), values, np.nan)
    if log:
        finite = shown[np.isfinite(shown)]
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        shown = np.where(np.isfinite(shown), np.maximum(shown, _FLOOR * top), np.nan)

    if ax is None:
        fig = Figure(figsize=figsize)
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.plot(grid, shown, color="C0", linewidth=1.2)
    if log:
        ax.set_yscale("log")
    for x in marks[np.isfinite(marks)]:
        ax.axvline(float(x), color="C3", linestyle="--", linewidth=1.0)
        ax.plot(
            [float(x)], [1.0], marker="v", color="C3", linestyle="none",
            transform=ax.get_xaxis_transform(), clip_on=False,
        )  # fmt: skip
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def eigenvalues_over_training(
    steps: Any,
    eigenvalues: Any,
    *,
    ax: Axes | None = None,
    labels: Sequence[str] | None = None,
    log: bool = False,
    title: str | None = None,
    figsize: tuple[float, float] = (5.6, 3.6),
) -> Figure | SubFigure:
    """Top Hessian eigenvalues along training, one line per eigenvalue index.

    Args:
      steps: ``(T,)`` training steps (or epochs).
      eigenvalues: ``(T, k)`` eigenvalues at each step (``(T,)`` is taken as ``k = 1``); NaN and
        ±Inf are drawn as gaps; on a log axis non-positive values are gaps too.
      ax: a matplotlib ``Axes`` to draw on; default: a new figure.
      labels: ``k`` line labels; default ``λ1 … λk``.
      log: a log y scale.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim != 1:
        raise ValueError(f"`steps` must be 1-D, got shape {steps.shape}")
    values = np.asarray(eigenvalues, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != steps.size:
        raise ValueError(
            f"`eigenvalues` must have shape ({steps.size}, k), got {np.shape(eigenvalues)}"
        )
    k = values.shape[1]
    names = [f"λ{i + 1}" for i in range(k)] if labels is None else [str(s) for s in labels]
    if len(names) != k:
        raise ValueError(f"`labels` must have {k} entries, got {len(names)}")
    ok = np.isfinite(values) & ((values > 0) if log else True)
    shown = np.where(ok, values, np.nan)

    if ax is None:
        fig = Figure(figsize=figsize)
        ax = fig.subplots()
    else:
        fig = ax.figure
    for i in range(k):
        ax.plot(steps, shown[:, i], color=f"C{i % 10}", marker=".", label=names[i])
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("eigenvalue")
    ax.grid(alpha=0.3)
    if k > 1:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig
