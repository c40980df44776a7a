"""The report's "Model" section: the layer table, the architecture graph, weights, dead units.

Everything comes from :mod:`visjax.inspect`: :func:`~visjax.inspect.summary` (the table, also
written as ``summary.txt`` and ``summary.html``), :func:`~visjax.inspect.graph` (``model_graph.svg``
and ``model_graph.dot``), :func:`~visjax.inspect.weight_histograms` and
:func:`~visjax.inspect.activation_stats` over the held-out data (dead units).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from visjax import inspect as vi
from visjax.base.io import atomic_write_text, save_figure
from visjax.plot import activation_fractions, weight_histogram_grid
from visjax.report.context import ReportContext
from visjax.report.html import Figure, Section

# Examples of the held-out split behind the activation statistics (all of them unless quick).
QUICK_EXAMPLES = 200


def model_section(ctx: ReportContext) -> Section:
    """The model's layer table, its graph, its weight histograms and its dead units."""
    model = ctx.model
    one = jnp.asarray(ctx.test.x[:1])
    out = Path(ctx.out)
    parts: list[str] = []
    figures: list[Figure] = []
    preformatted: list[str] = []

    table = vi.summary(model, one)
    text = table.to_text()
    atomic_write_text(out / "summary.txt", text + "\n")
    to_html = getattr(table, "to_html", None)
    if to_html is not None:
        atomic_write_text(out / "summary.html", to_html() + "\n")
    preformatted.append(text)
    parts.append(
        f"The model ({model.kind}) seen through visjax's model interface: one row per layer, with "
        "its path (the name every method's layer= argument takes), input and output shapes, "
        "parameter count and, where XLA reports them, the forward and forward+backward FLOPs per "
        "example. The same table is in summary.txt and summary.html."
    )

    graph_fn = getattr(vi, "graph", None)
    if graph_fn is None:
        parts.append("(The architecture graph needs visjax.inspect.graph, not in this build.)")
    else:
        g = graph_fn(model, one)
        svg = atomic_write_text(out / "model_graph.svg", g.to_svg())
        atomic_write_text(out / "model_graph.dot", g.to_dot() + "\n")
        figures.append(
            Figure(
                svg,
                "The architecture: layers (path, output shape) in data-flow order, laid out by "
                "visjax without Graphviz; model_graph.dot holds the same graph for Graphviz.",
                "Architecture graph of the model's layers",
            )
        )

    hist = vi.weight_histograms(model)
    figures.append(
        Figure(
            save_figure(
                weight_histogram_grid(
                    {k: h.counts for k, h in hist.items()},
                    {k: h.edges for k, h in hist.items()},
                    ncols=4,
                    title="weights and biases",
                ),
                out / "model_weights.png",
                dpi=90,
            ),
            "Histogram of every parameter's values (kernels and biases), one panel each.",
        )
    )

    n = QUICK_EXAMPLES if ctx.quick else len(ctx.test.y)
    x = jnp.asarray(ctx.test.x[:n])
    layers = list(model.layer_shapes(x[:1]))
    stats = vi.activation_stats(model, x, layers=layers)
    dead = vi.dead_units(stats)
    figures.append(
        Figure(
            save_figure(
                activation_fractions({k: s.active for k, s in stats.items()}),
                out / "model_activations.png",
                dpi=90,
            ),
            f"Fraction of the {n} held-out examples' values where each unit is active (> 0); "
            "red marks: dead units, never active.",
        )
    )
    listed = "; ".join(
        f"{k}: {len(d)} of {stats[k].units}" + (f" (units {_short(d)})" if len(d) else "")
        for k, d in dead.items()
    )
    parts.append(
        f"Dead units (never active over {n} held-out examples) per layer: {listed}. A unit is a "
        "channel of a convolution or a feature of a dense layer, as the model names its values "
        "(for the zoo's models, before the ReLU: 'active' means the ReLU passes it). The weight "
        "histograms show each parameter's spread; a collapsed or exploding kernel shows there "
        "first."
    )
    return Section("Model", "\n\n".join(parts), figures=figures, preformatted=preformatted)


def _short(units: np.ndarray, limit: int = 12) -> str:
    shown = ", ".join(str(int(u)) for u in units[:limit])
    return shown + (", ..." if len(units) > limit else "")
