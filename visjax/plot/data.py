"""Views of the input data: a sample grid per class, the class balance, per-channel pixel
statistics. (Training curves, train against held-out loss and accuracy, are
:func:`visjax.plot.training_curves`.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.plot._figure import new_axes, new_figure, tight
from visjax.plot.attribution import to_image

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _labels(labels: Any, name: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.size == 0 and y.dtype.kind == "f":
        y = y.astype(np.int64)
    if y.ndim != 1 or y.dtype == bool or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        raise ValueError(f"`{name}` must be 1-D class indices >= 0, got {y.dtype} {y.shape}")
    return y


def _n_classes(ys: Sequence[np.ndarray], n_classes: int | None, class_names) -> int:
    if class_names is not None:
        n = len(class_names)
    elif n_classes is not None:
        n = n_classes
    else:
        n = max((int(y.max()) + 1 for y in ys if y.size), default=0)
    if any(y.size and y.max() >= n for y in ys):
        raise ValueError(f"labels must be < {n} (the number of classes)")
    return n


def class_samples(
    images: Any,
    labels: Any,
    *,
    n_per_class: int = 8,
    class_names: Sequence[str] | None = None,
    cell: float = 0.9,
    fig: Figure | SubFigure | None = None,
    title: str = "samples per class",
) -> Figure | SubFigure:
    """A grid with one row per class: its first ``n_per_class`` examples in data order.

    Rows are labelled with the class name and its number of examples; a class with fewer
    examples leaves its cells empty. Each image is min-max scaled on its own (grey for one
    channel, RGB for three); NaN pixels are drawn as matplotlib draws NaN (blank).

    Args:
      images: ``(N, H, W, C)`` or ``(N, H, W)`` inputs.
      labels: ``(N,)`` class indices.
      n_per_class: columns of the grid.
      class_names: names indexed by class (sets the number of rows); default the indices seen.
      cell: size of one panel in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.
      title: the figure title.

    Returns:
      ``fig`` when given, else the new ``Figure``, with ``classes x n_per_class`` axes.

    Example:
      >>> import numpy as np
      >>> fig = class_samples(np.zeros((6, 4, 4)), [0, 1, 2, 0, 1, 2], n_per_class=2)
      >>> len(fig.axes)
      6
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim not in (3, 4):
        raise ValueError(f"`images` must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    y = _labels(labels, "labels")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"`labels` must have one entry per image ({x.shape[0]}), got {y.size}")
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"`n_per_class` must be an int >= 1, got {n_per_class!r}")
    n = _n_classes([y], None, class_names)
    if n == 0:
        raise ValueError("`labels` must hold at least one example")
    names = [str(c) for c in class_names] if class_names is not None else list(map(str, range(n)))
    fig = new_figure(fig, (cell * n_per_class + 0.8, cell * n + 0.4))
    axes = np.asarray(fig.subplots(n, n_per_class, squeeze=False))
    for c in range(n):
        idx = np.flatnonzero(y == c)
        for j, ax in enumerate(axes[c]):
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < idx.size:
                img = to_image(x[idx[j]])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        axes[c, 0].set_ylabel(
            f"{names[c]} ({idx.size})", fontsize=8, rotation=0, ha="right", va="center"
        )
    fig.suptitle(title)
    tight(fig)
    return fig


