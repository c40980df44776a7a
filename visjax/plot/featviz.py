"""Feature visualisation pictures: image grids, objective curves, filter and feature-map grids.

Every function takes arrays and returns a matplotlib ``Figure`` with one axes per panel (unused
grid cells are removed): a new one, or the ``fig`` (grids) or ``ax.figure`` (curves) passed in.
NaN/Inf pixels are drawn transparent, so the figure's background shows through; NaN/Inf values
in curves are gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.base.checks import check_positive_int
from visjax.plot._figure import constrained, new_axes, new_figure

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _grid_shape(n: int, ncols: int | None) -> tuple[int, int]:
    if ncols is None:
        ncols = int(np.ceil(np.sqrt(n)))
    else:
        ncols = check_positive_int(ncols, "ncols")
    ncols = min(int(ncols), n)
    return int(np.ceil(n / ncols)), ncols


def _check_labels(labels: Sequence[str] | None, n: int) -> None:
    if labels is not None and len(labels) != n:
        raise ValueError(f"`labels` must have {n} entries (one per panel), got {len(labels)}")


def _display(img: np.ndarray, normalize: bool) -> np.ndarray:
    """An (H, W) grey or (H, W, 4) RGBA array ready for imshow; non-finite pixels masked."""
    bad = ~np.isfinite(img).all(-1) if img.ndim == 3 else ~np.isfinite(img)
    if normalize:
        finite = img[np.isfinite(img)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        img = (img - lo) / (hi - lo) if hi > lo else np.full_like(img, 0.5)
    img = np.clip(np.nan_to_num(img, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if img.ndim == 2:
        return np.ma.masked_array(img, mask=bad)
    rgba = np.concatenate([img, np.ones((*img.shape[:2], 1))], axis=-1)
    rgba[bad, 3] = 0.0
    return rgba


def _panels(
    panels: list[np.ndarray],
    *,
    labels: Sequence[str] | None,
    ncols: int | None,
    cmap: str | None,
    title: str | None,
    cell: float,
    normalize: bool,
    vrange: tuple[float, float] | None = None,
    colorbar: str | None = None,
    fig=None,
):
    """The panels in a grid under constrained layout (so a row's titles never reach into the
    row above; each row gets room for its titles); with ``colorbar`` (its label) one colour bar
    for all panels, ticked "min" and "max" when each panel was scaled on its own."""
    n = len(panels)
    nrows, ncols = _grid_shape(n, ncols)
    height = nrows * (cell + (0.25 if labels is not None else 0.05)) + (0.4 if title else 0.1)
    width = cell * ncols + (0.9 if colorbar else 0.0)
    fig = new_figure(fig, (width, height), layout="constrained")
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    artist = None
    for i, ax in enumerate(axes):
        if i >= n:
            fig.delaxes(ax)
            continue
        if vrange is None:
            img = _display(panels[i], normalize)
            artist = ax.imshow(
                img, cmap=cmap or "gray", vmin=0.0, vmax=1.0, interpolation="nearest"
            )
        else:
            img = np.ma.masked_invalid(panels[i])
            artist = ax.imshow(
                img, cmap=cmap, vmin=vrange[0], vmax=vrange[1], interpolation="nearest"
            )
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    constrained(fig)
    if colorbar and artist is not None:
        cb = fig.colorbar(artist, ax=[ax for ax in axes[:n]], shrink=0.8)
        cb.set_label(colorbar, fontsize=8)
        cb.ax.tick_params(labelsize=7)
        if vrange is None:
            cb.set_ticks([0.0, 1.0], labels=["min", "max"])
    return fig


def _to_panel(img: np.ndarray) -> np.ndarray:
    """(H, W, C) to grey (H, W) or RGB (H, W, 3): C=1 grey, C=3 RGB, otherwise the channel mean."""
    c = img.shape[-1]
    if c == 3:
        return img
    return img[..., 0] if c == 1 else img.mean(-1)


def image_grid(
    images: Any,
    *,
    labels: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str | None = None,
    title: str | None = None,
    normalize: bool = False,
    cell: float = 1.6,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """A grid of images, e.g. the units rendered by feature visualisation.

    One channel is drawn in grey (or ``cmap``), three as RGB; any other channel count is drawn as
    the mean over channels, in grey. Values are clipped to [0, 1] (the range feature
    visualisation renders into) unless ``normalize`` scales each image to its own min and max.
    NaN/Inf pixels are transparent.

    Args:
      images: ``(U, H, W, C)`` (or ``(U, H, W)``, taken as ``C=1``).
      labels: one title per image (e.g. ``"conv2:5"``).
      ncols: columns of the grid; default ``ceil(sqrt(U))``.
      cmap: colour map for one-channel images (default ``"gray"``); RGB images ignore it.
      title: the figure title.
      normalize: scale each image to [0, 1] by its own finite min and max.
      cell: size of one panel in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      ``fig`` when given, else the new ``Figure``, with ``U`` axes.

    Raises:
      ValueError: ``images`` not 3-D/4-D or empty, wrong number of ``labels``, a bad ``ncols``.

    Example:
      >>> import numpy as np
      >>> fig = image_grid(np.random.default_rng(0).random((5, 8, 8, 3)), ncols=3)
      >>> len(fig.axes)
      5
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"`images` must be (U, H, W, C) with U >= 1, got shape {x.shape}")
    _check_labels(labels, x.shape[0])
    return _panels(
        [_to_panel(im) for im in x],
        labels=labels,
        ncols=ncols,
        cmap=cmap,
        title=title,
        cell=cell,
        normalize=normalize,
        fig=fig,
    )


