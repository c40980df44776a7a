"""Attention pictures: head × layer grids, token-to-token heatmaps, ViT maps over the image, and
a self-contained interactive HTML view (BertViz's head and model views without a notebook).

Arrays in: ``maps`` are one example's attention weights ``(L, H, T, T)`` (a row of
:func:`visjax.attention.attention_maps`), ``scores`` a per-token explanation ``(T − 1,)`` (a row of
:func:`visjax.attention.attention_rollout`). NaN/Inf cells are drawn blank (masked).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visjax.base.io import atomic_write_text
from visjax.plot._figure import new_axes, new_figure
from visjax.plot.cam import cam_overlay

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def _maps(maps: Any) -> np.ndarray:
    m = np.asarray(maps, np.float64)
    if m.ndim != 4 or m.shape[-1] != m.shape[-2] or m.shape[-1] < 1:
        raise ValueError(f"`maps` must be one example's weights (L, H, T, T), got shape {m.shape}")
    return m


def _tokens(tokens: Sequence[Any] | None, t: int) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(t)]
    tokens = [str(s) for s in tokens]
    if len(tokens) != t:
        raise ValueError(f"`tokens` must have {t} entries (one per token), got {len(tokens)}")
    return tokens


def attention_heatmap(
    attention: Any,
    *,
    tokens: Sequence[Any] | None = None,
    cmap: str = "viridis",
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (4.0, 3.6),
) -> Figure | SubFigure:
    """A token-to-token heatmap of one attention matrix ``(T, T)`` (rows: queries, columns: keys),
    with a colour bar; ``tokens`` label the axes (indices by default)."""
    a = np.asarray(attention, np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"`attention` must be a square matrix (T, T), got shape {a.shape}")
    labels = _tokens(tokens, a.shape[0])
    fig, ax = new_axes(ax, figsize)
    im = ax.imshow(np.ma.masked_invalid(a), cmap=cmap, vmin=0)
    ticks = np.arange(a.shape[0])
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def attention_grid(
    maps: Any,
    *,
    layer_names: Sequence[str] | None = None,
    cmap: str = "viridis",
    fig: Figure | SubFigure | None = None,
    cell: float = 1.6,
) -> Figure | SubFigure:
    """A head × layer grid of one example's attention ``(L, H, T, T)``: one row per layer, one
    column per head, each cell a ``T × T`` heatmap on a shared ``[0, max]`` colour scale."""
    m = _maps(maps)
    n_layers, heads = m.shape[:2]
    names = (
        list(layer_names) if layer_names is not None else [f"layer {i}" for i in range(n_layers)]
    )
    if len(names) != n_layers:
        raise ValueError(f"`layer_names` must have {n_layers} entries, got {len(names)}")
    fig = new_figure(fig, (cell * heads + 0.8, cell * n_layers + 0.4), layout="constrained")
    axes = np.asarray(fig.subplots(n_layers, heads, squeeze=False))
    finite = m[np.isfinite(m)]
    vmax = float(finite.max()) if finite.size else 1.0
    im = None
    for li in range(n_layers):
        for h in range(heads):
            ax = axes[li, h]
            im = ax.imshow(np.ma.masked_invalid(m[li, h]), cmap=cmap, vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if li == 0:
                ax.set_title(f"head {h}", fontsize=8)
            if h == 0:
                ax.set_ylabel(names[li], fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    return fig


def patch_attention(
    image: Any,
    scores: Any,
    *,
    grid: tuple[int, int] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (3.2, 3.0),
) -> Figure | SubFigure:
    """A ViT's per-patch scores ``(P,)`` (class token excluded, patches row-major) reshaped to the
    patch grid (square by default), upsampled bilinearly over ``image`` and min-max scaled, as
    :func:`visjax.plot.cam_overlay` draws a CAM."""
    s = np.asarray(scores, np.float64)
    if s.ndim != 1:
        raise ValueError(f"`scores` must be one example's patch scores (P,), got shape {s.shape}")
    if grid is None:
        side = round(np.sqrt(s.size))
        if side * side != s.size:
            raise ValueError(f"`scores` has {s.size} patches, not a square grid: pass `grid=`")
        grid = (side, side)
    if grid[0] * grid[1] != s.size:
        raise ValueError(f"`grid` {grid} does not hold the {s.size} patch scores")
    return cam_overlay(
        image, s.reshape(grid), alpha=alpha, cmap=cmap, ax=ax, title=title, figsize=figsize
    )


def token_scores(
    tokens: Sequence[Any],
    scores: Any,
    *,
    highlight: int | None = None,
    cmap: str = "Reds",
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 1.2),
) -> Figure | SubFigure:
    """Tokens in a row, each cell shaded by its score ``(T,)``; ``highlight`` outlines one token
    (e.g. the ground-truth marked token)."""
    s = np.asarray(scores, np.float64)
    labels = _tokens(tokens, s.size) if s.ndim == 1 else None
    if labels is None:
        raise ValueError(f"`scores` must be one example's token scores (T,), got shape {s.shape}")
    fig, ax = new_axes(ax, figsize)
    ax.imshow(np.ma.masked_invalid(s)[None], cmap=cmap, vmin=0, aspect="auto")
    for i, tok in enumerate(labels):
        ax.text(i, 0, tok, ha="center", va="center", fontsize=7)
    if highlight is not None:
        from matplotlib.patches import Rectangle  # noqa: PLC0415 - matplotlib loads lazily

        ax.add_patch(Rectangle((highlight - 0.5, -0.5), 1, 1, fill=False, lw=2, ec="blue"))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return fig


_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:sans-serif;margin:16px}#head{position:relative}
.tok{position:absolute;font:12px monospace;padding:1px 4px;cursor:pointer;white-space:nowrap}
.tok.on{background:#fd7}#model{display:flex;flex-wrap:wrap;gap:6px;margin-top:12px}
canvas.cell{border:1px solid #ccc;cursor:pointer}canvas.cell.on{border-color:#e60}
</style></head><body>
<h3>__TITLE__</h3>
<div>layer <select id="layer"></select> head <select id="hd"></select>
<small>Hover a token to show only its attention; click a cell below to pick a layer and head.
</small></div>
<div id="head"><canvas id="lines"></canvas></div>
<div id="model"></div>
<script>
const D = __DATA__;
const L = D.maps.length, H = D.maps[0].length, T = D.tokens.length, ROW = 18, W = 360;
const layerSel = document.getElementById("layer"), headSel = document.getElementById("hd");
for (let l = 0; l < L; l++) layerSel.add(new Option(D.layers[l], l));
headSel.add(new Option("all (mean)", -1));
for (let h = 0; h < H; h++) headSel.add(new Option(h, h));
const box = document.getElementById("head"), cv = document.getElementById("lines");
cv.width = W; cv.height = T * ROW; box.style.height = T * ROW + "px";
cv.style.position = "absolute"; cv.style.left = "120px";
const left = [], right = [];
let focus = -1;
D.tokens.forEach((t, i) => {
  for (const [arr, x, align] of [[left, 0, "right"], [right, 120 + W + 4, "left"]]) {
    const e = document.createElement("span");
    e.className = "tok"; e.textContent = t; e.style.top = i * ROW + "px";
    if (align === "right") { e.style.width = "112px"; e.style.textAlign = "right"; }
    e.style.left = x + "px";
    e.onmouseenter = () => { focus = i; draw(); }; e.onmouseleave = () => { focus = -1; draw(); };
    box.appendChild(e); arr.push(e);
  }
});
function weights(l, h) {
  if (h >= 0) return D.maps[l][h];
  return D.maps[l][0].map((row, i) => row.map((_, j) => {
    let s = 0; for (let k = 0; k < H; k++) s += D.maps[l][k][i][j]; return s / H; }));
}
function draw() {
  const l = +layerSel.value, h = +headSel.value, a = weights(l, h), g = cv.getContext("2d");
  g.clearRect(0, 0, cv.width, cv.height);
  left.forEach((e, i) => e.classList.toggle("on", i === focus));
  for (let i = 0; i < T; i++) {
    if (focus >= 0 && i !== focus) continue;
    for (let j = 0; j < T; j++) {
      const w = a[i][j]; if (!(w > 0.01)) continue;
      g.strokeStyle = "rgba(30,90,200," + Math.min(1, w) + ")"; g.lineWidth = 2;
      g.beginPath(); g.moveTo(0, i * ROW + 9); g.lineTo(W, j * ROW + 9); g.stroke();
    }
  }
  document.querySelectorAll("canvas.cell").forEach(c =>
    c.classList.toggle("on", +c.dataset.l === l && (+c.dataset.h === h)));
}
const model = document.getElementById("model"), S = Math.max(2, Math.floor(96 / T));
for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) {
  const c = document.createElement("canvas"); c.className = "cell";
  c.width = c.height = S * T; c.dataset.l = l; c.dataset.h = h;
  c.title = D.layers[l] + ", head " + h;
  const g = c.getContext("2d"), a = D.maps[l][h];
  let mx = 0; a.forEach(r => r.forEach(v => { if (v > mx) mx = v; }));
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
    const v = mx > 0 ? a[i][j] / mx : 0, c8 = Math.round(255 * (1 - v));
    g.fillStyle = "rgb(" + c8 + "," + c8 + ",255)"; g.fillRect(j * S, i * S, S, S);
  }
  c.onclick = () => { layerSel.value = l; headSel.value = h; draw(); };
  model.appendChild(c);
}
layerSel.onchange = headSel.onchange = draw;
draw();
</script></body></html>
"""


