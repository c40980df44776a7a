"""Many runs on one plane, and several planes side by side with one colour scale.

Arrays in (from ``visjax.landscape.runs_surface`` and ``side_by_side``, or anything else):
``surface[i, j]`` is the value at ``(xs[i], ys[j])``, as for :func:`visjax.plot.loss_contour`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.base.grids import check_surface
from visjax.plot.landscape import loss_contour

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _named(items: Any, name: str, prefix: str) -> dict[str, np.ndarray]:
    """A mapping label -> ``(T, 2)`` array, or a sequence of them labelled ``prefix k``."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    elif isinstance(items, Sequence) and not isinstance(items, str):
        pairs = [(f"{prefix} {k}", v) for k, v in enumerate(items)]
    else:
        raise TypeError(f"`{name}` must be a mapping label -> points or a sequence of them")
    out = {}
    for label, v in pairs:
        a = np.asarray(v, dtype=np.float64)
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2 or a.shape[1] != 2 or len(a) < 1:
            raise ValueError(f"`{name}[{label!r}]` must have shape (T, 2), got {np.shape(v)}")
        out[label] = a
    return out


def _pc_labels(ratio: Any) -> tuple[str, str]:
    names = ("1st PC", "2nd PC")
    if ratio is None:
        return names
    r = np.asarray(ratio, dtype=np.float64)
    if r.shape != (2,):
        raise ValueError(f"`explained_variance_ratio` must have shape (2,), got {r.shape}")
    return tuple(f"{n}: {100 * v:.2f} %" for n, v in zip(names, r, strict=True))


def _draw_paths(ax, paths: dict[str, np.ndarray], markersize: float) -> None:
    for k, (label, pts) in enumerate(paths.items()):
        ok = np.isfinite(pts).all(axis=1)
        color = f"C{(k + 1) % 10}"  # C0 is the contour colour map's neighbour: start at C1
        ax.plot(
            pts[ok, 0],
            pts[ok, 1],
            color=color,
            marker="o",
            markersize=markersize,
            linewidth=1.0,
            zorder=5,
            label=label,
        )
        if ok[-1]:
            ax.plot(
                [pts[-1, 0]],
                [pts[-1, 1]],
                color=color,
                marker="*",
                markersize=3 * markersize,
                linestyle="none",
                zorder=6,
            )


def runs_contour(
    xs: Any,
    ys: Any,
    surface: Any,
    *,
    paths: Mapping[str, Any] | Sequence[Any] | None = None,
    solutions: Mapping[str, Any] | Sequence[Any] | None = None,
    explained_variance_ratio: Any = None,
    ax: Axes | None = None,
    levels: int | Sequence[float] = 20,
    filled: bool = False,
    labels: bool = True,
    log: bool | None = None,
    colorbar: bool = True,
    vmax: float | None = None,
    cmap: str = "viridis",
    markersize: float = 3.0,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (5.2, 4.2),
) -> Figure | SubFigure:
    """One loss contour with several runs' trajectories and the solutions marked on it.

    The contour is :func:`visjax.plot.loss_contour`'s; each path is a coloured line with a dot
    per checkpoint and a star at its end (one colour per run, in a legend); each solution is a
    black dot with its label.

    Args:
      xs, ys, surface: the loss over the plane (``surface[i, j]`` at ``(xs[i], ys[j])``), e.g.
        ``r.xs, r.ys, r.surface["cross_entropy"]`` of ``r = visjax.landscape.runs_surface(...)``.
      paths: label -> ``(T, 2)`` checkpoint coordinates in order, or a sequence of them
        (labelled ``"run 0"``, ...), e.g. ``[p.coords for p in r.paths]``. Rows with NaN/Inf
        are left out.
      solutions: label -> ``(x, y)``, or a sequence of points / an ``(S, 2)`` array (labelled
        ``"w1"``, ``"w2"``, ...), e.g. ``r.solutions.coords``.
      explained_variance_ratio: ``(2,)`` for a PCA plane: the axes read ``"1st PC: 83.20 %"``.
      ax, levels, filled, labels, log, colorbar, vmax, cmap, title, figsize: as in
        :func:`visjax.plot.loss_contour`.
      markersize: the checkpoint dots' size (the end stars are three times larger).
      xlabel, ylabel: axis labels; default ``"1st PC"``/``"2nd PC"`` with a ratio, else
        ``"u"``/``"v"``.

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).
    """
    xs, ys, z = check_surface(xs, ys, surface)
    runs = _named(paths, "paths", "run")
    if solutions is not None and not isinstance(solutions, Mapping):
        arr = np.asarray(solutions, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"`solutions` must have shape (S, 2), got {arr.shape}")
        solutions = {f"w{k + 1}": p for k, p in enumerate(arr)}
    marks = {k: v[0] for k, v in _named(solutions, "solutions", "w").items()}
    if explained_variance_ratio is not None:
        default = _pc_labels(explained_variance_ratio)
    else:
        default = ("u", "v")
    fig = loss_contour(
        xs,
        ys,
        z,
        ax=ax,
        levels=levels,
        filled=filled,
        labels=labels,
        log=log,
        colorbar=colorbar,
        marks=marks,
        vmax=vmax,
        cmap=cmap,
        xlabel=default[0] if xlabel is None else xlabel,
        ylabel=default[1] if ylabel is None else ylabel,
        title=title,
        figsize=figsize,
    )
    ax = ax if ax is not None else fig.axes[0]
    _draw_paths(ax, runs, markersize)
    if runs:
        ax.legend(fontsize=7, loc="best")
    return fig


