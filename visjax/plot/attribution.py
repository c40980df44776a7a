"""Attribution maps: a heatmap over the image, and a grid comparing methods across examples."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from visjax.plot._figure import new_figure, tight


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
):
    """Draw an attribution heatmap over a (grey-scale) image on ``ax``; returns the image artist.

    Channels are summed. Signed maps (``signed=None``: when any value is negative) use a
    diverging colour map symmetric around zero, clipped at the ``percentile`` of ``|a|``;
    unsigned maps run from 0 to that percentile. NaN/Inf values are left transparent (the image
    shows through) and ignored by the percentile.
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
    ax=None,
    title: str | None = None,
    figsize: tuple[float, float] = (3.2, 3.0),
):
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


def example_grid(
    images: Any,
    columns: Mapping[str, Any],
    draw: Callable[[Any, int, str, np.ndarray], Any],
    *,
    row_labels: Sequence[str] | None,
    cell: float,
    arg: str,
    fig=None,
):
    """One row per example ``i``: the input, then ``draw(ax, i, name, columns[name][i])``.

    The grid the method-comparison figures share; ``arg`` names ``columns`` in errors; drawn
    into ``fig`` (a Figure or SubFigure) when given, else into a new Figure.
    """

    images = np.asarray(images)
    n = images.shape[0]
    for name, a in columns.items():
        if np.shape(a)[0] != n:
            raise ValueError(f"`{arg}[{name!r}]` has {np.shape(a)[0]} rows, expected {n}")
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"`row_labels` must have {n} entries, got {len(row_labels)}")
    cols = 1 + len(columns)
    fig = new_figure(fig, (cell * cols, cell * n + 0.3))
    axes = np.asarray(fig.subplots(n, cols, squeeze=False))
    for i in range(n):
        img = to_image(images[i])
        axes[i, 0].imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
        for j, (name, a) in enumerate(columns.items(), start=1):
            draw(axes[i, j], i, name, np.asarray(a)[i])
    axes[0, 0].set_title("input", fontsize=9)
    tight(fig)
    return fig


def attribution_grid(
    images: Any,
    attributions: Mapping[str, Any],
    *,
    row_labels: Sequence[str] | None = None,
    percentile: float = 99.0,
    cell: float = 1.6,
    fig=None,
):
    """A grid: one row per example, the input and then one column per method.

    Each map is scaled on its own (its ``percentile`` of ``|a|``), since methods differ in units.

    Args:
      images: ``(N, H, W, C)`` inputs.
      attributions: method name to ``(N, H, W, C)`` attributions (same N).
      row_labels: one label per row (e.g. ``"true 3 / pred 8"``).
      percentile: colour scale clip (see :func:`overlay`).
      cell: size of one cell in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      ``fig`` when given, else the new ``Figure``.
    """
    images = np.asarray(images)
    return example_grid(
        images,
        attributions,
        lambda ax, i, name, a: _draw_overlay(
            ax,
            images[i],
            a,
            percentile=percentile,
            title=name if i == 0 else None,
            name=f"attributions[{name!r}]",
        ),
        row_labels=row_labels,
        cell=cell,
        arg="attributions",
        fig=fig,
    )
