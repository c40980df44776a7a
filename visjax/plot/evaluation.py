"""Evaluation figures: confusion matrix, ROC and precision-recall curves, reliability diagram,
per-class accuracy, and the most confidently misclassified examples with their attribution.

The numbers come from :mod:`visjax.evaluation` (or anything shaped like its results); these
functions only draw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.plot._figure import new_axes, new_figure, tight
from visjax.plot.attribution import overlay, to_image

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _names(class_names: Sequence[str] | None, n: int) -> list[str]:
    if class_names is None:
        return [str(k) for k in range(n)]
    if len(class_names) != n:
        raise ValueError(f"`class_names` must have {n} entries, got {len(class_names)}")
    return [str(c) for c in class_names]


def confusion_matrix(
    matrix: Any,
    *,
    class_names: Sequence[str] | None = None,
    annotate: bool = True,
    cmap: str = "Blues",
    ax: Axes | None = None,
    title: str = "confusion matrix",
    figsize: tuple[float, float] = (4.8, 4.0),
) -> Figure | SubFigure:
    """A confusion matrix as an image, each cell annotated with its value, with a colour bar.

    Rows are the true classes, columns the predicted ones. Integer matrices (counts) are
    annotated as integers, others (normalised) with two decimals; the annotation is white on dark
    cells. NaN/Inf cells are left blank and unannotated.

    Args:
      matrix: ``(C, C)`` counts or rates (e.g. :func:`visjax.evaluation.confusion_matrix`).
      class_names: ``C`` tick labels; default the class indices.
      annotate: write each cell's value in it.
      cmap: a matplotlib colour map name.
      ax: draw on these axes (the colour bar takes space beside them) and return their figure;
        default: a new figure.
      title: the axes title.
      figsize: figure size in inches (new figure only).

    Returns:
      The matplotlib ``Figure`` with the matrix axes and its colour bar.

    Example:
      >>> fig = confusion_matrix([[5, 1], [2, 7]])
      >>> [t.get_text() for t in fig.axes[0].texts]
      ['5', '1', '2', '7']
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"`matrix` must be square (C, C), got shape {m.shape}")
    names = _names(class_names, m.shape[0])
    counts = m.dtype.kind in "iub"
    values = m.astype(np.float64)
    fig, ax = new_axes(ax, figsize)
    shown = np.ma.masked_invalid(values)
    artist = ax.imshow(shown, cmap=cmap, interpolation="nearest", vmin=0.0)
    fig.colorbar(artist, ax=ax, fraction=0.046, pad=0.04, label="count" if counts else "rate")
    if annotate:
        finite = values[np.isfinite(values)]
        mid = (finite.max() if finite.size else 0.0) / 2
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                text = f"{int(v)}" if counts else f"{v:.2f}"
                colour = "white" if v > mid else "black"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
    ticks = np.arange(m.shape[0])
    ax.set_xticks(ticks, names, rotation=90 if max(map(len, names), default=0) > 3 else 0)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return fig


def _draw_curves(ax, curves: Any, names: list[str] | None, metric: str, step: bool) -> None:
    per_class = list(curves.per_class)
    names = _names(names, len(per_class))
    style = {"drawstyle": "steps-post"} if step else {}
    for name, c in zip(names, per_class, strict=True):
        if np.size(c.x):
            ax.plot(c.x, c.y, lw=1.0, alpha=0.7, label=f"{name} ({metric} {c.area:.3f})", **style)
    for label, c, ls in (("micro", curves.micro, "--"), ("macro", curves.macro, ":")):
        if np.size(c.x):
            ax.plot(c.x, c.y, ls, color="black", lw=2.0, label=f"{label} ({metric} {c.area:.3f})")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right" if metric == "AUC" else "lower left")