def attention_html(
    path: str | os.PathLike,
    maps: Any,
    *,
    tokens: Sequence[Any] | None = None,
    layer_names: Sequence[str] | None = None,
    title: str = "Attention",
    decimals: int = 4,
) -> Path:
    """Write a self-contained interactive attention view of one example ``(L, H, T, T)``.

    The page holds BertViz's two views in plain HTML and a little vanilla JavaScript, with no
    network access and no notebook: a *head view* (tokens on both sides, a line from query ``i``
    to key ``j`` whose opacity is the weight, one layer and one head or their mean at a time;
    hovering a token keeps its lines only) and a *model view* (a small heatmap per layer and head;
    clicking one selects it). Weights are rounded to ``decimals`` places and NaN/Inf written as
    0. The file is written atomically.

    Args:
      path: the ``.html`` file to write.
      maps: one example's attention weights ``(L, H, T, T)``.
      tokens: ``T`` token labels (indices by default); HTML in them is shown as text.
      layer_names: ``L`` layer names (``"layer 0"``, ... by default).
      title: the page title.
      decimals: rounding of the embedded weights (keeps long inputs' pages small).

    Returns:
      The path written.
    """
    m = _maps(maps)
    labels = _tokens(tokens, m.shape[-1])
    names = list(layer_names) if layer_names is not None else [f"layer {i}" for i in range(len(m))]
    if len(names) != len(m):
        raise ValueError(f"`layer_names` must have {len(m)} entries, got {len(names)}")
    data = {
        "maps": np.round(np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0), decimals).tolist(),
        "tokens": labels,
        "layers": [str(n) for n in names],
    }
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    safe_title = str(title).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    html = _HTML.replace("__TITLE__", safe_title).replace("__DATA__", blob)
    return atomic_write_text(path, html)
