"""Plots of a model's activation statistics and weights (arrays in, e.g. from ``visjax.inspect``).

:func:`activation_fractions` draws how often each unit fires (dead units in red),
:func:`activation_histograms` each layer's value distribution, :func:`weight_histogram_grid`
each parameter's, and :func:`weight_changes` how far each parameter moved between two
checkpoints. First-layer filters are :func:`visjax.plot.filter_grid`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.plot._figure import new_figure

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.figure import Figure, SubFigure

_DEAD = "tab:red"
_BAR = "tab:blue"


def _mapping(values: Any, name: str, ndim: tuple[int, ...]) -> dict[str, np.ndarray]:
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"`{name}` must be a non-empty mapping from name to array")
    out = {}
    for key, a in values.items():
        a = np.asarray(a, dtype=np.float64)
        if a.ndim not in ndim or a.size == 0:
            raise ValueError(
                f"`{name}[{key!r}]` must be a non-empty {' or '.join(map(str, ndim))}-D array, "
                f"got shape {a.shape}"
            )
        out[str(key)] = a
    return out


def _edges_for(edges: Any, counts: Mapping[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    e = _mapping(edges, name, (1,))
    for key, c in counts.items():
        if key not in e:
            raise ValueError(f"`{name}` has no entry for {key!r}")
        if e[key].size != c.shape[-1] + 1:
            raise ValueError(
                f"`{name}[{key!r}]` must have {c.shape[-1] + 1} edges for {c.shape[-1]} bins, "
                f"got {e[key].size}"
            )
    return e


def _ncols(n: int, ncols: int | None) -> int:
    return max(1, min(n, ncols or min(n, 3)))


def _grid(fig: Any, n: int, ncols: int | None, width: float = 3.2) -> tuple[Any, list[Any]]:
    ncols = _ncols(n, ncols)
    nrows = math.ceil(n / ncols)
    fig = new_figure(fig, (width * ncols, 2.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, list(axes[:n])


def _titled(fig: Any, title: str | None) -> Any:
    if title:
        fig.suptitle(title)
    return fig


def _histogram_grid(
    fig: Any,
    counts: Any,
    edges: Any,
    ndim: tuple[int, ...],
    ncols: int | None,
    xlabel: str,
    *,
    log: bool = False,
    ylabel: str | None = None,
    zero_line: bool = False,
) -> Any:
    """One filled histogram per key of ``counts`` (``(B,)``, or ``(U, B)`` summed over ``U``)."""
    data = _mapping(counts, "counts", ndim)
    bounds = _edges_for(edges, data, "edges")
    fig, axes = _grid(fig, len(data), ncols)
    for ax, (key, c) in zip(axes, data.items(), strict=True):
        total = c.sum(0) if c.ndim == 2 else c
        ax.stairs(total, bounds[key], fill=True, color=_BAR, alpha=0.8)
        if log and (total > 0).any():
            ax.set_yscale("log")
        if zero_line:
            ax.axvline(0.0, color="0.3", lw=0.8, ls=":")
        ax.set_title(key)
        ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
    return fig


def activation_fractions(
    active: Mapping[str, Any],
    *,
    title: str | None = None,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """How often each unit is active (``> 0``) over a dataset, one panel per layer.

    Bars are the units' fractions of active values; dead units (never active, fraction 0) are
    drawn as red ticks below the axis and counted in the panel's title.

    Args:
      active: layer name to ``(U,)`` fractions in [0, 1] (``ActivationStats.active``).
      title: the figure title.
      fig: a Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      The figure, one axes per layer (stacked).

    Raises:
      ValueError: not a mapping of 1-D arrays, or fractions outside [0, 1].

    Example:
      >>> import numpy as np
      >>> fig = activation_fractions({"fc": np.array([0.5, 0.0, 1.0])})
      >>> fig.axes[0].get_title()
      'fc: 1 of 3 units dead'
    """
    data = _mapping(active, "active", (1,))
    for key, a in data.items():
        if not (np.isfinite(a).all() and (a >= 0).all() and (a <= 1).all()):
            raise ValueError(f"`active[{key!r}]` must hold fractions in [0, 1]")
    fig, axes = _grid(fig, len(data), 1, width=7.0)
    for ax, (key, a) in zip(axes, data.items(), strict=True):
        units = np.arange(a.size)
        dead = a == 0
        ax.bar(units, a, width=0.9, color=_BAR)
        if dead.any():
            ax.plot(units[dead], np.full(dead.sum(), -0.04), "^", color=_DEAD, ms=5, label="dead")
            ax.legend(loc="upper right", fontsize="small")
        ax.set_ylim(-0.08, 1.02)
        ax.set_xlim(-0.7, a.size - 0.3)
        ax.set_ylabel("fraction active")
        ax.set_title(f"{key}: {int(dead.sum())} of {a.size} units dead")
    axes[-1].set_xlabel("unit")
    return _titled(fig, title)


def activation_histograms(
    counts: Mapping[str, Any],
    edges: Mapping[str, Any],
    *,
    log: bool = True,
    ncols: int | None = None,
    title: str | None = None,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Each layer's distribution of activation values over a dataset, summed over its units.

    Args:
      counts: layer to ``(B,)`` counts (``ActivationStats.counts`` with
        ``histogram="layer"``) or ``(U, B)`` per-unit counts (``histogram="unit"``), summed.
      edges: layer to ``(B + 1,)`` bin edges.
      log: a logarithmic count axis (ReLU layers pile up at 0).
      ncols: panels per row (default up to 3).
      title: the figure title.
      fig: a Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      The figure, one axes per layer.

    Raises:
      ValueError: mismatched shapes or missing edges.

    Example:
      >>> import numpy as np
      >>> fig = activation_histograms({"fc": np.ones((4, 3))}, {"fc": np.arange(4.0)})
      >>> len(fig.axes)
      1
    """
    fig = _histogram_grid(
        fig, counts, edges, (1, 2), ncols, "activation", log=log, ylabel="count", zero_line=True
    )
    return _titled(fig, title)