def roc_curves(
    curves: Any,
    *,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str = "ROC curves (one-vs-rest)",
    figsize: tuple[float, float] = (4.6, 4.2),
) -> Figure | SubFigure:
    """One-vs-rest ROC curves per class, with the micro (dashed) and macro (dotted) averages
    and the chance diagonal; each legend entry gives the curve's AUC.

    Args:
      curves: per-class, micro and macro curves with ``x`` (false-positive rate), ``y``
        (true-positive rate) and ``area`` (:func:`visjax.evaluation.roc_curves`). Empty curves
        (classes absent from the labels) are not drawn.
      class_names: one legend name per class; default the class indices.
      ax: draw on these axes and return their figure; default: a new figure.
      title: the axes title.
      figsize: figure size in inches (new figure only).

    Returns:
      The matplotlib ``Figure``.
    """
    fig, ax = new_axes(ax, figsize)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, label="chance")
    _draw_curves(ax, curves, class_names, "AUC", step=False)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title)
    return fig


def precision_recall_curves(
    curves: Any,
    *,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str = "precision-recall (one-vs-rest)",
    figsize: tuple[float, float] = (4.6, 4.2),
) -> Figure | SubFigure:
    """One-vs-rest precision-recall curves per class (steps, as average precision counts them),
    with the micro (dashed) and macro (dotted) averages; each legend entry gives the AP.

    Args:
      curves: per-class, micro and macro curves with ``x`` (recall), ``y`` (precision) and
        ``area`` (:func:`visjax.evaluation.precision_recall_curves`). Empty curves are not drawn.
      class_names: one legend name per class; default the class indices.
      ax: draw on these axes and return their figure; default: a new figure.
      title: the axes title.
      figsize: figure size in inches (new figure only).

    Returns:
      The matplotlib ``Figure``.
    """
    fig, ax = new_axes(ax, figsize)
    _draw_curves(ax, curves, class_names, "AP", step=True)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    return fig


