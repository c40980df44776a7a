"""Plots of 2-D embeddings (arrays in, e.g. from ``visjax.embed.tsne`` or ``visjax.embed.pca``).

:func:`embedding_scatter` draws the points coloured by label with a legend;
:func:`embedding_thumbnails` draws the images themselves at their points, the picture known from
t-SNE maps of image datasets (van der Maaten and Hinton 2008): a deterministic subsample of at
most ``max_images`` images, skipping any that would overlap one already drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.plot._figure import new_axes

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _points(embedding: Any) -> np.ndarray:
    e = np.asarray(embedding, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != 2 or e.shape[0] == 0:
        raise ValueError(f"`embedding` must be a non-empty (N, 2) array, got shape {e.shape}")
    return e


def embedding_scatter(
    embedding: Any,
    labels: Any = None,
    *,
    names: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure | SubFigure:
    """A 2-D embedding as a scatter plot, coloured by label with a legend.

    Points with a non-finite coordinate are left out (their count is in the legend's title when
    there are any). With up to 10 classes the colours are ``tab10``, up to 20 ``tab20``, beyond
    that evenly spaced ``turbo`` colours.

    Args:
      embedding: ``(N, 2)`` coordinates.
      labels: ``(N,)`` labels (integers or strings), or None (one colour, no legend).
      names: a name for each class, indexed by integer label (``names[label]``); default: the
        labels themselves.
      ax: the axes to draw on; default: a new Figure.
      title: the axes title.

    Returns:
      The figure drawn on.

    Example:
      >>> import numpy as np
      >>> fig = embedding_scatter(np.random.default_rng(0).normal(size=(30, 2)), np.arange(30) % 3)
    """
    e = _points(embedding)
    fig, ax = new_axes(ax, (5.0, 4.4))
    finite = np.isfinite(e).all(axis=1)
    dropped = int((~finite).sum())
    size = float(np.clip(2000.0 / np.sqrt(max(len(e), 1)), 2.0, 30.0))
    if labels is None:
        if names is not None:
            raise ValueError("`names` needs `labels`")
        ax.scatter(e[finite, 0], e[finite, 1], s=size, c="tab:blue", linewidths=0)
        if dropped:
            ax.text(
                0.01,
                0.99,
                f"{dropped} non-finite points left out",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
            )
    else:
        y = np.asarray(labels)
        if y.shape != (len(e),):
            raise ValueError(f"`labels` must have shape ({len(e)},), got {y.shape}")
        classes = np.unique(y[finite]) if finite.any() else np.unique(y)
        if names is not None:
            names = list(names)
            if not np.issubdtype(classes.dtype, np.integer):
                raise ValueError("`names` needs integer `labels` (names[label])")
            if len(classes) and (classes.min() < 0 or classes.max() >= len(names)):
                raise ValueError(
                    f"`names` has {len(names)} entries but `labels` go from {classes.min()} to "
                    f"{classes.max()}"
                )
        colours = _colours(len(classes))
        for c, colour in zip(classes, colours, strict=True):
            pick = finite & (y == c)
            label = names[int(c)] if names is not None else str(c)
            ax.scatter(e[pick, 0], e[pick, 1], s=size, color=colour, label=label, linewidths=0)
        legend_title = f"{dropped} non-finite left out" if dropped else None
        ax.legend(
            title=legend_title,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize=8,
            markerscale=max(1.0, 20.0 / size) ** 0.5,
            frameon=False,
            ncols=1 if len(classes) <= 20 else 2,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title is not None:
        ax.set_title(title)
    return fig


def _colours(n: int) -> list[Any]:
    import matplotlib  # noqa: PLC0415 - matplotlib loads with the first figure

    if n <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [cmap(i) for i in range(n)]
    if n <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [cmap(i) for i in range(n)]
    cmap = matplotlib.colormaps["turbo"]
    return [cmap(v) for v in np.linspace(0.0, 1.0, n)]


def _images(images: Any, n: int) -> np.ndarray:
    im = np.asarray(images)
    im = im / 255.0 if im.dtype == np.uint8 else im.astype(np.float64)
    if im.ndim == 4 and im.shape[-1] == 1:
        im = im[..., 0]
    if im.ndim not in (3, 4) or (im.ndim == 4 and im.shape[-1] not in (3, 4)):
        raise ValueError(
            f"`images` must be (N, H, W) greyscale or (N, H, W, 1|3|4) images, got shape {im.shape}"
        )
    if im.shape[0] != n:
        raise ValueError(f"`images` must have {n} images (one per point), got {im.shape[0]}")
    return im


def _display(image: np.ndarray) -> np.ndarray:
    """One image scaled to [0, 1] (by its own range unless already in it); NaN drawn as 0."""
    a = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a


def embedding_thumbnails(
    embedding: Any,
    images: Any,
    *,
    ax: Axes | None = None,
    max_images: int = 400,
    zoom: float | None = None,
    min_distance: float | None = None,
    seed: int = 0,
    cmap: str = "gray_r",
    title: str | None = None,
) -> Figure | SubFigure:
    """Images drawn at their points of a 2-D embedding, overlapping ones skipped.

    The points are visited in a random order fixed by ``seed`` (so the same call draws the same
    picture); an image is drawn when no image already drawn lies closer than ``min_distance``, until
    ``max_images`` are drawn. Points with a non-finite coordinate are skipped. All points are drawn
    as small grey dots underneath.

    Args:
      embedding: ``(N, 2)`` coordinates.
      images: ``(N, H, W)`` greyscale or ``(N, H, W, C)`` images (C 1, 3 or 4), one per point;
        ``uint8`` values are read as 0-255; float images are scaled to [0, 1] each by its own
        range unless already inside it.
      ax: the axes to draw on; default: a new Figure.
      max_images: the most images drawn.
      zoom: the thumbnails' scale (points per image pixel); default: 16 points per thumbnail
        side.
      min_distance: the smallest distance between two drawn images' points, in embedding units;
        default: about one thumbnail's side at the axes' size (so drawn thumbnails barely touch).
      seed: seed of the visiting order.
      cmap: colour map of greyscale images (``"gray_r"``: dark strokes on white, as the digits).
      title: the axes title.

    Returns:
      The figure drawn on.
    """
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: PLC0415

    e = _points(embedding)
    im = _images(images, len(e))
    max_images = int(max_images)
    if max_images < 1:
        raise ValueError(f"`max_images` must be a positive integer, got {max_images}")
    fig, ax = new_axes(ax, (7.0, 7.0))
    finite = np.isfinite(e).all(axis=1)
    ax.scatter(e[finite, 0], e[finite, 1], s=2, c="0.75", linewidths=0)
    if finite.any():
        extent = np.ptp(e[finite], axis=0).max()
    else:
        extent = 0.0
    if zoom is None:
        zoom = 16.0 / max(im.shape[1], im.shape[2])
    if min_distance is None:  # one thumbnail's side, in data units (the axes span the extent)
        side_pt = zoom * max(im.shape[1], im.shape[2])  # OffsetImage: 1 pixel = zoom points
        axes_pt = min(ax.bbox.width, ax.bbox.height) * 72.0 / fig.dpi
        min_distance = side_pt / max(axes_pt, 1.0) * 1.1 * extent  # the view spans 1.1 extent
    elif not np.isfinite(min_distance) or min_distance < 0:
        raise ValueError(f"`min_distance` must be a finite number >= 0, got {min_distance}")
    order = np.random.default_rng(seed).permutation(np.flatnonzero(finite))
    shown = np.empty((max_images, 2))
    count = 0
    for i in order:
        if count >= max_images:
            break
        if count and np.min(np.sum((shown[:count] - e[i]) ** 2, axis=1)) < min_distance**2:
            continue
        shown[count] = e[i]
        count += 1
        pic = _display(im[i])
        box = OffsetImage(pic, zoom=zoom, cmap=cmap if pic.ndim == 2 else None)
        ax.add_artist(AnnotationBbox(box, tuple(e[i]), frameon=False, pad=0.0))
    ax.set_xticks([])
    ax.set_yticks([])
    if finite.any():  # add_artist does not update the data limits: a square view of the points
        centre = (e[finite].min(axis=0) + e[finite].max(axis=0)) / 2
        half = 0.55 * extent if extent > 0 else 1.0
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal", adjustable="box")
    if title is not None:
        ax.set_title(title)
    return fig
