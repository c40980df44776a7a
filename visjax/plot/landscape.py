"""Loss landscapes: 1-D curves along a direction, contours and 3-D surfaces over a plane.

The sweeps themselves (``visjax.landscape``) compute the values; these functions only draw them.
A 2-D surface follows the sweep's convention: ``surface[i, j]`` is the value at
``(xs[i], ys[j])``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.base.grids import check_surface

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _shown(values: np.ndarray, log: bool) -> np.ndarray:
    """Values as drawn: non-finite (and, on a log scale, non-positive) values become NaN."""
    ok = np.isfinite(values)
    if log:
        ok &= values > 0
    return np.where(ok, values, np.nan)


def _draw_marks_2d(ax, marks: Mapping[str, Any] | None) -> None:
    for label, point in (marks or {}).items():
        x, y = (float(v) for v in np.asarray(point, dtype=np.float64).reshape(-1))
        ax.plot([x], [y], marker="o", linestyle="none", color="black", markersize=4, zorder=4)
        ax.annotate(label, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8, zorder=4)


def _accuracy_like(name: str) -> bool:
    return "acc" in name.lower()


def loss_curve(
    alphas: Any,
    values: Any,
    *,
    ax: Axes | None = None,
    labels: str | Mapping[str, str] | None = None,
    marks: Mapping[str, float] | None = None,
    log: bool = False,
    xlabel: str = "alpha",
    title: str | None = None,
    figsize: tuple[float, float] = (5.6, 3.6),
) -> Figure | SubFigure:
    """Values along a 1-D line through parameter space (e.g. from init to trained weights).

    Metrics whose name contains ``"acc"`` (e.g. ``"accuracy"``) go on a second y axis on the right
    when the mapping also holds other metrics (losses), which stay on the left axis.

    Args:
      alphas: ``(K,)`` positions along the line.
      values: ``(K,)`` values, or a mapping metric name to ``(K,)`` values, e.g.
        ``{"cross_entropy": ..., "accuracy": ...}``. NaN and ±Inf are drawn as gaps; on a log axis
        non-positive values are gaps too.
      ax: a matplotlib ``Axes`` to draw on; default: a new figure.
      labels: display names: a string for a single array (shown as the y label), or a mapping
        metric name to display name (metrics not in it show their own name).
      marks: label to alpha, drawn as dotted vertical lines with the label, e.g.
        ``{"init": 0.0, "trained": 1.0}``.
      log: a log y scale on the left (loss) axis; a second accuracy axis stays linear.
      xlabel: the x label.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1:
        raise ValueError(f"`alphas` must be 1-D, got shape {alphas.shape}")
    single = not isinstance(values, Mapping)
    if single:
        series = {"": values}
        names = {"": labels if isinstance(labels, str) else "loss"}
    else:
        if not values:
            raise ValueError("`values` is an empty mapping")
        series = {str(k): v for k, v in values.items()}
        rename = labels if isinstance(labels, Mapping) else {}
        names = {k: str(rename.get(k, k)) for k in series}
    curves: dict[str, np.ndarray] = {}
    for key, v in series.items():
        arr = np.asarray(v, dtype=np.float64)
        if arr.shape != alphas.shape:
            where = "`values`" if single else f"`values[{key!r}]`"
            raise ValueError(f"{where} must have shape {alphas.shape}, got {arr.shape}")
        curves[key] = arr

    if ax is None:
        fig = Figure(figsize=figsize)
        ax = fig.subplots()
    else:
        fig = ax.figure
    right_keys = [k for k in curves if _accuracy_like(k)]
    if len(right_keys) == len(curves):
        right_keys = []
    ax_right = ax.twinx() if right_keys else None

    handles = []
    for n, (key, arr) in enumerate(curves.items()):
        on_right = key in right_keys
        target = ax_right if on_right else ax
        (line,) = target.plot(
            alphas, _shown(arr, log and not on_right), color=f"C{n % 10}", label=names[key]
        )
        handles.append(line)
    for target, keys in ((ax, [k for k in curves if k not in right_keys]), (ax_right, right_keys)):
        if target is not None and keys:
            target.set_ylabel(", ".join(names[k] for k in keys))
    if log:
        ax.set_yscale("log")
    for label, alpha in (marks or {}).items():
        ax.axvline(float(alpha), color="0.3", linestyle=":", linewidth=1.0)
        ax.text(
            float(alpha),
            0.98,
            f" {label}",
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="right",
            va="top",
            fontsize=8,
            color="0.3",
        )
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    if len(handles) > 1:
        ax.legend(handles=handles, fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def _contour_levels(
    finite: np.ndarray, levels: int | Sequence[float], log: bool, vmax: float | None
) -> np.ndarray:
    """Band boundaries: explicit ``levels``, or ``levels`` intervals over [min, min(vmax, max)]."""
    if not isinstance(levels, int | np.integer):
        lv = np.asarray(levels, dtype=np.float64).reshape(-1)
        if len(lv) < 2 or np.any(np.diff(lv) <= 0) or not np.isfinite(lv).all():
            raise ValueError("explicit `levels` must be at least 2 finite, increasing values")
        if log and lv[0] <= 0:
            raise ValueError("`levels` must be positive with `log=True`")
        return lv
    if levels < 1:
        raise ValueError(f"`levels` must be >= 1, got {levels}")
    lo = float(finite.min())
    hi = float(finite.max()) if vmax is None else min(float(finite.max()), float(vmax))
    if hi <= lo:  # a constant surface (or vmax at or below the minimum): one band around it
        if log:
            return np.array([lo / 2.0, lo * 2.0])
        half = 0.5 * abs(lo) if lo != 0 else 0.5
        return np.array([lo - half, lo + half])
    return np.geomspace(lo, hi, levels + 1) if log else np.linspace(lo, hi, levels + 1)


_MAX_LABELS = 8
_LABEL_GAP = 0.08  # the least distance between two contour labels, in axes fractions


def _label_positions(
    cs, levels: np.ndarray, box: tuple[float, float, float, float], avoid: Mapping[str, Any] | None
) -> list:
    """One point on each labelled level's line, spread over the plot (greedy farthest point).

    Each point maximises its distance (in axes fractions) to the points already chosen, to the
    ``avoid`` marks and, up to a margin, to the plot's border, so labels neither pile up where
    lines crowd, cover a mark nor sit clipped at an edge; a line whose best point is within
    ``_LABEL_GAP`` of another label stays unlabelled (the lowest one is always labelled).
    """
    x0, x1, y0, y1 = box
    scale = np.array([max(x1 - x0, 1e-300), max(y1 - y0, 1e-300)])
    chosen = [
        (np.asarray(p, dtype=np.float64).reshape(-1) - [x0, y0]) / scale
        for p in (avoid or {}).values()
    ]
    out = []
    by_level = dict(zip(np.asarray(cs.levels).tolist(), cs.get_paths(), strict=False))
    for level in levels.tolist():
        path = by_level.get(level)
        if path is None or not len(path.vertices):
            continue
        pts = (path.vertices - [x0, y0]) / scale
        border = np.minimum(pts, 1.0 - pts).min(axis=1)
        score = np.minimum(2.0 * border, 0.25)
        if chosen:
            d = np.linalg.norm(pts[:, None, :] - np.asarray(chosen)[None], axis=-1).min(axis=1)
            score = np.minimum(score, d)
        k = int(np.argmax(score))
        if out and score[k] < _LABEL_GAP:  # only room beside another label: leave this line bare
            continue
        chosen.append(pts[k])
        out.append(tuple(path.vertices[k]))
    return out


def _positive(finite: np.ndarray, levels: int | Sequence[float]) -> bool:
    """``log=None``: geometric levels when every finite value (and explicit level) is > 0."""
    if finite.size == 0 or finite.min() <= 0:
        return False
    if not isinstance(levels, int | np.integer):
        return bool(np.all(np.asarray(levels, dtype=np.float64) > 0))
    return True


def loss_contour(
    xs: Any,
    ys: Any,
    surface: Any,
    *,
    ax: Axes | None = None,
    levels: int | Sequence[float] = 20,
    filled: bool = False,
    labels: bool = True,
    log: bool | None = None,
    colorbar: bool = True,
    marks: Mapping[str, Any] | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    xlabel: str = "alpha",
    ylabel: str = "beta",
    zlabel: str = "loss",
    title: str | None = None,
    figsize: tuple[float, float] = (5.0, 3.8),
) -> Figure | SubFigure:
    """Contours of a loss surface over a plane, with labelled levels and a colour bar.

    ``surface[i, j]`` is the value at ``(xs[i], ys[j])``: ``xs`` runs along the horizontal axis.

    Args:
      xs: ``(M,)`` coordinates along the first direction (M >= 2).
      ys: ``(N,)`` coordinates along the second direction (N >= 2).
      surface: ``(M, N)`` values. NaN and ±Inf cells are masked (left blank, no line crosses
        them); with ``log=True`` non-positive cells are masked too.
      ax: a matplotlib ``Axes`` to draw on; default: a new figure.
      levels: the number of intervals between the smallest finite value and
        ``min(vmax, largest finite value)`` (geometrically spaced with ``log``, else evenly),
        or the increasing level values themselves. Lines are drawn at the levels strictly inside
        the data range. A constant surface draws no lines (and one band when ``filled``).
      filled: filled contours (``contourf``); values beyond the levels take the colour bar's end
        colours (its extensions).
      labels: label up to 8 of the lines (evenly chosen, the lowest always) with their values,
        one label per line, spread over the plot (a line with no room left unlabelled); with
        ``filled=True`` thin black lines are drawn at the levels for the labels.
      log: levels spaced geometrically, with a logarithmic colour scale. Default (None):
        geometric when every finite value is positive (a loss: the lines then crowd near the
        minimum, so the basin floor has lines), else evenly spaced.
      colorbar: a colour bar of the levels beside the plot (also when ``ax`` is given).
      marks: label to ``(x, y)``, drawn as black dots with the label (e.g. models on the plane).
      vmax: the top level for ``levels`` given as a count; larger values get no lines (or the
        top colour when filled). Ignored for explicit levels.
      cmap: a matplotlib colour map name.
      xlabel, ylabel: axis labels.
      zlabel: the colour bar's label.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).
    """
    from matplotlib.colors import LogNorm, Normalize  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    xs, ys, z = check_surface(xs, ys, surface)
    if log is None:
        log = _positive(z[np.isfinite(z)], levels)
    shown = _shown(z, log)
    finite = shown[np.isfinite(shown)]
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    if finite.size:
        zt = np.ma.masked_invalid(shown.T)  # rows of Z are y, columns x, as contour expects
        lv = _contour_levels(finite, levels, log, vmax)
        norm = LogNorm(lv[0], lv[-1]) if log else Normalize(lv[0], lv[-1])
        lo, hi = float(finite.min()), float(finite.max())
        if filled:
            below, above = lo < lv[0], hi > lv[-1]
            extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
                (below, above), "neither"
            )
            cf = ax.contourf(xs, ys, zt, levels=lv, cmap=cmap, norm=norm, extend=extend)
            if colorbar:
                fig.colorbar(cf, ax=ax, format="{x:.3g}", label=zlabel)
        inside = lv[(lv > lo) & (lv < hi)]
        if inside.size and (labels or not filled):
            if filled:
                style = {"colors": "black", "linewidths": 0.5, "alpha": 0.6}
            else:
                style = {"cmap": cmap, "norm": norm}
            cs = ax.contour(xs, ys, zt, levels=inside, **style)
            if labels:
                step = int(np.ceil(inside.size / _MAX_LABELS))
                chosen = inside[::step]
                box = (float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max()))
                ax.clabel(
                    cs,
                    chosen,
                    inline=True,
                    inline_spacing=3,
                    fontsize=7,
                    fmt=_fmt,
                    manual=_label_positions(cs, chosen, box, marks),
                )
            if colorbar and not filled:
                fig.colorbar(cs, ax=ax, format="{x:.3g}", label=zlabel)
    else:
        ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center", va="center")
    ax.update_datalim([(xs.min(), ys.min()), (xs.max(), ys.max())])
    ax.autoscale_view()
    _draw_marks_2d(ax, marks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


def loss_surface_3d(
    xs: Any,
    ys: Any,
    surface: Any,
    *,
    ax: Axes | None = None,
    log: bool = False,
    vmax: float | None = None,
    cmap: str = "viridis",
    elev: float = 30.0,
    azim: float = -60.0,
    xlabel: str = "alpha",
    ylabel: str = "beta",
    zlabel: str = "loss",
    title: str | None = None,
    figsize: tuple[float, float] = (5.0, 4.2),
) -> Figure | SubFigure:
    """A loss surface in 3-D (``mpl_toolkits.mplot3d``), coloured by height, with a colour bar
    on the left, clear of the z axis label.

    ``surface[i, j]`` is the height at ``(xs[i], ys[j])``. Matplotlib draws at most 50 x 50 patches
    (larger grids are subsampled for display).

    Args:
      xs: ``(M,)`` coordinates along the first direction (M >= 2).
      ys: ``(N,)`` coordinates along the second direction (N >= 2).
      surface: ``(M, N)`` values. Values above ``vmax`` are clipped to ``vmax`` (as Li et al.'s
        ``zmax``); NaN and ±Inf points (and, with ``log=True``, non-positive ones) are left out of
        the surface, leaving holes.
      ax: a 3-D matplotlib ``Axes`` (``projection="3d"``) to draw on; default: a new figure.
      log: draw ``log10`` of the values (the z label says so).
      vmax: clip heights above this value (in the surface's units, before ``log``).
      cmap: a matplotlib colour map name.
      elev, azim: the view angles in degrees (``Axes3D.view_init``).
      xlabel, ylabel, zlabel: axis labels.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    xs, ys, z = check_surface(xs, ys, surface)
    if ax is None:
        fig = Figure(figsize=figsize)
        ax = fig.add_subplot(projection="3d")
    elif getattr(ax, "name", None) != "3d":
        raise ValueError("`ax` must be a 3-D axes (projection='3d')")
    else:
        fig = ax.figure
    shown = _shown(z, log)
    if vmax is not None:
        shown = np.minimum(shown, float(vmax))  # NaN stays NaN
    if log:
        shown = np.log10(shown)  # only positive values are left
        zlabel = f"log10 {zlabel}"
    if np.isfinite(shown).any():
        x_grid, y_grid = np.meshgrid(xs, ys, indexing="ij")
        surf = ax.plot_surface(x_grid, y_grid, shown, cmap=cmap, linewidth=0, antialiased=False)
        # on the left: the z axis and its label sit on the right at the usual view angles
        fig.colorbar(surf, ax=ax, location="left", shrink=0.6, pad=0.0, format="{x:.3g}")
    else:
        ax.text2D(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center")
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect(None, zoom=0.9)  # room for the axis labels
    ax.set_xlabel(xlabel, labelpad=6)
    ax.set_ylabel(ylabel, labelpad=6)
    ax.set_zlabel(zlabel, labelpad=10)
    if title:
        ax.set_title(title)
    return fig


def _ordinal(k: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


def trajectory_contour(
    xs: Any,
    ys: Any,
    surface: Any,
    path: Any,
    *,
    explained_variance_ratio: Any = None,
    ax: Axes | None = None,
    levels: int | Sequence[float] = 20,
    filled: bool = False,
    labels: bool = True,
    log: bool | None = None,
    colorbar: bool = True,
    vmax: float | None = None,
    cmap: str = "viridis",
    color: str = "red",
    markersize: float = 3.0,
    title: str | None = None,
    figsize: tuple[float, float] = (4.6, 3.8),
) -> Figure | SubFigure:
    """A loss contour in a trajectory's PCA plane with the optimisation path drawn over it.

    As Li et al.'s ``plot_2D.plot_trajectory``: the contour of :func:`loss_contour` (same ``xs``,
    ``ys``, ``surface`` convention), the path as a line with a dot at every checkpoint, and the
    final point (the last row of ``path``) as a star; with the explained variance ratios the axis
    labels read ``"1st PC: 83.20 %"`` and ``"2nd PC: 10.51 %"``.

    Args:
      xs, ys, surface: the loss over the plane, as in :func:`loss_contour` (e.g. from
        ``plane(loss_fn, final, r.d1, r.d2, xs, ys, ...)`` with ``r = pca_directions(...)``).
      path: ``(T, 2)`` checkpoint coordinates in order (``r.coords``), T >= 1. Rows with NaN/Inf
        are left out of the line and markers.
      explained_variance_ratio: ``(2,)`` fractions (``r.explained_variance_ratio``) for the axis
        labels; None labels the axes "1st PC" and "2nd PC".
      ax, levels, filled, labels, log, colorbar, vmax, cmap, title, figsize: as in
        :func:`loss_contour`.
      color: the colour of the path and its markers.
      markersize: the size of the checkpoint dots (the final star is three times larger).

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).
    """
    pts = np.asarray(path, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 1:
        raise ValueError(f"`path` must have shape (T, 2) with T >= 1, got {pts.shape}")
    names = [f"{_ordinal(k)} PC" for k in (1, 2)]
    if explained_variance_ratio is not None:
        ratio = np.asarray(explained_variance_ratio, dtype=np.float64)
        if ratio.shape != (2,):
            raise ValueError(f"`explained_variance_ratio` must have shape (2,), got {ratio.shape}")
        names = [f"{n}: {100 * r:.2f} %" for n, r in zip(names, ratio, strict=True)]
    fig = loss_contour(
        xs,
        ys,
        surface,
        ax=ax,
        levels=levels,
        filled=filled,
        labels=labels,
        log=log,
        colorbar=colorbar,
        vmax=vmax,
        cmap=cmap,
        xlabel=names[0],
        ylabel=names[1],
        title=title,
        figsize=figsize,
    )
    ax = ax if ax is not None else fig.axes[0]
    ok = np.isfinite(pts).all(axis=1)
    shown = pts[ok]
    ax.plot(
        shown[:, 0],
        shown[:, 1],
        color=color,
        marker="o",
        markersize=markersize,
        linewidth=1.0,
        zorder=5,
        label="path",
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
            label="final",
        )
    return fig