def reliability_diagram(
    bins: Any,
    *,
    ece: float | None = None,
    fig: Figure | SubFigure | None = None,
    title: str = "reliability diagram",
    figsize: tuple[float, float] = (4.2, 5.0),
) -> Figure | SubFigure:
    """Accuracy against confidence per bin, above the number of examples per bin.

    Top: each bin's accuracy as a bar over the bin, the gap to its mean confidence in red, and
    the diagonal of perfect calibration (bars below it: over-confident). Bottom: the examples per
    bin (the ECE weights). Empty bins (NaN accuracy) have no bar.

    Args:
      bins: ``edges`` ``(B + 1,)``, ``accuracy``, ``confidence`` and ``count`` ``(B,)``
        (:func:`visjax.evaluation.calibration_bins`).
      ece: the expected calibration error, shown in the title when given.
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.
      title: the figure title.
      figsize: figure size in inches (new figure only).

    Returns:
      ``fig`` when given, else the new ``Figure``, with two axes.
    """
    edges = np.asarray(bins.edges, dtype=np.float64)
    acc = np.asarray(bins.accuracy, dtype=np.float64)
    conf = np.asarray(bins.confidence, dtype=np.float64)
    count = np.asarray(bins.count)
    if edges.ndim != 1 or not (acc.shape == conf.shape == count.shape == (edges.size - 1,)):
        raise ValueError(
            "`bins` must hold edges (B + 1,) and accuracy, confidence, count (B,), got "
            f"{edges.shape}, {acc.shape}, {conf.shape}, {count.shape}"
        )
    fig = new_figure(fig, figsize)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    left, width = edges[:-1], np.diff(edges)
    full = np.isfinite(acc) & np.isfinite(conf)
    top.bar(
        left[full],
        acc[full],
        width[full],
        align="edge",
        color="tab:blue",
        edgecolor="black",
        label="accuracy",
    )
    top.bar(
        left[full],
        (conf - acc)[full],
        width[full],
        bottom=acc[full],
        align="edge",
        color="tab:red",
        alpha=0.35,
        hatch="//",
        edgecolor="tab:red",
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(fontsize=7, loc="upper left")
    top.set_title(title if ece is None else f"{title}: ECE {ece:.3f}")
    bottom.bar(left, count, width, align="edge", color="grey", edgecolor="black")
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("examples")
    tight(fig)
    return fig


def per_class_accuracy(
    accuracy: Any,
    *,
    class_names: Sequence[str] | None = None,
    overall: float | None = None,
    ax: Axes | None = None,
    title: str = "accuracy per class",
    figsize: tuple[float, float] = (5.0, 3.0),
) -> Figure | SubFigure:
    """One bar per class, annotated with its accuracy; classes without examples (NaN) are
    marked ``n/a``; ``overall`` accuracy as a dashed line when given.

    Args:
      accuracy: ``(C,)`` per-class accuracies (:func:`visjax.evaluation.per_class_accuracy`).
      class_names: ``C`` tick labels; default the class indices.
      overall: the overall accuracy, drawn as a horizontal line.
      ax: draw on these axes and return their figure; default: a new figure.
      title: the axes title.
      figsize: figure size in inches (new figure only).

    Returns:
      The matplotlib ``Figure``.
    """
    a = np.asarray(accuracy, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"`accuracy` must be (C,), got shape {a.shape}")
    names = _names(class_names, a.size)
    fig, ax = new_axes(ax, figsize)
    pos = np.arange(a.size)
    ok = np.isfinite(a)
    bars = ax.bar(pos, np.where(ok, a, 0.0), color="tab:blue")
    ax.bar_label(bars, [f"{v:.2f}" if f else "n/a" for v, f in zip(a, ok, strict=True)], fontsize=7)
    if overall is not None:
        ax.axhline(overall, ls="--", color="black", lw=1, label=f"overall {overall:.3f}")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xticks(pos, names)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    return fig


def misclassified_grid(
    images: Any,
    *,
    true_labels: Any,
    predicted_labels: Any,
    confidences: Any = None,
    attributions: Any = None,
    class_names: Sequence[str] | None = None,
    ncols: int = 4,
    cell: float = 1.8,
    fig: Figure | SubFigure | None = None,
    title: str = "most confident mistakes",
) -> Figure | SubFigure:
    """Misclassified examples, each titled "true -> predicted (confidence)", with their
    attribution drawn over them when given.

    Pick the examples with :func:`visjax.evaluation.most_confident_errors`; the attribution is
    any map on the image grid (e.g. of the predicted class), drawn as :func:`visjax.plot.overlay`
    does (each map on its own scale; NaN transparent).

    Args:
      images: ``(K, H, W, C)`` (or ``(K, H, W)``) inputs.
      true_labels: ``(K,)`` true classes.
      predicted_labels: ``(K,)`` predicted classes.
      confidences: ``(K,)`` top-class probabilities, shown in the titles when given.
      attributions: ``(K, H, W)`` or ``(K, H, W, C)`` maps to overlay; default none.
      class_names: names indexed by class; default the class indices.
      ncols: panels per row.
      cell: size of one panel in inches (new figure only).
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.
      title: the figure title.

    Returns:
      ``fig`` when given, else the new ``Figure``, with one axes per example (one blank axes
      saying so when ``K == 0``).
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"`images` must be (K, H, W, C), got shape {x.shape}")
    k = x.shape[0]
    t, p = np.asarray(true_labels), np.asarray(predicted_labels)
    for arg, v in (
        ("true_labels", t),
        ("predicted_labels", p),
        ("confidences", confidences),
        ("attributions", attributions),
    ):
        if v is not None and np.shape(v)[:1] != (k,):
            raise ValueError(f"`{arg}` must have {k} rows (one per image), got {np.shape(v)}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"`ncols` must be an int >= 1, got {ncols!r}")

    def name(c):
        return str(class_names[int(c)]) if class_names is not None else str(int(c))

    if k == 0:
        fig = new_figure(fig, (3.0, 1.2))
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified examples", ha="center", va="center")
        fig.suptitle(title)
        return fig
    cols = min(ncols, k)
    rows = -(-k // cols)
    fig = new_figure(fig, (cell * cols, (cell + 0.3) * rows + 0.4))
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= k:
            ax.remove()
            continue
        label = f"{name(t[i])} \u2192 {name(p[i])}"
        if confidences is not None:
            label += f" ({float(np.asarray(confidences)[i]):.2f})"
        if attributions is not None:
            overlay(x[i], np.asarray(attributions)[i], ax=ax, title=label)
        else:
            img = to_image(x[i])
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=9)
    fig.suptitle(title)
    tight(fig)
    return fig
