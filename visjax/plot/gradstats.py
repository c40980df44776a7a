"""Plots of gradient statistics collected during training.

The statistics come from ``visjax.gradstats`` as a snapshot: an object (or dict) with ``steps``
``(T,)``, ``stats`` (statistic -> group -> ``(T,)`` or ``(T, bins)`` array) and ``edges``
``(bins + 1,)`` or ``None``. These functions only draw them.

Loss and accuracy over steps are drawn by :func:`loss_accuracy` here;
:func:`visjax.plot.curves.training_curves` draws per-epoch train/test histories instead (it takes a
``History``, not steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: no matplotlib import cost at import time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _fields(snapshot: Any) -> tuple[np.ndarray, Mapping[str, Mapping[str, Any]], Any]:
    if isinstance(snapshot, Mapping):
        steps, stats, edges = snapshot.get("steps"), snapshot.get("stats"), snapshot.get("edges")
    else:
        steps = getattr(snapshot, "steps", None)
        stats = getattr(snapshot, "stats", None)
        edges = getattr(snapshot, "edges", None)
    if steps is None or not isinstance(stats, Mapping):
        raise TypeError("`snapshot` must have `steps` and a mapping `stats` (object or dict)")
    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim != 1:
        raise ValueError(f"`snapshot.steps` must be 1-D, got shape {steps.shape}")
    return steps, stats, edges


def _series(
    snapshot: Any, statistic: str, groups: Sequence[str] | None, *, ndim: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The steps and the chosen groups' arrays of one statistic, with readable errors."""
    steps, stats, _ = _fields(snapshot)
    if statistic not in stats:
        raise ValueError(f"unknown statistic {statistic!r}; the snapshot has {sorted(stats)}")
    available = stats[statistic]
    names = list(available) if groups is None else [str(g) for g in groups]
    unknown = [g for g in names if g not in available]
    if unknown:
        raise ValueError(
            f"unknown group(s) {unknown} for statistic {statistic!r}; known: {list(available)}"
        )
    if not names:
        raise ValueError(f"no groups to draw for statistic {statistic!r}")
    out = {}
    for g in names:
        a = np.asarray(available[g], dtype=np.float64)
        if a.ndim != ndim or a.shape[0] != steps.size:
            want = f"({steps.size},)" if ndim == 1 else f"({steps.size}, bins)"
            raise ValueError(f"`stats[{statistic!r}][{g!r}]` must have shape {want}, got {a.shape}")
        out[g] = a
    return steps, out


def _shown(values: np.ndarray, log: bool) -> np.ndarray:
    ok = np.isfinite(values) & ((values > 0) if log else True)
    return np.where(ok, values, np.nan)


def _axes(ax, figsize):
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    if ax is None:  # constrained: the labels, legend and colour bar stay inside the figure
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.subplots()
    return ax.figure, ax