def surface_row(
    xs: Any,
    ys: Any,
    surfaces: Mapping[str, Any],
    *,
    fig: Figure | SubFigure | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool | None = None,
    levels: int = 20,
    filled: bool = True,
    labels: bool = False,
    paths: Mapping[str, Any] | None = None,
    cmap: str = "viridis",
    xlabel: str = "alpha",
    ylabel: str = "beta",
    zlabel: str = "loss",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure | SubFigure:
    """A row of contours on one grid with one colour scale: panels comparable by colour.

    Every panel gets the same contour levels, ``levels`` intervals over ``[vmin, vmax]``
    (geometric with ``log``), and one colour bar serves them all; values beyond the range take
    the colour bar's end colours. ``visjax.landscape.side_by_side`` returns the grid, the
    surfaces and the shared ``scale[metric]`` and ``log[metric]`` to pass here.

    Args:
      xs, ys: the shared grid (``(M,)``, ``(N,)``).
      surfaces: panel title -> ``(M, N)`` values (at least one; order kept).
      fig: a matplotlib Figure or SubFigure to draw into; default: a new figure.
      vmin, vmax: the colour scale; default: the finite minimum / maximum over all panels.
      log: geometric levels and a logarithmic colour scale; default: when ``vmin > 0``.
      levels: the number of intervals (>= 1).
      filled: filled contours (default) or lines.
      labels: label the lines with their values.
      paths: panel title -> ``(T, 2)`` coordinates drawn over that panel (e.g. each model's
        PCA trajectory).
      cmap: a matplotlib colour map name.
      xlabel, ylabel: axis labels (the y label on the first panel only).
      zlabel: the colour bar's label.
      title: the figure's title.
      figsize: the new figure's size; default ``(3.2 * n + 1, 3.2)``.

    Returns:
      The Figure (or SubFigure) drawn into.
    """
    from matplotlib.cm import ScalarMappable  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure
    from matplotlib.colors import LogNorm, Normalize  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    if not isinstance(surfaces, Mapping) or not surfaces:
        raise ValueError("`surfaces` must be a non-empty mapping panel title -> (M, N) values")
    checked = {}
    for name, s in surfaces.items():
        try:
            gx, gy, z = check_surface(xs, ys, s)
        except ValueError as e:
            raise ValueError(f"`surfaces[{name!r}]`: {e}") from None
        checked[str(name)] = z
    drawn = _named(paths, "paths", "run")
    unknown = set(drawn) - set(checked)
    if unknown:
        raise ValueError(f"`paths` names panels not in `surfaces`: {sorted(unknown)}")
    if isinstance(levels, bool) or not isinstance(levels, int | np.integer) or levels < 1:
        raise ValueError(f"`levels` must be an int >= 1, got {levels!r}")
    finite = np.concatenate([z[np.isfinite(z)] for z in checked.values()])
    lo = float(finite.min()) if vmin is None and finite.size else vmin
    hi = float(finite.max()) if vmax is None and finite.size else vmax
    if lo is None or hi is None:
        lo, hi = 0.0, 1.0  # nothing finite to scale by
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"`vmin` and `vmax` must be finite, got {lo!r}, {hi!r}")
    if log is None:
        log = lo > 0
    if log and lo <= 0:
        raise ValueError(f"`vmin` must be > 0 with `log=True`, got {lo!r}")
    if hi <= lo:
        hi = lo * 2.0 if log else lo + (abs(lo) or 1.0)
    lv = np.geomspace(lo, hi, levels + 1) if log else np.linspace(lo, hi, levels + 1)
    norm = LogNorm(lv[0], lv[-1]) if log else Normalize(lv[0], lv[-1])

    n = len(checked)
    if fig is None:
        fig = Figure(figsize=figsize or (3.2 * n + 1.0, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0])
    for k, (ax, (name, z)) in enumerate(zip(axes, checked.items(), strict=True)):
        loss_contour(
            gx,
            gy,
            z,
            ax=ax,
            levels=lv,
            filled=filled,
            labels=labels,
            log=log,
            colorbar=False,
            cmap=cmap,
            xlabel=xlabel,
            ylabel=ylabel if k == 0 else "",
            title=name,
        )
        if name in drawn:
            _draw_paths(ax, {name: drawn[name]}, 2.5)
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), format="{x:.3g}", label=zlabel
    )
    if title:
        fig.suptitle(title)
    return fig
