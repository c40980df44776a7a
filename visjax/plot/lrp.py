"""Plots of LRP results (arrays in, e.g. from ``visjax.attribution.lrp``).

:func:`relevance_heatmaps` draws signed relevance maps of several composites side by side, one
row per example; :func:`conservation_curve` draws the summed relevance per layer, from the output
back to the input (``lrp_layers``' sums), one line per composite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.plot._figure import constrained, new_axes, new_figure

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _maps(name: str, r: Any) -> np.ndarray:
    a = np.asarray(r, dtype=np.float64)
    if a.ndim == 4:  # (N, H, W, C): relevance summed over channels
        a = a.sum(-1)
    if a.ndim != 3 or a.shape[0] == 0:
        raise ValueError(
            f"`relevances[{name!r}]` must be (N, H, W) or (N, H, W, C) with N > 0, got {a.shape}"
        )
    return a


def relevance_heatmaps(
    images: Any,
    relevances: Mapping[str, Any],
    *,
    titles: Sequence[str] | None = None,
    cmap: str = "bwr",
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Signed relevance maps of several composites side by side: a row per example.

    The first column shows the image, then one column per entry of ``relevances`` (in its
    order). Each map is drawn on its own symmetric scale ``[-max|R|, max|R|]`` (red positive,
    blue negative with the default ``"bwr"``), so maps of different composites are comparable in
    shape, not in magnitude. Non-finite values are drawn as the colour map's "bad" colour
    (transparent: the background).

    Args:
      images: ``(N, H, W)`` or ``(N, H, W, C)`` (C 1 or 3), values in ``[0, 1]``.
      relevances: composite name to relevance ``(N, H, W[, C])`` (channels summed).
      titles: a title per row (e.g. the target class), or None.
      cmap: a diverging matplotlib colour map.
      fig: the Figure or SubFigure to draw on; default: a new Figure.

    Returns:
      The figure drawn on.

    Raises:
      ValueError: no relevances, or shapes that do not match the images.

    Example:
      >>> import numpy as np
      >>> x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1))
      >>> fig = relevance_heatmaps(x, {"epsilon_plus": x - 0.5, "flat": 0.5 - x})
    """
    if not relevances:
        raise ValueError("`relevances` must name at least one composite")
    img = np.asarray(images, dtype=np.float64)
    if img.ndim == 4 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (3, 4) or img.shape[0] == 0:
        raise ValueError(f"`images` must be (N, H, W) or (N, H, W, C), got shape {img.shape}")
    maps = {name: _maps(name, r) for name, r in relevances.items()}
    for name, m in maps.items():
        if m.shape != img.shape[:3]:
            raise ValueError(
                f"`relevances[{name!r}]` has shape {m.shape}, the images {img.shape[:3]}"
            )
    n, cols = img.shape[0], len(maps) + 1
    if titles is not None and len(titles) != n:
        raise ValueError(f"`titles` must have {n} entries (one per image), got {len(titles)}")
    fig = new_figure(fig, (1.6 * cols, 1.6 * n + 0.3), layout="constrained")
    axes = np.asarray(fig.subplots(n, cols, squeeze=False))
    for i in range(n):
        axes[i, 0].imshow(np.clip(img[i], 0, 1), cmap="gray" if img.ndim == 3 else None)
        axes[i, 0].set_ylabel(titles[i] if titles is not None else "", fontsize=8)
        for j, (name, m) in enumerate(maps.items(), start=1):
            finite = m[i][np.isfinite(m[i])]
            v = float(np.abs(finite).max()) if finite.size else 1.0
            v = v if v > 0 else 1.0
            axes[i, j].imshow(np.ma.masked_invalid(m[i]), cmap=cmap, vmin=-v, vmax=v)
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    constrained(fig)
    return fig


def conservation_curve(
    sums: Mapping[str, Any],
    *,
    layers: Sequence[str],
    output: float | None = 1.0,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure | SubFigure:
    """The summed relevance per layer, one line per composite: LRP's conservation at a glance.

    Args:
      sums: composite name to the relevance summed per layer, ``(L,)`` (or ``(L, N)``: the mean
        over examples is drawn, with the range as a band), in the order of ``layers``.
      layers: the ``L`` layer names (the x axis; ``lrp_layers``' keys, output layer last or
        first as given).
      output: the output relevance, drawn as a dashed line (None: no line).
      ax: the axes to draw on; default: a new Figure.
      title: the axes title.

    Returns:
      The figure drawn on. Non-finite sums are left out of the lines (gaps).

    Raises:
      ValueError: no sums, or a length that does not match ``layers``.

    Example:
      >>> fig = conservation_curve({"eps": [1.0, 0.9, 0.8]}, layers=["fc", "conv2", "input"])
    """
    if not sums:
        raise ValueError("`sums` must name at least one composite")
    layers = list(layers)
    fig, ax = new_axes(ax, (max(4.0, 0.5 * len(layers) + 2.0), 3.4))
    xs = np.arange(len(layers))
    for name, s in sums.items():
        a = np.asarray(s, dtype=np.float64)
        if a.ndim not in (1, 2) or a.shape[0] != len(layers):
            raise ValueError(
                f"`sums[{name!r}]` must be (L,) or (L, N) with L = {len(layers)} layers, got "
                f"{a.shape}"
            )
        if a.ndim == 2:
            ax.fill_between(xs, a.min(1), a.max(1), alpha=0.15)
            a = a.mean(1)
        ax.plot(xs, np.where(np.isfinite(a), a, np.nan), marker="o", label=name)
    if output is not None:
        ax.axhline(output, color="0.4", linestyle="--", linewidth=1, label="output relevance")
    ax.set_xticks(xs, layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("sum of relevance")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    constrained(fig)
    return fig