def _curves(ax, steps, series, log, ylabel, title):
    for i, (g, values) in enumerate(series.items()):
        style = ("-", "--", ":", "-.")[(i // 10) % 4]
        ax.plot(steps, _shown(values, log), style, color=f"C{i % 10}", label=g)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)


def gradient_norms(
    snapshot: Any,
    *,
    statistic: str = "norm",
    groups: Sequence[str] | None = None,
    log: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 3.8),
) -> Figure | SubFigure:
    """Per-layer gradient statistics over training steps, one line per group.

    Args:
      snapshot: the gradient statistics (``steps``, ``stats``; object or dict).
      statistic: a scalar statistic of the snapshot (``"norm"``, ``"max_abs"``, ``"std"``, ...).
      groups: the groups (layers) to draw, in this order; default: all, in the snapshot's order.
      log: a log y scale. On it, values ``<= 0`` are drawn as gaps (a zero gradient has no
        logarithm); NaN and ±Inf are gaps on either scale.
      ax: a matplotlib ``Axes`` to draw on; default: a new figure.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).

    Raises:
      ValueError: an unknown statistic or group (the message lists the known ones), or a
        statistic that is not ``(T,)``.

    Example:
      >>> import numpy as np
      >>> snap = {"steps": np.arange(3), "stats": {"norm": {"a": np.ones(3), "b": np.ones(3)}}}
      >>> len(gradient_norms(snap).axes[0].get_lines())
      2
    """
    steps, series = _series(snapshot, statistic, groups, ndim=1)
    fig, ax = _axes(ax, figsize)
    _curves(ax, steps, series, log, f"gradient {statistic}", title)
    ax.legend(fontsize=7, ncol=max(1, len(series) // 10))
    return fig


def _edge_labels(edges: np.ndarray) -> list[str]:
    """One format for every edge: ``±10^k`` (or ``±m·10^k``) when the edges span decades (log
    bins), else 3 significant digits; ``0`` exactly for a zero edge.

    Powers of ten are recognised to float32 precision (edges that went through JAX are float32,
    and ``float32(1e-8)`` is not exactly ``1e-8``).
    """
    mags = np.abs(edges[np.isfinite(edges) & (edges != 0)])
    decades = mags.size > 0 and mags.max() >= 1e3 * mags.min()
    labels = []
    for e in edges:
        if e == 0:
            labels.append("0")
        elif decades and np.isfinite(e):
            k = int(np.floor(np.log10(abs(e)) + 1e-6))
            m = abs(e) / 10.0**k
            sign = "-" if e < 0 else ""
            mant = "" if abs(m - 1.0) < 1e-5 else f"{m:.2g}\\cdot "
            labels.append(f"${sign}{mant}10^{{{k}}}$")
        else:
            labels.append(f"{e:.3g}")
    return labels


def _yticks(edges: np.ndarray, max_ticks: int) -> tuple[list[float], list[str]]:
    """Tick positions (rows: edge ``i`` at ``i``) and labels; a bin that straddles 0 gets a
    ``0`` tick at its middle instead of its two edges' ``±tiny`` labels."""
    bins = edges.size - 1
    ticks = np.unique(np.linspace(0, bins, min(max_ticks, bins + 1)).round().astype(int))
    zero = np.flatnonzero(edges == 0)
    if zero.size and zero[0] not in ticks:
        ticks[np.argmin(np.abs(ticks - zero[0]))] = zero[0]
        ticks = np.unique(ticks)
    labels = _edge_labels(edges)
    pos = [float(t) for t in ticks]
    text = [labels[t] for t in ticks]
    band = np.flatnonzero((edges[:-1] < 0) & (edges[1:] > 0))
    if band.size:
        mid = band[0] + 0.5
        keep = [i for i, t in enumerate(pos) if abs(t - mid) > 1.0]
        pos = [pos[i] for i in keep] + [mid]
        text = [text[i] for i in keep] + ["0"]
        order = np.argsort(pos)
        pos, text = [pos[i] for i in order], [text[i] for i in order]
    return pos, text


def histograms_over_time(
    snapshot: Any,
    group: str,
    *,
    statistic: str = "histogram",
    ax: Axes | None = None,
    cmap: str = "viridis",
    max_ticks: int = 9,
    title: str | None = None,
    figsize: tuple[float, float] = (6.4, 4.0),
) -> Figure | SubFigure:
    """A group's histograms over training as a heatmap (TensorBoard's "distributions" view).

    The x axis is the step (each column spans halfway to its neighbours, so uneven steps keep their
    spacing), the y axis the bin index: bin ``i`` is the row between the ticks of ``edges[i]`` and
    ``edges[i + 1]``, labelled with the edge values (at most ``max_ticks`` of them, always including
    0 when it is an edge; all as ``±10^k`` when the edges span decades, else 3 digits). A bin
    around zero (as :func:`visjax.gradstats.default_edges`' ``[-1e-8, 1e-8)``) is labelled ``0``
    at its middle, in place of its two tiny edges. Rows are equally
    tall whatever the edges' spacing, so symmetric log bins show every decade alike. The first and
    last bins also hold the values beyond the edges. The colour is the count on a log scale; empty
    bins (count 0) and NaN counts are left blank.

    Args:
      snapshot: the gradient statistics (``steps``, ``stats``, ``edges``; object or dict).
      group: the group (layer) to draw.
      statistic: a histogram statistic of the snapshot, ``(T, bins)`` counts.
      ax: a matplotlib ``Axes`` to draw on; default: a new figure (with a colour bar).
      cmap: the colour map.
      max_ticks: the most edge labels on the y axis.
      title: the axes title; default ``"<group> <statistic>"``.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure``; the heatmap is ``ax.collections[0]``, its array ``(bins, T)``.

    Raises:
      ValueError: an unknown statistic or group (the message lists the known ones), or edges that
        do not match the bins.

    Example:
      >>> import numpy as np
      >>> snap = {"steps": np.arange(4), "edges": np.array([-1.0, 0.0, 1.0]),
      ...         "stats": {"histogram": {"fc": np.ones((4, 2))}}}
      >>> histograms_over_time(snap, "fc").axes[0].collections[0].get_array().shape
      (2, 4)
    """
    from matplotlib.colors import LogNorm  # noqa: PLC0415 - matplotlib (~0.7 s) loads with the first figure

    steps, series = _series(snapshot, statistic, [group], ndim=2)
    counts = series[str(group)]
    bins = counts.shape[1]
    edges = _fields(snapshot)[2]
    edges = None if edges is None else np.asarray(edges, dtype=np.float64)
    if edges is None or edges.shape != (bins + 1,):
        got = None if edges is None else edges.shape
        raise ValueError(
            f"`snapshot.edges` must have shape ({bins + 1},) for {bins} bins, got {got}"
        )
    if steps.size == 0:
        raise ValueError("the snapshot has no steps to draw")

    if steps.size > 1:
        mid = 0.5 * (steps[1:] + steps[:-1])
        xb = np.concatenate([[2 * steps[0] - mid[0]], mid, [2 * steps[-1] - mid[-1]]])
    else:
        xb = np.array([steps[0] - 0.5, steps[0] + 0.5])
    grid = np.ma.masked_where(~np.isfinite(counts) | (counts <= 0), counts).T
    positive = grid.compressed()
    lo = float(positive.min()) if positive.size else 1.0
    hi = float(positive.max()) if positive.size else 10.0
    norm = LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10.0)

    fig, ax_ = _axes(ax, figsize)
    mesh = ax_.pcolormesh(xb, np.arange(bins + 1), grid, cmap=cmap, norm=norm, shading="flat")
    if ax is None:
        fig.colorbar(mesh, ax=ax_, label="count")
    ax_.set_yticks(*_yticks(edges, max_ticks))
    ax_.set_xlabel("step")
    band = np.flatnonzero((edges[:-1] < 0) & (edges[1:] > 0))
    zero_row = ""
    if band.size:
        lo, hi = _edge_labels(edges)[band[0] : band[0] + 2]
        zero_row = f"; 0: [{lo}, {hi})"
    ax_.set_ylabel(f"gradient value (bin edges{zero_row})")
    ax_.set_title(title if title is not None else f"{group} {statistic}")
    return fig


def update_ratios(
    snapshot: Any,
    *,
    groups: Sequence[str] | None = None,
    reference: float | None = 1e-3,
    statistic: str = "update_ratio",
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 3.8),
) -> Figure | SubFigure:
    """Update-to-parameter ratios ``‖Δθ‖ / ‖θ‖`` per layer over training, on a log scale.

    A dashed grey horizontal line marks ``reference``: the rule of thumb (Karpathy, "CS231n:
    Neural Networks Part 3", 2016) that a healthy ratio is around 1e-3; far above it the learning
    rate is likely too high, far below too low. Values ``<= 0``, NaN and ±Inf are drawn as gaps.

    Args:
      snapshot: the gradient statistics (``steps``, ``stats``; object or dict).
      groups: the groups (layers) to draw; default: all.
      reference: the height of the rule-of-thumb line; ``None`` draws none.
      statistic: the ratio statistic of the snapshot.
      ax: a matplotlib ``Axes`` to draw on; default: a new figure.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure``: one line per group, then the reference line.

    Raises:
      ValueError: an unknown statistic or group (the message lists the known ones).

    Example:
      >>> import numpy as np
      >>> snap = {"steps": np.arange(3), "stats": {"update_ratio": {"a": np.full(3, 1e-3)}}}
      >>> len(update_ratios(snap).axes[0].get_lines())
      2
    """
    steps, series = _series(snapshot, statistic, groups, ndim=1)
    fig, ax = _axes(ax, figsize)
    _curves(ax, steps, series, True, "update / parameter", title)
    if reference is not None:
        ax.axhline(
            float(reference), color="0.4", linestyle="--", linewidth=1.0, label=f"{reference:g}"
        )
    ax.legend(fontsize=7, ncol=max(1, len(series) // 10))
    return fig


def loss_accuracy(
    steps: Any,
    loss: Any,
    accuracy: Any = None,
    *,
    ax: Axes | None = None,
    log_loss: bool = False,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 3.8),
) -> Figure | SubFigure:
    """Loss over training steps, with accuracy on a second y axis when given.

    For per-epoch train/test histories use :func:`visjax.plot.curves.training_curves`.

    Args:
      steps: ``(T,)`` training steps.
      loss: ``(T,)`` losses; NaN/±Inf (and, with ``log_loss``, values ``<= 0``) are gaps.
      accuracy: ``(T,)`` accuracies, drawn dashed in orange on a right-hand axis; NaN are gaps.
      ax: a matplotlib ``Axes`` to draw on; default: a new figure.
      log_loss: a log scale for the loss axis.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure`` (the accuracy axis is a twin of the loss axis).

    Example:
      >>> len(loss_accuracy([0, 1, 2], [2.0, 1.0, 0.5], [0.1, 0.5, 0.9]).axes)
      2
    """
    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim != 1:
        raise ValueError(f"`steps` must be 1-D, got shape {steps.shape}")
    loss = np.asarray(loss, dtype=np.float64)
    if loss.shape != steps.shape:
        raise ValueError(f"`loss` must have shape {steps.shape}, got {loss.shape}")
    fig, ax = _axes(ax, figsize)
    ax.plot(steps, _shown(loss, log_loss), color="C0", label="loss")
    if log_loss:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss", color="C0")
    ax.grid(alpha=0.3)
    if accuracy is not None:
        acc = np.asarray(accuracy, dtype=np.float64)
        if acc.shape != steps.shape:
            raise ValueError(f"`accuracy` must have shape {steps.shape}, got {acc.shape}")
        twin = ax.twinx()
        twin.plot(steps, _shown(acc, False), "--", color="C1", label="accuracy")
        twin.set_ylabel("accuracy", color="C1")
    if title:
        ax.set_title(title)
    return fig


def noise_scale(
    steps: Any,
    values: Any,
    *,
    ax: Axes | None = None,
    label: str = "$B_{simple}$",
    title: str | None = None,
    figsize: tuple[float, float] = (5.0, 3.2),
) -> Figure | SubFigure:
    """The gradient noise scale over training on a log scale.

    ``B_simple = tr(Σ) / |G|²`` (McCandlish et al., "An Empirical Model of Large-Batch Training",
    2018, https://arxiv.org/abs/1812.06162) estimates the critical batch size. Values ``<= 0``
    (noisy estimates can go negative: ``|G|²`` is estimated by a difference), NaN and ±Inf have
    no logarithm: they are gaps in the line, each marked by a red tick on the step axis, and the
    legend says how many steps are undefined and why.

    Args:
      steps: ``(T,)`` training steps.
      values: ``(T,)`` noise-scale estimates.
      ax: a matplotlib ``Axes`` to draw on; default: a new figure.
      label: the y-axis label.
      title: the axes title.
      figsize: figure size in inches, for a new figure.

    Returns:
      The matplotlib ``Figure`` (the one of ``ax`` when given).

    Example:
      >>> noise_scale([0, 10, 20], [50.0, -3.0, 400.0]).axes[0].get_yscale()
      'log'
    """
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if steps.ndim != 1 or values.shape != steps.shape:
        raise ValueError(
            f"`steps` and `values` must be 1-D of one length, got {steps.shape}, {values.shape}"
        )
    fig, ax = _axes(ax, figsize)
    shown = _shown(values, True)
    ax.plot(steps, shown, color="C0", marker=".", label=label)
    undefined = ~np.isfinite(shown)
    if undefined.any():  # mark the gaps on the step axis and say why they are there
        n = int(undefined.sum())
        ax.plot(
            steps[undefined],
            np.zeros(n),
            linestyle="none",
            marker="|",
            markersize=10,
            color="C3",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label=f"undefined at {n} step{'s' if n > 1 else ''} (estimate <= 0 or not finite)",
        )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if undefined.any():
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return fig
