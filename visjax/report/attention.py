"""The demo report's attention section: the tiny ViT on the digits and the text transformer on
the marked-token task, whose answer lies in one known token.

The ViT (:func:`visjax.zoo.digits_vit`) is trained through the weight cache (10 epochs if quick,
else 30, the schedule of :mod:`visjax.zoo.vit`); the text model is
:func:`visjax.zoo.trained_text_transformer`. The section draws the ViT's head × layer grid,
its rollout over the patch grid upsampled to the image, the text model's attention, its rollout
against the marked token, and writes the interactive HTML view of one sequence.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from visjax.attention import attention_maps, attention_rollout
from visjax.base.io import save_figure
from visjax.plot.attention import (
    attention_grid,
    attention_heatmap,
    attention_html,
    patch_attention,
    token_scores,
)
from visjax.report.context import DemoContext
from visjax.report.html import Section
from visjax.zoo import load_digits, make_marked, trained_text_transformer
from visjax.zoo.pretrained import trained_digits_vit


def attention_section(ctx: DemoContext) -> Section:
    """Attention maps and rollout on the ViT and on the text model (marked token)."""
    # The zoo's trained digits ViT (Adam, cosine decay from 1e-2); the quick demo trains 10 epochs.
    vit = trained_digits_vit(seed=ctx.seed, epochs=10 if ctx.quick else 30, cache=ctx.cache)
    ctx.log(f"digits ViT: test accuracy {vit.history.test_accuracy[-1]:.2%}")
    digits = load_digits().test
    x = jnp.asarray(digits.x[:6])
    maps = np.asarray(attention_maps(vit.model, x))
    roll = np.asarray(attention_rollout(vit.model, x))
    grid_png = save_figure(
        attention_grid(maps[0], layer_names=["block 0", "block 1"]), ctx.out / "attn_vit_grid.png"
    )
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads with the first figure

    fig = Figure(figsize=(2.2 * len(x), 2.4), layout="constrained")
    for i, ax in enumerate(fig.subplots(1, len(x))):
        patch_attention(digits.x[i], roll[i], ax=ax, title=f"digit {int(digits.y[i])}")
    vit_png = save_figure(fig, ctx.out / "attn_vit_rollout.png")

    text = trained_text_transformer(seed=ctx.seed, cache=ctx.cache)
    data = make_marked()
    n = 128 if ctx.quick else 1024
    tx, pos = data.test.x[:n], data.position[:n]
    tmaps = np.asarray(attention_maps(text.model, tx))
    troll = np.asarray(attention_rollout(text.model, tx))
    hit_roll = float((troll.argmax(1) + 1 == pos).mean())
    hit_attn = float((tmaps[:, :, :, 0, 1:].max((1, 2)).argmax(1) + 1 == pos).mean())
    tokens = ["CLS"] + [
        f"*{int(t) - 1}*" if 1 <= t <= data.num_classes else f"w{int(t)}" for t in tx[0, 1:]
    ]
    heat_png = save_figure(
        attention_heatmap(tmaps[0].mean(1)[0], tokens=tokens, title="block 0, mean of heads"),
        ctx.out / "attn_text_heatmap.png",
    )
    fig = Figure(figsize=(7, 2.4), layout="constrained")
    for i, ax in enumerate(fig.subplots(3, 1)):
        toks = ["CLS"] + [str(int(t)) for t in tx[i, 1:]]
        token_scores(toks, np.r_[0.0, troll[i]], highlight=int(pos[i]), ax=ax)
    tok_png = save_figure(fig, ctx.out / "attn_text_rollout.png")
    html = attention_html(
        ctx.out / "attention_text.html", tmaps[0], tokens=tokens, title="Text model attention"
    )
    summary = (
        f"{'text model, ' + str(n) + ' test sequences':<40}{'share on marked token':>22}\n"
        f"{'rollout argmax':<40}{hit_roll:>22.0%}\n"
        f"{'class-token attention argmax (any head)':<40}{hit_attn:>22.0%}\n"
        f"{'chance':<40}{1 / (data.train.x.shape[1] - 1):>22.0%}"
    )
    body = (
        "Attention weights are the values a model tags with a path ending in `attn_weights`; "
        "visjax.attention reads them in one forward. Top: the tiny ViT on the digits "
        f"(test accuracy {vit.history.test_accuracy[-1]:.1%}): every head of both blocks for one "
        "digit (rows: queries, columns: keys, token 0 the class token), and attention rollout "
        "(Abnar & Zuidema 2020) of the class token over the 4 x 4 patches, upsampled over each "
        "image.\n\n"
        "Bottom: the text transformer on the marked-token task: each sequence holds one marked "
        "token (shown as *c*, its class c is the label) among random distractors, so the "
        "right explanation is known. Rollout and the class token's attention light up the "
        "marked token (blue box) in most sequences (table). The interactive head/model view of "
        f"the first sequence is `{html.name}` beside this report (self-contained, no network)."
    )
    return Section(
        "Attention",
        body,
        figures=[
            (grid_png, "ViT: attention of every head and block, one digit."),
            (vit_png, "ViT: attention rollout over the patch grid, upsampled to the image."),
            (heat_png, "Text model: token-to-token attention, block 0, mean over heads."),
            (tok_png, "Text model: rollout per token; the marked token is boxed."),
        ],
        preformatted=[summary],
    )