def objective_curves(
    traces: Any,
    *,
    ax: Axes | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str = "step",
    ylabel: str = "objective",
    figsize: tuple[float, float] = (5.0, 3.4),
) -> Figure | SubFigure:
    """The objective over the optimisation steps, one curve per unit.

    Args:
      traces: ``(U, steps)`` objective values (a 1-D ``(steps,)`` is one curve). NaN/Inf values
        are drawn as gaps.
      ax: draw on these axes and return their figure; default: a new figure.
      labels: one legend entry per curve; no legend when None.
      title: the axes title.
      xlabel: the x-axis label (steps are numbered from 1).
      ylabel: the y-axis label.
      figsize: figure size in inches (new figure only).

    Returns:
      The matplotlib ``Figure`` (``ax.figure`` when ``ax`` is given).

    Raises:
      ValueError: ``traces`` not 1-D/2-D or empty, or a wrong number of ``labels``.

    Example:
      >>> import numpy as np
      >>> fig = objective_curves(np.cumsum(np.ones((3, 10)), 1), labels=["a", "b", "c"])
      >>> len(fig.axes[0].get_lines())
      3
    """
    t = np.asarray(traces, dtype=np.float64)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.size == 0:
        raise ValueError(f"`traces` must be (U, steps) with U, steps >= 1, got shape {t.shape}")
    _check_labels(labels, t.shape[0])
    t = np.where(np.isfinite(t), t, np.nan)
    given = ax is not None
    fig, ax = new_axes(ax, figsize)
    steps = np.arange(1, t.shape[1] + 1)
    for i, row in enumerate(t):
        ax.plot(steps, row, label=None if labels is None else str(labels[i]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if labels is not None:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    if not given:
        fig.tight_layout()
    return fig


def filter_grid(
    filters: Any,
    *,
    ncols: int | None = None,
    title: str | None = None,
    cell: float = 1.0,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """The filters of a convolution layer, as :func:`visjax.featviz.layer_filters` returns them.

    Filters with one input channel are drawn in grey, with three as RGB; for any other input
    channel count each filter is drawn as its mean over input channels, in grey. Values are
    expected in [0, 1] (``layer_filters`` scales them) and clipped to it; NaN/Inf are
    transparent. Each panel is titled with its output channel.

    Args:
      filters: ``(C_out, kh, kw, C_in)``.
      ncols: columns of the grid; default ``ceil(sqrt(C_out))``.
      title: the figure title.
      cell: size of one panel in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      ``fig`` when given, else the new ``Figure``, with ``C_out`` axes.

    Raises:
      ValueError: ``filters`` not 4-D or empty.

    Example:
      >>> import numpy as np
      >>> len(filter_grid(np.random.default_rng(0).random((6, 3, 3, 16))).axes)
      6
    """
    f = np.asarray(filters, dtype=np.float64)
    if f.ndim != 4 or f.shape[0] == 0:
        raise ValueError(f"`filters` must be (C_out, kh, kw, C_in), got shape {f.shape}")
    return _panels(
        [_to_panel(w) for w in f],
        labels=[str(i) for i in range(f.shape[0])],
        ncols=ncols,
        cmap=None,
        title=title,
        cell=cell,
        normalize=False,
        fig=fig,
    )


def feature_map_grid(
    maps: Any,
    *,
    ncols: int | None = None,
    cmap: str = "viridis",
    scale: str = "shared",
    title: str | None = None,
    cell: float = 1.2,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """One example's feature maps, one panel per channel, with a colour bar.

    Args:
      maps: ``(H', W', C)``, e.g. ``feature_maps(model, x, layer=layer)[i]``.
      ncols: columns of the grid; default ``ceil(sqrt(C))``.
      cmap: the colour map.
      scale: ``"shared"`` (default): one colour scale, the finite min and max over all
        channels, for every panel, so channels compare in magnitude; the colour bar reads
        "activation (one scale for every channel)". ``"each"``: each channel scaled to its own
        finite min and max (a constant channel is drawn at the middle of the colour map), the
        colour bar ticked "min" and "max".
      title: the figure title.
      cell: size of one panel in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      ``fig`` when given, else the new ``Figure``, with ``C`` axes, each titled with its
      channel, then the colour bar's. NaN/Inf values are transparent.

    Raises:
      ValueError: ``maps`` not 3-D or without channels, or an unknown ``scale``.

    Example:
      >>> import numpy as np
      >>> len(feature_map_grid(np.random.default_rng(0).random((8, 8, 4))).axes)
      5
    """
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 3 or m.shape[-1] == 0:
        raise ValueError(f"`maps` must be one example's (H', W', C), got shape {m.shape}")
    if scale not in ("shared", "each"):
        raise ValueError(f"`scale` must be 'shared' or 'each', got {scale!r}")
    panels = [m[..., c] for c in range(m.shape[-1])]
    vrange = None
    label = "activation (each channel: its own min to max)"
    if scale == "shared":
        label = "activation (one scale for every channel)"
        finite = m[np.isfinite(m)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        vrange = (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)
    return _panels(
        panels,
        labels=[str(c) for c in range(m.shape[-1])],
        ncols=ncols,
        cmap=cmap,
        title=title,
        cell=cell,
        normalize=True,
        vrange=vrange,
        colorbar=label,
        fig=fig,
    )