def class_balance(
    labels: Any,
    *,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str = "class balance",
    figsize: tuple[float, float] = (5.0, 3.0),
) -> Figure | SubFigure:
    """Examples per class as bars annotated with their counts; several splits side by side.

    Args:
      labels: ``(N,)`` class indices, or a mapping of split name to them
        (``{"train": y_train, "test": y_test}``).
      n_classes: the number of classes; default from ``class_names`` or the largest label + 1.
      class_names: tick labels indexed by class.
      ax: draw on these axes and return their figure; default: a new figure.
      title: the axes title.
      figsize: figure size in inches (new figure only).

    Returns:
      The matplotlib ``Figure``; one bar container per split.

    Example:
      >>> fig = class_balance({"train": [0, 0, 1], "test": [1]})
      >>> [t.get_text() for t in fig.axes[0].texts]
      ['2', '1', '0', '1']
    """
    splits = dict(labels) if isinstance(labels, Mapping) else {"": labels}
    ys = {k: _labels(v, "labels" if k == "" else f"labels[{k!r}]") for k, v in splits.items()}
    n = _n_classes(list(ys.values()), n_classes, class_names)
    names = [str(c) for c in class_names] if class_names is not None else list(map(str, range(n)))
    fig, ax = new_axes(ax, figsize)
    pos = np.arange(n)
    width = 0.8 / max(len(ys), 1)
    for i, (split, y) in enumerate(ys.items()):
        counts = np.bincount(y, minlength=n)
        bars = ax.bar(pos + (i - (len(ys) - 1) / 2) * width, counts, width, label=split or None)
        ax.bar_label(bars, [str(int(c)) for c in counts], fontsize=7)
    ax.set_xticks(pos, names)
    ax.set_xlabel("class")
    ax.set_ylabel("examples")
    ax.set_title(title)
    if len(ys) > 1:
        ax.legend(fontsize=7)
    return fig


def pixel_statistics(
    images: Any,
    *,
    channel_names: Sequence[str] | None = None,
    bins: int = 50,
    fig: Figure | SubFigure | None = None,
    title: str = "pixel statistics",
    figsize: tuple[float, float] = (8.0, 3.0),
) -> Figure | SubFigure:
    """Per-channel mean and standard deviation (bars with ±std whiskers, annotated) and the
    per-channel histogram of pixel values (density, one step line per channel).

    NaN/Inf pixels are left out of the statistics and the histograms.

    Args:
      images: ``(N, H, W, C)`` or ``(N, H, W)`` (one channel) inputs.
      channel_names: one name per channel; default ``"R", "G", "B"`` for three channels, else
        the indices.
      bins: histogram bins over the finite range of all pixels.
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.
      title: the figure title.
      figsize: figure size in inches (new figure only).

    Returns:
      ``fig`` when given, else the new ``Figure``, with two axes (statistics, histograms).

    Example:
      >>> import numpy as np
      >>> fig = pixel_statistics(np.random.default_rng(0).random((4, 5, 5, 3)))
      >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
      ['R', 'G', 'B']
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"`images` must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"`bins` must be an int >= 1, got {bins!r}")
    c = x.shape[-1]
    if channel_names is None:
        channel_names = ["R", "G", "B"] if c == 3 else [str(i) for i in range(c)]
    if len(channel_names) != c:
        raise ValueError(f"`channel_names` must have {c} entries, got {len(channel_names)}")
    pixels = [v[np.isfinite(v)] for v in x.reshape(-1, c).T]
    mean = np.array([v.mean() if v.size else np.nan for v in pixels])
    std = np.array([v.std() if v.size else np.nan for v in pixels])
    fig = new_figure(fig, figsize)
    ax_stats, ax_hist = fig.subplots(1, 2)
    pos = np.arange(c)
    ax_stats.bar(pos, mean, yerr=std, capsize=4, color="tab:blue")
    for i, (m, sd) in enumerate(zip(mean, std, strict=True)):
        if np.isfinite(m):
            ax_stats.text(i, m + sd, f"{m:.3g}\u00b1{sd:.2g}", ha="center", va="bottom", fontsize=7)
    ax_stats.set_xticks(pos, list(map(str, channel_names)))
    ax_stats.set_xlabel("channel")
    ax_stats.set_ylabel("mean \u00b1 std")
    finite = np.concatenate(pixels) if pixels else np.zeros(0)
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        for name, v in zip(channel_names, pixels, strict=True):
            if v.size:
                ax_hist.hist(v, bins=edges, density=True, histtype="step", label=str(name))
        if c > 1:
            ax_hist.legend(fontsize=7)
    ax_hist.set_xlabel("pixel value")
    ax_hist.set_ylabel("density")
    fig.suptitle(title)
    tight(fig)
    return fig
