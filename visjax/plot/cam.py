"""Class activation maps: a coarse map upsampled over its image, and a grid comparing methods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.plot.attribution import check_scale, example_grid, to_image

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _axis_weights(n_in: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_in)`` linear-interpolation matrix with half-pixel centres, edges clamped."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    w = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(w, (rows, lo), 1.0 - frac)
    np.add.at(w, (rows, hi), frac)
    return w


def _upsample(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``shape`` (half-pixel centres, as ``jax.image.resize``)."""
    if cam.shape == shape:
        return cam
    return _axis_weights(cam.shape[0], shape[0]) @ cam @ _axis_weights(cam.shape[1], shape[1]).T


def _to_cam(cam: Any, name: str = "cam") -> np.ndarray:
    c = np.asarray(cam, dtype=np.float64)
    if c.ndim == 3 and c.shape[-1] == 1:
        c = c[..., 0]
    if c.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D map (H', W') or (H', W', 1), got shape {c.shape}")
    return c


def _scaled(cam: np.ndarray) -> np.ndarray:
    """Min-max scale the finite values to [0, 1]; a constant map becomes zeros; NaN/Inf masked."""
    finite = np.isfinite(cam)
    if not finite.any():
        return np.ma.masked_all(cam.shape)
    lo, hi = cam[finite].min(), cam[finite].max()
    out = (cam - lo) / (hi - lo) if hi > lo else np.zeros_like(cam)
    return np.ma.masked_where(~finite, out)


def _draw_cam(
    ax,
    image: Any,
    cam: Any,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str | None = None,
    name: str = "cam",
    limits: tuple[float, float] | None = None,
):
    """Draw a class activation map over ``image`` on ``ax``; returns the map's image artist.

    The map is upsampled to the image's height and width (bilinear, half-pixel centres, edges
    clamped; an input-sized map is used as is), then min-max scaled to [0, 1], or, with
    ``limits``, drawn in its own units on the colour scale ``limits``. NaN/Inf cells are
    transparent and spread to the pixels they touch in the upsampling.
    """
    img = to_image(image)
    if img.ndim == 3 and img.shape[-1] != 3:
        raise ValueError(f"`image` must have 1 or 3 channels, got shape {np.shape(image)}")
    c = _to_cam(cam, name)
    if c.shape[0] > img.shape[0] or c.shape[1] > img.shape[1]:
        raise ValueError(
            f"`{name}` of shape {c.shape} is larger than the image ({img.shape[0]}, {img.shape[1]})"
        )
    up = _upsample(c, img.shape[:2])
    lo, hi = (0.0, 1.0) if limits is None else limits
    up = _scaled(up) if limits is None else np.ma.masked_invalid(up)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    artist = ax.imshow(up, cmap=cmap, vmin=lo, vmax=hi, alpha=alpha, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return artist


def cam_overlay(
    image: Any,
    cam: Any,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (3.2, 3.0),
) -> Figure | SubFigure:
    """A class activation map upsampled over its image, with a colour bar.

    The map (e.g. Grad-CAM's ``(H', W')`` at a convolutional layer) is resized to the image by
    bilinear interpolation with half-pixel centres (the convention of ``jax.image.resize`` and
    ``cv2.resize``; pytorch-grad-cam uses ``cv2.resize``), then min-max scaled to [0, 1] for
    display: colours show where the map is high relative to itself, not its units. A constant map
    draws as zeros; NaN/Inf are transparent.

    Args:
      image: ``(H, W)`` or ``(H, W, C)`` with ``C`` in {1, 3}; min-max scaled for display.
      cam: ``(H', W')`` (or ``(H', W', 1)``) with ``H' <= H`` and ``W' <= W``; an ``(H, W)`` map
        is drawn without resizing.
      alpha: opacity of the map.
      cmap: a matplotlib colour map name.
      ax: draw on these axes (no colour bar) and return their figure; default: a new figure.
      title: the axes title.
      figsize: size of a new figure in inches.

    Returns:
      A matplotlib ``Figure``.
    """
    if ax is not None:
        _draw_cam(ax, image, cam, alpha=alpha, cmap=cmap, title=title)
        return ax.figure
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    artist = _draw_cam(ax, image, cam, alpha=alpha, cmap=cmap, title=title)
    fig.colorbar(artist, ax=ax, fraction=0.046, pad=0.04, label="scaled map")
    fig.tight_layout()
    return fig


def cam_grid(
    images: Any,
    cams: Mapping[str, Any],
    *,
    row_labels: Sequence[str] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    scale: str = "column",
    cell: float = 1.6,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """A grid: one row per example, the input and then one column per CAM method, with colour
    bars.

    Each map is upsampled as in :func:`cam_overlay` and drawn in its own units (not min-max
    scaled) on a colour scale from the smallest to the largest finite value of the maps that
    share it.

    Args:
      images: ``(N, H, W)`` or ``(N, H, W, C)`` inputs.
      cams: method name to ``(N, H', W')`` maps (same ``N``).
      row_labels: one label per row (e.g. ``"true 3 / pred 8"``).
      alpha: opacity of the maps.
      cmap: a matplotlib colour map name.
      scale: which maps share one colour scale: ``"column"`` (default) each method's maps, a
        colour bar under its column (methods differ in units: Grad-CAM's gradient-weighted
        activations, Score-CAM's softmax-weighted ones); ``"shared"`` every map, one colour bar
        labelled "one scale for every map", so magnitudes compare across methods; ``"each"``
        every map its own scale and colour bar.
      cell: size of one cell in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into (a Figure without a layout engine gets
        constrained layout, for the colour bars); default: a new Figure.

    Returns:
      ``fig`` when given, else the new ``Figure``: ``N * (1 + methods)`` map axes, then the
      colour bars' axes.
    """
    images = np.asarray(images)
    check_scale(scale)
    if images.ndim not in (3, 4):
        raise ValueError(f"`images` must be (N, H, W) or (N, H, W, C), got shape {images.shape}")
    n = images.shape[0]
    arrays = {}
    for name, c in cams.items():
        c = np.asarray(c)
        if c.ndim == 4 and c.shape[-1] == 1:
            c = c[..., 0]
        if c.ndim != 3:
            raise ValueError(f"`cams[{name!r}]` must be (N, H', W'), got shape {c.shape}")
        if c.shape[0] != n:
            raise ValueError(f"`cams[{name!r}]` has {c.shape[0]} rows, expected {n}")
        arrays[name] = c
    return example_grid(
        images,
        arrays,
        lambda ax, i, name, c, lim: _draw_cam(
            ax,
            images[i],
            c,
            alpha=alpha,
            cmap=cmap,
            title=name if i == 0 else None,
            name=f"cams[{name!r}]",
            limits=lim,
        ),
        row_labels=row_labels,
        cell=cell,
        arg="cams",
        fig=fig,
        scale=scale,
        limits=_cam_limits,
        colorbar_label="map value",
    )


def _cam_limits(cells: list[tuple[int, str, np.ndarray]]) -> tuple[float, float]:
    """The finite min and max over ``cells``' maps (a band around a constant value)."""
    finite = np.concatenate([np.asarray(c, np.float64)[np.isfinite(c)].ravel() for *_, c in cells])
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)
