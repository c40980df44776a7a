"""Attribution maps: a heatmap over the image, and a grid comparing methods across examples."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.plot._figure import constrained, new_figure, tight

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _to_map(attribution: Any, name: str = "attribution") -> np.ndarray:
    a = np.asarray(attribution, dtype=np.float64)
    if a.ndim == 3:  # (H, W, C): sum over channels, as Captum's visualisation does
        a = a.sum(-1)
    if a.ndim != 2:
        raise ValueError(f"`{name}` must be (H, W) or (H, W, C), got shape {a.shape}")
    return a


def to_image(image: Any) -> np.ndarray:
    """One image as a float (H, W) or (H, W, 3|4) array for ``imshow`` (a single channel
    squeezed); raises ``ValueError`` naming ``image`` otherwise."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"`image` must be (H, W) or (H, W, C), got shape {img.shape}")
    lo, hi = np.nanmin(img), np.nanmax(img)
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _draw_overlay(
    ax,
    image: Any,
    attribution: Any,
    *,
    signed: bool | None = None,
    percentile: float = 99.0,
    alpha: float = 0.65,
    cmap: str | None = None,
    title: str | None = None,
    name: str = "attribution",
    vmax: float | None = None,
):
    """Draw an attribution heatmap over a (grey-scale) image on ``ax``; returns the image artist.

    Channels are summed. Signed maps (``signed=None``: when any value is negative) use a
    diverging colour map symmetric around zero, clipped at ``vmax`` (default: the
    ``percentile`` of ``|a|``); unsigned maps run from 0 to it. NaN/Inf values are left
    transparent (the image shows through) and ignored by the percentile.
    """
    a = _to_map(attribution, name)
    img = to_image(image)
    if a.shape != img.shape[:2]:
        raise ValueError(
            f"`{name}` must have the image's (H, W) {img.shape[:2]}, got {a.shape}: upsample it "
            "first (e.g. visjax.attribution.cam.upsample(maps, (H, W)) for class activation maps)"
        )
    finite = np.isfinite(a)
    if signed is None:
        signed = bool((a[finite] < 0).any())
    if vmax is None:
        vmax = np.percentile(np.abs(a[finite]), percentile) if finite.any() else 1.0
        vmax = vmax if vmax > 0 else 1.0
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    masked = np.ma.masked_invalid(a)
    artist = ax.imshow(
        masked,
        cmap=cmap or ("bwr" if signed else "inferno"),
        vmin=-vmax if signed else 0.0,
        vmax=vmax,
        alpha=alpha,
        interpolation="nearest",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return artist


def overlay(
    image: Any,
    attribution: Any,
    *,
    signed: bool | None = None,
    percentile: float = 99.0,
    alpha: float = 0.65,
    cmap: str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (3.2, 3.0),
) -> Figure | SubFigure:
    """One attribution heatmap over its image.

    Args:
      image: ``(H, W)`` or ``(H, W, C)``; min-max scaled for display.
      attribution: ``(H, W)`` or ``(H, W, C)`` (channels summed), on the image's ``(H, W)`` grid
        (upsample a coarser map first, e.g. :func:`visjax.attribution.cam.upsample`).
      signed: diverging colours around 0; default: when any value is negative.
      percentile: colour scale clipped at this percentile of ``|attribution|``.
      alpha: opacity of the heatmap.
      cmap: a matplotlib colour map name (default ``"bwr"`` signed, ``"inferno"`` unsigned).
      ax: draw on these axes (no colour bar) and return their figure; default: a new figure.
      title: the axes title.
      figsize: figure size in inches (new figure only).

    Returns:
      The matplotlib ``Figure`` (``ax.figure`` when ``ax`` is given; a new one with a colour
      bar otherwise).
    """
    style = dict(signed=signed, percentile=percentile, alpha=alpha, cmap=cmap, title=title)
    if ax is not None:
        _draw_overlay(ax, image, attribution, **style)
        return ax.figure
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    artist = _draw_overlay(ax, image, attribution, **style)
    fig.colorbar(artist, ax=ax, fraction=0.046, pad=0.04)
    return fig


SCALES = ("column", "shared", "each")
"""The colour-scale options of the method-comparison grids (the first is their default)."""


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"`scale` must be one of {SCALES}, got {scale!r}")
    return scale


def _scale_groups(n: int, names: Sequence[str], scale: str) -> list[list[tuple[int, str]]]:
    """The cells ``(i, name)`` that share one colour scale: all, one column each, or one each."""
    if scale == "shared":
        return [[(i, name) for name in names for i in range(n)]]
    if scale == "column":
        return [[(i, name) for i in range(n)] for name in names]
    return [[(i, name)] for name in names for i in range(n)]


_SCALE_NOTE = {"shared": "one scale for every map"}