def activation_heatmaps(
    maps: Mapping[str, Any],
    *,
    channel: int | None = None,
    cmap: str = "magma",
    ncols: int | None = None,
    title: str | None = None,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Per-layer activation heatmaps (aggregated over a dataset), one panel per layer.

    Each layer's map of shape ``(H, W, C)`` is shown as an ``(H, W)`` image: averaged over the
    channels, or the one ``channel``; ``(H, W)`` maps are shown as they are. Layers whose map is
    not spatial (``(F,)``, a dense layer) are shown as a one-row strip of ``F`` cells.

    Args:
      maps: layer to map, as :func:`visjax.inspect.activation_maps` returns them.
      channel: show this channel of 3-D maps instead of the channel mean.
      cmap: a matplotlib colormap name.
      ncols: panels per row (default up to 3).
      title: the figure title.
      fig: a Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      The figure, one image axes (with its colour bar) per layer.

    Raises:
      ValueError: not a mapping of 1-, 2- or 3-D arrays, non-finite values, or ``channel`` out of
        range for a 3-D map.

    Example:
      >>> import numpy as np
      >>> fig = activation_heatmaps({"conv1": np.ones((8, 8, 4)), "fc": np.arange(10.0)})
      >>> [ax.get_title() for ax in fig.axes if ax.images]
      ['conv1 (mean of 4 channels)', 'fc']
    """
    data = _mapping(maps, "maps", (1, 2, 3))
    if channel is not None and (
        isinstance(channel, bool) or not isinstance(channel, int | np.integer)
    ):
        raise ValueError(f"`channel` must be an int or None, got {channel!r}")
    images = {}
    for key, a in data.items():
        if not np.isfinite(a).all():
            raise ValueError(f"`maps[{key!r}]` holds NaN or Inf values")
        label = key
        if a.ndim == 3:
            if channel is None:
                label = f"{key} (mean of {a.shape[-1]} channels)"
                a = a.mean(-1)
            else:
                if not -a.shape[-1] <= channel < a.shape[-1]:
                    raise ValueError(
                        f"`channel` {channel} is out of range for `maps[{key!r}]` with "
                        f"{a.shape[-1]} channels"
                    )
                label = f"{key} (channel {channel})"
                a = a[..., channel]
        elif a.ndim == 1:
            a = a[None, :]
        images[label] = a
    fig, axes = _grid(fig, len(images), ncols)
    for ax, (label, a) in zip(axes, images.items(), strict=True):
        im = ax.imshow(
            a, cmap=cmap, interpolation="nearest", aspect="equal" if a.shape[0] > 1 else "auto"
        )
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
    return _titled(fig, title)


def weight_histogram_grid(
    counts: Mapping[str, Any],
    edges: Mapping[str, Any],
    *,
    ncols: int | None = None,
    title: str | None = None,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """One histogram per parameter (``"conv1.kernel"``, ``"conv1.bias"``, ...).

    Args:
      counts: parameter path to ``(B,)`` counts (``WeightHistogram.counts``).
      edges: parameter path to ``(B + 1,)`` edges.
      ncols: panels per row (default up to 3).
      title: the figure title.
      fig: a Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      The figure, one axes per parameter.

    Raises:
      ValueError: mismatched shapes or missing edges.

    Example:
      >>> import numpy as np
      >>> fig = weight_histogram_grid({"w": np.ones(3), "b": np.ones(2)},
      ...                             {"w": np.arange(4.0), "b": np.arange(3.0)})
      >>> [ax.get_title() for ax in fig.axes]
      ['w', 'b']
    """
    return _titled(_histogram_grid(fig, counts, edges, (1,), ncols, "weight"), title)


def weight_changes(
    relative_change: Mapping[str, float],
    counts_a: Mapping[str, Any],
    counts_b: Mapping[str, Any],
    edges: Mapping[str, Any],
    *,
    labels: tuple[str, str] = ("before", "after"),
    ncols: int | None = None,
    title: str | None = None,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    r"""How each parameter moved between two checkpoints: a bar of its relative change
    :math:`\|b - a\| / \|a\|` per parameter, then each parameter's histograms before and after
    overlaid on shared edges.

    Args:
      relative_change: parameter path to its relative change (``WeightChange.relative_change``);
        an infinite one (the parameter started at zero, as biases do) is marked ``∞``.
      counts_a: path to ``(B,)`` counts at the first checkpoint.
      counts_b: path to ``(B,)`` counts at the second.
      edges: path to ``(B + 1,)`` edges shared by both.
      labels: the two checkpoints' names in the legend.
      ncols: histogram panels per row (default up to 3).
      title: the figure title.
      fig: a Figure or SubFigure to draw into; default: a new Figure.

    Returns:
      The figure: the bar chart first, then one axes per parameter.

    Raises:
      ValueError: mismatched keys or shapes.

    Example:
      >>> import numpy as np
      >>> c = {"w": np.ones(3)}
      >>> fig = weight_changes({"w": 0.5}, c, c, {"w": np.arange(4.0)})
      >>> len(fig.axes)
      2
    """
    a = _mapping(counts_a, "counts_a", (1,))
    b = _mapping(counts_b, "counts_b", (1,))
    bounds = _edges_for(edges, a, "edges")
    if set(a) != set(b) or set(a) != {str(k) for k in relative_change}:
        raise ValueError("`relative_change`, `counts_a` and `counts_b` must have the same keys")
    rel = {str(k): float(v) for k, v in relative_change.items()}
    n = len(a)
    ncols = _ncols(n, ncols)
    nrows = 1 + math.ceil(n / ncols)
    fig = new_figure(fig, (3.2 * ncols, 2.4 * nrows), layout="constrained")
    gs = fig.add_gridspec(nrows, ncols)
    bar = fig.add_subplot(gs[0, :])
    keys = list(a)
    heights = np.array([rel[k] for k in keys])
    finite = np.isfinite(heights)
    bar.bar(np.flatnonzero(finite), heights[finite], color=_BAR)
    for i in np.flatnonzero(~finite):  # a parameter that started at zero (a bias): ‖a‖ = 0
        bar.annotate("∞", (i, 0), ha="center", va="bottom", color=_DEAD)
    bar.set_xticks(range(n), keys, rotation=30, ha="right", fontsize="small")
    bar.set_ylabel("‖b − a‖ / ‖a‖")
    bar.set_title("relative change per parameter")
    for i, key in enumerate(keys):
        ax = fig.add_subplot(gs[1 + i // ncols, i % ncols])
        ax.stairs(a[key], bounds[key], color="0.4", label=labels[0])
        ax.stairs(b[key], bounds[key], color=_DEAD, label=labels[1])
        ax.set_title(f"{key} ({rel[key]:.2f})", fontsize="medium")
        if i == 0:
            ax.legend(fontsize="small")
    return _titled(fig, title)
