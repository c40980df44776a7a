"""Where a plot draws: the axes or figure the caller passes, or a new Figure."""

from __future__ import annotations

from typing import Any


def new_figure(fig: Any, figsize: tuple[float, float], *, layout: str | None = None) -> Any:
    """``fig`` (a Figure or SubFigure) when given, else a new ``Figure`` of ``figsize`` inches
    (with the ``layout`` engine, e.g. ``"constrained"``)."""
    if fig is not None:
        if not hasattr(fig, "subplots"):
            raise TypeError(
                f"`fig` must be a matplotlib Figure or SubFigure, got {type(fig).__name__}"
            )
        return fig
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    return Figure(figsize=figsize, layout=layout)


def new_axes(ax: Any, figsize: tuple[float, float], **subplot_kw: Any) -> tuple[Any, Any]:
    """``(figure, axes)``: ``(ax.figure, ax)`` when ``ax`` is given, else a new one-axes Figure."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(None, figsize)
    return fig, fig.add_subplot(**subplot_kw)


def tight(fig: Any) -> None:
    """``tight_layout`` on a Figure; a SubFigure (which has none) keeps its parent's layout."""
    if hasattr(fig, "tight_layout"):
        fig.tight_layout()


def constrained(fig: Any) -> None:
    """Constrained layout (titles, labels and colour bars kept apart) for a Figure that has no
    layout engine yet; a SubFigure follows its parent's layout."""
    if hasattr(fig, "set_layout_engine") and fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")