def example_grid(
    images: Any,
    columns: Mapping[str, Any],
    draw: Callable[..., Any],
    *,
    row_labels: Sequence[str] | None,
    cell: float,
    arg: str,
    fig: Figure | SubFigure | None = None,
    scale: str | None = None,
    limits: Callable[[list[tuple[int, str, np.ndarray]]], Any] | None = None,
    colorbar_label: str = "",
) -> Figure | SubFigure:
    """One row per example ``i``: the input, then ``draw(ax, i, name, columns[name][i])``.

    The grid the method-comparison figures share; ``arg`` names ``columns`` in errors; drawn
    into ``fig`` (a Figure or SubFigure) when given, else into a new Figure.

    With ``scale`` (one of :data:`SCALES`) and ``limits``, maps share colour scales and the grid
    gets colour bars: ``limits(cells)`` returns the scale of a group of cells ``(i, name, map)``
    (every map for ``"shared"``, one column's for ``"column"``, one map for ``"each"``), each
    drawn by ``draw(ax, i, name, map, scale)``, which returns its image artist. ``"shared"``
    puts one colour bar right of the grid, ``"column"`` one under each column, ``"each"`` one
    beside every map; ``colorbar_label`` names the values on the shared and column bars.
    """

    images = np.asarray(images)
    n = images.shape[0]
    for name, a in columns.items():
        if np.shape(a)[0] != n:
            raise ValueError(f"`{arg}[{name!r}]` has {np.shape(a)[0]} rows, expected {n}")
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"`row_labels` must have {n} entries, got {len(row_labels)}")
    bars = scale is not None and limits is not None
    if bars:
        check_scale(scale)
    cols = 1 + len(columns)
    extra = {"shared": (0.8, 0.0), "column": (0.0, 0.7), "each": (0.35 * len(columns), 0.0)}
    dw, dh = extra[scale] if bars else (0.0, 0.3)
    size = (cell * cols + dw, cell * n + 0.3 + dh)
    fig = new_figure(fig, size, layout="constrained" if bars else None)
    axes = np.asarray(fig.subplots(n, cols, squeeze=False))
    arrays = {name: np.asarray(a) for name, a in columns.items()}
    lim: dict[tuple[int, str], Any] = {}
    groups = _scale_groups(n, list(arrays), scale) if bars else []
    for group in groups:
        value = limits([(i, name, arrays[name][i]) for i, name in group])
        lim.update(dict.fromkeys(group, value))
    artists: dict[tuple[int, str], Any] = {}
    for i in range(n):
        img = to_image(images[i])
        axes[i, 0].imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
        for j, name in enumerate(arrays, start=1):
            if bars:
                artists[i, name] = draw(axes[i, j], i, name, arrays[name][i], lim[i, name])
            else:
                draw(axes[i, j], i, name, arrays[name][i])
    axes[0, 0].set_title("input", fontsize=9)
    if not bars:
        tight(fig)
        return fig
    constrained(fig)
    names = list(arrays)
    if scale == "shared" and names:
        cb = fig.colorbar(artists[0, names[0]], ax=axes[:, 1:].ravel().tolist(), shrink=0.8)
        cb.set_label(f"{colorbar_label} ({_SCALE_NOTE[scale]})".strip(), fontsize=8)
        cb.ax.tick_params(labelsize=7)
    elif scale == "column":
        for j, name in enumerate(names, start=1):
            cb = fig.colorbar(
                artists[0, name], ax=axes[:, j].tolist(), location="bottom", shrink=0.9, pad=0.02
            )
            cb.set_label(f"{colorbar_label}, {name}".strip(", "), fontsize=7)
            cb.ax.tick_params(labelsize=6)
    elif scale == "each":
        for (i, name), artist in artists.items():
            cb = fig.colorbar(artist, ax=axes[i, 1 + names.index(name)], fraction=0.08, pad=0.02)
            cb.ax.tick_params(labelsize=6)
    return fig


def _attribution_scale(
    cells: list[tuple[int, str, np.ndarray]], percentile: float
) -> tuple[bool, float]:
    """``(signed, vmax)`` shared by ``cells``: signed when any value is negative, ``vmax`` the
    ``percentile`` of ``|a|`` over all their finite values (1 when that is 0)."""
    values = [_to_map(a, f"attributions[{name!r}]") for _, name, a in cells]
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    vmax = float(np.percentile(np.abs(finite), percentile)) if finite.size else 1.0
    return bool((finite < 0).any()), vmax if vmax > 0 else 1.0


def attribution_grid(
    images: Any,
    attributions: Mapping[str, Any],
    *,
    row_labels: Sequence[str] | None = None,
    percentile: float = 99.0,
    scale: str = "column",
    cell: float = 1.6,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """A grid: one row per example, the input and then one column per method, with colour bars.

    Args:
      images: ``(N, H, W, C)`` inputs.
      attributions: method name to ``(N, H, W, C)`` attributions (same N).
      row_labels: one label per row (e.g. ``"true 3 / pred 8"``).
      percentile: colour scale clip: the ``percentile`` of ``|a|`` over the maps sharing a scale
        (see :func:`overlay`).
      scale: which maps share one colour scale. ``"column"`` (default): each method's maps, with
        a colour bar under its column: examples compare within a method, and methods in
        different units (a gradient, an input-times-gradient) each stay visible. ``"shared"``:
        every map, with one colour bar labelled "one scale for every map": magnitudes compare
        across methods too (use it for methods in the same units, e.g. those that sum to the
        logit difference: integrated gradients, DeepLIFT, Shapley values). ``"each"``: every
        map its own scale and colour bar.
      cell: size of one cell in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into (a Figure without a layout engine gets
        constrained layout, for the colour bars); default: a new Figure.

    Returns:
      ``fig`` when given, else the new ``Figure``: ``N * (1 + methods)`` map axes, then the
      colour bars' axes.
    """
    images = np.asarray(images)
    check_scale(scale)
    return example_grid(
        images,
        attributions,
        lambda ax, i, name, a, sc: _draw_overlay(
            ax,
            images[i],
            a,
            signed=sc[0],
            vmax=sc[1],
            title=name if i == 0 else None,
            name=f"attributions[{name!r}]",
        ),
        row_labels=row_labels,
        cell=cell,
        arg="attributions",
        fig=fig,
        scale=scale,
        limits=lambda cells: _attribution_scale(cells, percentile),
        colorbar_label="attribution",
    )
