"""Curves over training: loss and accuracy per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from visjax.plot._figure import new_figure

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.figure import Figure, SubFigure


def training_curves(
    history: Any,
    *,
    fig: Figure | SubFigure | None = None,
    title: str = "training",
    figsize: tuple[float, float] = (9.0, 3.4),
) -> Figure | SubFigure:
    """Loss and accuracy per epoch, train and test, side by side.

    Args:
      history: a :class:`visjax.zoo.History` or a mapping with ``train_loss``, ``train_accuracy``
        and optionally ``test_loss``, ``test_accuracy`` (sequences of floats; empty ones are
        skipped). NaN/Inf values are drawn as gaps, as matplotlib does.
      fig: a matplotlib Figure or SubFigure to draw into; default: a new Figure.
      title: the figure title.
      figsize: figure size in inches (new figure only).

    Returns:
      ``fig`` when given, else the new ``Figure``, with two axes.
    """
    h: Mapping[str, Sequence[float]] = (
        history._asdict() if hasattr(history, "_asdict") else dict(history)
    )
    fig = new_figure(fig, figsize)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for split, style in (("train", "-"), ("test", "--")):
            values = list(h.get(f"{split}_{metric}", []))
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend()
    fig.suptitle(title)
    return fig
