"""The architecture as a graph of layer paths, from the data flow of the traced program.

Nodes are the layers (plus ``"input"`` and ``"output"``), edges join a layer to the nearest layers
whose outputs reach it through unnamed operations, so a skip connection is an edge that jumps over
layers, and attention's branches meet where they are combined. :meth:`Graph.to_svg` lays the graph
out in Python (a layered drawing: longest-path layers, barycentre ordering), so no system Graphviz
is needed; :meth:`Graph.to_dot` writes Graphviz DOT text for those who have it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.extend.core as jcore

from visjax.inspect.summary import batch_spec, check_depth, layer_depths
from visjax.model import as_model

INPUT = "input"
OUTPUT = "output"


class GraphNode(NamedTuple):
    """A node of a :class:`Graph`: a layer path (or ``"input"``/``"output"``), its output shape
    (batch first; ``None`` for an output that is not one array) and dtype."""

    name: str
    shape: tuple[int, ...] | None
    dtype: str


class Graph:
    """What :func:`graph` returns.

    Attributes:
      nodes: the nodes in program order (``"input"`` first, ``"output"`` last).
      edges: ``(source, target)`` node names, each once.
    """

    def __init__(self, nodes: Sequence[GraphNode], edges: Sequence[tuple[str, str]]) -> None:
        self.nodes = list(nodes)
        self.edges = list(edges)

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes, {len(self.edges)} edges)"

    def _labels(self) -> dict[str, tuple[str, str]]:
        return {
            n.name: (n.name, "" if n.shape is None else "(" + ", ".join(map(str, n.shape)) + ")")
            for n in self.nodes
        }

    def to_dot(self) -> str:
        """The graph as Graphviz DOT text (``dot -Tsvg``), top to bottom, one box per node.

        Example:
          >>> print(Graph([GraphNode("input", (1, 2), "float32")], []).to_dot())
          digraph model {
            rankdir=TB;
            node [shape=box, fontname="monospace", fontsize=10];
            "input" [label="input\\n(1, 2)"];
          }
        """

        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [
            "digraph model {",
            "  rankdir=TB;",
            '  node [shape=box, fontname="monospace", fontsize=10];',
        ]
        for name, (label, shape) in self._labels().items():
            text = q(label + ("\n" + shape if shape else "")).replace("\n", "\\n")
            lines.append(f"  {q(name)} [label={text}];")
        lines += [f"  {q(a)} -> {q(b)};" for a, b in self.edges]
        lines.append("}")
        return "\n".join(lines)

    def to_svg(self) -> str:
        """The graph as a standalone SVG document, laid out in Python (no Graphviz).

        Nodes are placed in layers by their longest path from the input, ordered within a layer
        by the mean position of their neighbours (a few sweeps of the barycentre heuristic);
        edges that skip layers are routed in lanes to the right, so skip connections stay
        visible.

        Example:
          >>> from visjax.zoo import digits_resnet
          >>> svg = graph(digits_resnet(), depth=0).to_svg()
          >>> svg.startswith("<svg") and "stages.1" in svg
          True
        """
        return _svg(self)


def graph(model: Any, x: Any = None, *, depth: int | None = None) -> Graph:
    """The architecture as a graph of layer paths with their output shapes (nothing compiles).

    Edges come from the data flow of the traced forward: an edge ``a -> b`` means that ``a``'s
    output reaches ``b``'s computation through operations that belong to no shown layer. With
    ``depth``, layers nested deeper are hidden and their computation counts as their parent's
    (``depth=0`` shows only the top-level layers). A layer whose output is a shown layer's output
    renamed (a parent that ends in its last child) is merged into that node.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: an example batch, a :class:`jax.ShapeDtypeStruct`, a shape, or ``None`` for the model's
        declared ``input_shape`` (as in :func:`visjax.inspect.summary`).
      depth: the deepest nesting level shown, or ``None`` for all layers.

    Returns:
      A :class:`Graph` (``nodes``, ``edges``, ``to_dot()``, ``to_svg()``).

    Raises:
      ValueError: ``depth`` is negative or not an int, or ``x`` has the wrong shape.
      TypeError: ``x`` has the wrong dtype.

    Example:
      >>> from visjax.zoo import digits_cnn
      >>> g = graph(digits_cnn("function"))
      >>> g.edges
      [('input', 'conv1'), ('conv1', 'conv2'), ('conv2', 'fc'), ('fc', 'output')]
    """
    depth = check_depth(depth)
    model = as_model(model)
    spec = batch_spec(model, x)
    trace = model.trace(spec)
    shapes = model.layer_shapes(spec)
    depths = layer_depths(list(trace.layers))
    visible = {k for k, d in depths.items() if depth is None or d <= depth}

    nodes: dict[str, GraphNode] = {INPUT: GraphNode(INPUT, tuple(spec.shape), str(spec.dtype))}
    edges: dict[tuple[str, str], None] = {}
    counts: dict[str, int] = {}
    node_of: dict[Any, str] = {}  # output variable of a shown layer -> its node

    def walk(jx: Any, in_src: list[frozenset[str]], record: bool) -> list[frozenset[str]]:
        src: dict[Any, frozenset[str]] = dict(zip(jx.invars, in_src, strict=True))

        def get(v: Any) -> frozenset[str]:
            return frozenset() if isinstance(v, jcore.Literal) else src.get(v, frozenset())

        for eqn in jx.eqns:
            ins = [get(v) for v in eqn.invars]
            if eqn.primitive.name == "name":
                name = eqn.params["name"]
                k = counts.get(name, 0)
                counts[name] = k + 1
                key = name if k == 0 else f"{name}#{k}"
                inner = eqn.invars[0]
                if record and key in visible:
                    if isinstance(inner, jcore.Var) and inner in node_of:
                        node = node_of[inner]  # a renamed shown output: the same node
                    else:
                        node = key
                        s = shapes.get(key)
                        nodes[key] = GraphNode(
                            key,
                            None if s is None else tuple(s.shape),
                            "" if s is None else str(s.dtype),
                        )
                        for a in ins[0]:
                            edges[(a, key)] = None
                    node_of[eqn.outvars[0]] = node
                    src[eqn.outvars[0]] = frozenset([node])
                else:
                    if isinstance(inner, jcore.Var) and inner in node_of:
                        node_of[eqn.outvars[0]] = node_of[inner]
                    src[eqn.outvars[0]] = ins[0]
                continue
            union = frozenset().union(*ins)
            subs = [getattr(j, "jaxpr", j) for j in jcore.jaxprs_in_params(eqn.params)]
            enter = len(subs) == 1 and len(subs[0].invars) == len(eqn.invars)
            enter = enter and len(subs[0].outvars) == len(eqn.outvars)
            if enter:
                outs = walk(subs[0], ins, record)
            else:
                for sub in subs:  # count the names inside (loops, branches) without edges
                    walk(sub, [union] * len(sub.invars), False)
                outs = [union] * len(eqn.outvars)
            src.update(zip(eqn.outvars, outs, strict=True))
        return [get(v) for v in jx.outvars]

    jx = trace.jaxpr.jaxpr
    in_src = [frozenset()] * (len(jx.invars) - 1) + [frozenset([INPUT])]
    out_src = walk(jx, in_src, True)
    out_leaves = jax.tree.leaves(model.output_shape(spec))
    one = len(out_leaves) == 1
    nodes[OUTPUT] = GraphNode(
        OUTPUT, tuple(out_leaves[0].shape) if one else None, str(out_leaves[0].dtype) if one else ""
    )
    for s in out_src:
        for a in s:
            edges[(a, OUTPUT)] = None
    return Graph(list(nodes.values()), list(edges))


# --------------------------------------------------------------------------- layout

_CHAR_W = 7.0  # monospace 11 px
_BOX_H = 34.0
_GAP_X = 24.0
_GAP_Y = 46.0
_LANE = 12.0
_MARGIN = 16.0


def _layers(g: Graph) -> dict[str, int]:
    order = [n.name for n in g.nodes]
    preds: dict[str, list[str]] = {n: [] for n in order}
    for a, b in g.edges:
        preds[b].append(a)
    level: dict[str, int] = {}
    for n in order:  # program order is a topological order of the data flow
        level[n] = max((level[p] + 1 for p in preds[n] if p in level), default=0)
    return level


def _order(g: Graph, level: dict[str, int]) -> list[list[str]]:
    rows: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for n in g.nodes:
        rows[level[n.name]].append(n.name)
    up: dict[str, list[str]] = {n.name: [] for n in g.nodes}
    down: dict[str, list[str]] = {n.name: [] for n in g.nodes}
    for a, b in g.edges:
        up[b].append(a)
        down[a].append(b)
    for sweep in range(4):
        pos = {n: i / max(len(r), 1) for r in rows for i, n in enumerate(r)}
        nbrs = up if sweep % 2 == 0 else down
        indices = range(len(rows)) if sweep % 2 == 0 else reversed(range(len(rows)))
        for i in indices:
            row = rows[i]
            keys = {
                n: sum(pos[m] for m in nbrs[n]) / len(nbrs[n]) if nbrs[n] else pos[n] for n in row
            }
            row.sort(key=lambda n: keys[n])
            pos.update({n: j / max(len(row), 1) for j, n in enumerate(row)})
    return rows


def _svg(g: Graph) -> str:
    labels = g._labels()
    level = _layers(g)
    rows = _order(g, level)
    width = {n: max(len(a), len(b)) * _CHAR_W + 16 for n, (a, b) in labels.items()}
    row_w = [sum(width[n] for n in r) + _GAP_X * max(len(r) - 1, 0) for r in rows]
    inner_w = max(row_w, default=0.0)
    xy: dict[str, tuple[float, float]] = {}
    for i, r in enumerate(rows):
        x = _MARGIN + (inner_w - row_w[i]) / 2
        for n in r:
            xy[n] = (x + width[n] / 2, _MARGIN + i * (_BOX_H + _GAP_Y))
            x += width[n] + _GAP_X
    long_edges = [(a, b) for a, b in g.edges if level[b] - level[a] > 1]
    lane0 = _MARGIN + inner_w + _LANE
    total_w = lane0 + _LANE * len(long_edges) + _MARGIN
    total_h = 2 * _MARGIN + len(rows) * _BOX_H + max(len(rows) - 1, 0) * _GAP_Y
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{total_h:.0f}" '
        f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" font-family="monospace" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    lane = {e: lane0 + _LANE * i for i, e in enumerate(long_edges)}
    for a, b in g.edges:
        (x1, y1), (x2, y2) = xy[a], xy[b]
        y1 += _BOX_H
        if (a, b) in lane:
            xr, h = lane[(a, b)], _GAP_Y / 2
            d = (
                f"M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + h:.1f} {xr:.1f} {y1:.1f} {xr:.1f} "
                f"{y1 + h:.1f} L {xr:.1f} {y2 - h:.1f} C {xr:.1f} {y2:.1f} {x2:.1f} {y2 - h:.1f} "
                f"{x2:.1f} {y2:.1f}"
            )
        else:
            my = (y1 + y2) / 2
            d = f"M {x1:.1f} {y1:.1f} C {x1:.1f} {my:.1f} {x2:.1f} {my:.1f} {x2:.1f} {y2:.1f}"
        out.append(
            f'<path d="{d}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)"/>'
        )
    for n, (x, y) in xy.items():
        label, shape = labels[n]
        w = width[n]
        fill = "#eef3fb" if n in (INPUT, OUTPUT) else "#ffffff"
        out.append(
            f'<g><title>{html.escape(label)}</title><rect x="{x - w / 2:.1f}" y="{y:.1f}" '
            f'width="{w:.1f}" height="{_BOX_H:.0f}" rx="4" fill="{fill}" stroke="#333"/>'
            f'<text x="{x:.1f}" y="{y + 14:.1f}" text-anchor="middle">{html.escape(label)}</text>'
            f'<text x="{x:.1f}" y="{y + 27:.1f}" text-anchor="middle" fill="#666">'
            f"{html.escape(shape)}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out)
