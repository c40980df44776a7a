"""Feature (superpixel) values: each masked region coloured by its value, outlined on the image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.plot.attribution import check_scale, example_grid, to_image

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


_ANNOTATE_MAX = 64


def _to_mask(mask: Any, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2 or m.shape != shape:
        raise ValueError(
            f"`{name}` must be (H, W) or (H, W, 1) matching the image's {shape}, got shape "
            f"{np.shape(mask)}"
        )
    if not (np.issubdtype(m.dtype, np.integer) or m.dtype == bool):
        raise ValueError(f"`{name}` must hold integer feature labels, got dtype {m.dtype}")
    m = m.astype(np.int64)
    if m.size and m.min() < 0:
        raise ValueError(f"`{name}` labels must be >= 0, got {int(m.min())}")
    return m


def _feature_values(values: Any, labels: np.ndarray, k: int, name: str = "values") -> np.ndarray:
    """Per-feature values ``(K,)``: given directly, or the mean of a map over each feature."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        if v.shape[0] != k:
            raise ValueError(f"`{name}` has {v.shape[0]} entries, expected K={k} (one per feature)")
        return v
    if v.ndim == 3:  # (H, W, C): channels summed, as for attribution maps
        v = v.sum(-1)
    if v.shape != labels.shape:
        raise ValueError(
            f"`{name}` must be (K,) = ({k},) or a map shaped like the image {labels.shape}, got "
            f"shape {np.shape(values)}"
        )
    count = np.bincount(labels.ravel(), minlength=k)
    total = np.bincount(labels.ravel(), weights=v.ravel(), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _symmetric_limit(values: list[np.ndarray]) -> float:
    """The largest finite ``|value|`` over ``values`` (1 when there is none or it is 0)."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    return vmax if vmax > 0 else 1.0


def _boundary_segments(labels: np.ndarray) -> np.ndarray:
    """``(S, 2, 2)`` line segments along pixel edges where neighbouring labels differ."""
    i, j = np.nonzero(labels[:, 1:] != labels[:, :-1])
    vertical = np.stack(
        [np.stack([j + 0.5, i - 0.5], -1), np.stack([j + 0.5, i + 0.5], -1)], axis=1
    )
    i, j = np.nonzero(labels[1:, :] != labels[:-1, :])
    horizontal = np.stack(
        [np.stack([j - 0.5, i + 0.5], -1), np.stack([j + 0.5, i + 0.5], -1)], axis=1
    )
    return np.concatenate([vertical, horizontal]).reshape(-1, 2, 2)


def _draw_feature_values(
    ax,
    image: Any,
    mask: Any,
    values: Any,
    *,
    n_features: int | None = None,
    cmap: str = "RdBu_r",
    alpha: float = 0.6,
    outline_color: str = "black",
    linewidth: float = 0.8,
    annotate: bool = True,
    title: str | None = None,
    names: tuple[str, str] = ("mask", "values"),
    vmax: float | None = None,
):
    """Draw feature values over ``image`` on ``ax`` (see :func:`feature_values`); the colour
    scale is ``±vmax`` (default: the largest ``|value|``).

    Returns the image artist of the coloured features (for a colour bar).
    """
    img = to_image(image)
    labels = _to_mask(mask, img.shape[:2], names[0])
    k = int(labels.max()) + 1 if n_features is None else n_features
    v = _feature_values(values, labels, k, names[1])
    if vmax is None:
        vmax = _symmetric_limit([v])
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    artist = ax.imshow(
        np.ma.masked_invalid(v[labels]),
        cmap=cmap,
        vmin=-vmax,
        vmax=vmax,
        alpha=alpha,
        interpolation="nearest",
    )
    from matplotlib.collections import LineCollection  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    ax.add_collection(
        LineCollection(_boundary_segments(labels), colors=outline_color, linewidths=linewidth)
    )
    if annotate and k <= _ANNOTATE_MAX:
        rows, cols = np.indices(labels.shape)
        count = np.bincount(labels.ravel(), minlength=k)
        cy = np.bincount(labels.ravel(), weights=rows.ravel(), minlength=k)
        cx = np.bincount(labels.ravel(), weights=cols.ravel(), minlength=k)
        for f in np.nonzero(count)[0]:
            ax.text(
                cx[f] / count[f],
                cy[f] / count[f],
                f"{v[f]:.2g}",
                ha="center",
                va="center",
                fontsize=7,
                color=outline_color,
            )
    ax.set_xlim(-0.5, labels.shape[1] - 0.5)
    ax.set_ylim(labels.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return artist


def feature_values(
    image: Any,
    mask: Any,
    values: Any,
    *,
    ax: Axes | None = None,
    cmap: str = "RdBu_r",
    alpha: float = 0.6,
    outline_color: str = "black",
    linewidth: float = 0.8,
    annotate: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] = (3.4, 3.0),
) -> Figure | SubFigure:
    """Perturbation features (e.g. superpixels) over the image, each coloured by its value.

    The picture of occlusion, feature ablation, Shapley sampling, KernelSHAP or LIME on a feature
    mask: every feature is filled with its value on a diverging colour scale symmetric around 0
    (``±max|value|``), the features' boundaries (pixel edges where neighbouring labels differ) are
    drawn as lines, and, when there are at most 64 features and ``annotate`` is set, each value is
    written at its feature's centroid (which may fall outside a non-convex feature). Features
    whose value is NaN/Inf, or a label with no pixels, are left uncoloured (the image shows).

    Args:
      image: ``(H, W)`` or ``(H, W, C)``; min-max scaled for display.
      mask: ``(H, W)`` or ``(H, W, 1)`` integer labels ``0..K-1`` (``K`` = largest label + 1).
      values: either ``(K,)``, one value per feature, or an attribution map shaped like the image
        (``(H, W)`` or ``(H, W, C)``, channels summed) from which each feature's value is read as
        the mean over its pixels (a perturbation method's map is constant on each feature, so the
        mean is that constant).
      ax: draw on these axes (no colour bar) and return their figure; default: a new figure.
      cmap: a diverging matplotlib colour map name.
      alpha: opacity of the feature colours.
      outline_color: colour of the boundaries and the value text.
      linewidth: width of the boundary lines.
      annotate: write each feature's value at its centroid (only when ``K <= 64``).
      title: the axes title.
      figsize: size of a new figure in inches.

    Returns:
      A matplotlib ``Figure``, with a colour bar when it is a new one.

    Raises:
      ValueError: a mask whose shape does not match the image, non-integer or negative labels, or
        ``values`` that are neither ``(K,)`` nor shaped like the image.
    """
    style = dict(
        cmap=cmap,
        alpha=alpha,
        outline_color=outline_color,
        linewidth=linewidth,
        annotate=annotate,
        title=title,
    )
    if ax is not None:
        _draw_feature_values(ax, image, mask, values, **style)
        return ax.figure
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    artist = _draw_feature_values(ax, image, mask, values, **style)
    fig.colorbar(artist, ax=ax, fraction=0.046, pad=0.04, label="feature value")
    fig.tight_layout()
    return fig


def feature_values_grid(
    images: Any,
    masks: Any,
    values_by_method: Mapping[str, Any],
    *,
    row_labels: Sequence[str] | None = None,
    cmap: str = "RdBu_r",
    outline_color: str = "black",
    annotate: bool = False,
    scale: str = "column",
    cell: float = 1.6,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """A grid: one row per example, the input and then one column per method's feature values,
    with colour bars.

    Colour scales are symmetric around 0 (``±`` the largest ``|value|`` of the maps that share
    one); see :func:`feature_values`.

    Args:
      images: ``(N, H, W)`` or ``(N, H, W, C)`` inputs.
      masks: one mask shared by all examples, ``(H, W)`` or ``(H, W, 1)``, or one per example,
        ``(N, H, W)`` or ``(N, H, W, 1)``; integer labels ``0..K-1`` with ``K`` the largest label
        over all masks + 1.
      values_by_method: method name to ``(N, K)`` feature values or ``(N, H, W[, C])`` maps (each
        feature's value read as its mean).
      row_labels: one label per row.
      cmap: a diverging matplotlib colour map name.
      outline_color: colour of the boundaries (and value text).
      annotate: write values at the centroids (off by default: cells are small).
      scale: which maps share one colour scale: ``"column"`` (default) each method's, a colour
        bar under its column; ``"shared"`` every map, one colour bar labelled "one scale for
        every map" (occlusion, ablation, Shapley values and KernelSHAP all measure changes of
        the class score, so they compare on it); ``"each"`` every map its own scale and bar.
      cell: size of one cell in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into (a Figure without a layout engine gets
        constrained layout, for the colour bars); default: a new Figure.

    Returns:
      ``fig`` when given, else the new ``Figure``: ``N * (1 + methods)`` map axes, then the
      colour bars' axes.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"`images` must be (N, H, W) or (N, H, W, C), got shape {images.shape}")
    n, hw = images.shape[0], images.shape[1:3]
    m = np.asarray(masks)
    if m.ndim >= 3 and m.shape[-1] == 1 and m.shape[-3:-1] == hw:
        m = m[..., 0]
    if m.ndim == 2:
        m = np.broadcast_to(m, (n, *m.shape))
    if m.ndim != 3 or m.shape != (n, *hw):
        raise ValueError(
            f"`masks` must be (H, W) = {hw} shared or (N, H, W) = {(n, *hw)} per example, got "
            f"shape {np.shape(masks)}"
        )
    if not (np.issubdtype(m.dtype, np.integer) or m.dtype == bool):
        raise ValueError(f"`masks` must hold integer feature labels, got dtype {m.dtype}")
    k = int(m.max()) + 1
    check_scale(scale)

    def limits(cells):
        return _symmetric_limit(
            [_feature_values(v, m[i], k, f"values_by_method[{name!r}]") for i, name, v in cells]
        )

    return example_grid(
        images,
        values_by_method,
        lambda ax, i, name, v, vmax: _draw_feature_values(
            ax,
            images[i],
            m[i],
            v,
            n_features=k,
            cmap=cmap,
            outline_color=outline_color,
            annotate=annotate,
            title=name if i == 0 else None,
            names=("masks", f"values_by_method[{name!r}]"),
            vmax=vmax,
        ),
        row_labels=row_labels,
        cell=cell,
        arg="values_by_method",
        fig=fig,
        scale=scale,
        limits=limits,
        colorbar_label="feature value",
    )
