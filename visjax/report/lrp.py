"""The report's "Layer-wise relevance propagation" section: the four presets, and conservation.

For a few held-out examples (4 in the quick run, 8 in the full one), each explained for the class
the model predicts, :func:`visjax.attribution.lrp.lrp_layers` runs once per preset (EpsilonPlus,
EpsilonAlpha2Beta1, EpsilonPlusFlat, EpsilonGammaBox with the data's range as its bounds) and gives
the input relevance, drawn as signed heatmaps side by side, and every layer's, summed per example:
the conservation curve from the input to the output (the output relevance is 1 at the predicted
logit). Inference BatchNorms are merged into their layers first, as
:func:`~visjax.attribution.lrp.lrp` does. A model with an operation LRP has no rule for skips
the section (the reason shown).

Cost: four compiled LRP programs (one per preset, each giving the input's and every layer's
relevance) and two figures: the quick run on the digits CNN took 2.6 s on 2 CPU cores (load ~3)
and 9.2 s under load ~8 (about 1.4 s per preset, most of it compiling, and 0.9 s for the
figures), 2026-12-05.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from visjax.attribution.lrp import (
    epsilon_alpha2_beta1,
    epsilon_gamma_box,
    epsilon_plus,
    epsilon_plus_flat,
    lrp_layers,
)
from visjax.base.io import save_figure
from visjax.plot.lrp import conservation_curve, relevance_heatmaps
from visjax.report.context import ReportContext, SkipSection
from visjax.report.html import Figure, Section


def lrp_section(ctx: ReportContext) -> Section:
    """Signed LRP heatmaps of the four presets and the per-layer conservation curve."""
    n = 4 if ctx.quick else 8
    x = jnp.asarray(ctx.test.x[:n])
    low, high = float(np.min(ctx.test.x)), float(np.max(ctx.test.x))
    composites = {
        "EpsilonPlus": epsilon_plus(),
        "EpsilonAlpha2Beta1": epsilon_alpha2_beta1(),
        "EpsilonPlusFlat": epsilon_plus_flat(),
        "EpsilonGammaBox": epsilon_gamma_box(low, high),
    }
    pred = np.asarray(jnp.argmax(ctx.model(x), -1))
    heatmaps, sums, layers = {}, {}, None
    for name, comp in composites.items():
        try:
            rel = lrp_layers(ctx.model, x, jnp.asarray(pred), composite=comp)
        except ValueError as e:
            raise SkipSection(f"LRP does not apply to this model: {e}") from e
        heatmaps[name] = np.asarray(rel["input"])
        order = ["input", *[k for k in rel if k != "input"]]
        layers = order if layers is None else layers
        sums[name] = np.stack([np.asarray(rel[k]).reshape(n, -1).sum(1) for k in layers])
    titles = [f"predicted {p}, label {int(y)}" for p, y in zip(pred, ctx.test.y[:n], strict=True)]
    heat = save_figure(relevance_heatmaps(x, heatmaps, titles=titles), ctx.out / "lrp_heatmaps.png")
    curve = save_figure(
        conservation_curve(sums, layers=layers, title="sum of relevance per layer"),
        ctx.out / "lrp_conservation.png",
    )
    leak = {k: float(np.mean(s[0])) for k, s in sums.items()}
    leaks = ", ".join(f"{k} {v:.3f}" for k, v in leak.items())
    return Section(
        "Layer-wise relevance propagation",
        "Layer-wise relevance propagation (LRP) passes the predicted logit's relevance (1) back "
        "through the network layer by layer, each layer by its composite's rule, so that it is "
        "(nearly) conserved: the relevance at each layer sums to the output's, minus what biases "
        "and the ε stabilizers absorb. The presets differ in their rules for convolutions: z⁺ "
        "(EpsilonPlus: positive evidence only), α2β1 (EpsilonAlpha2Beta1: positive and negative "
        "evidence), z⁺ with a flat first layer (EpsilonPlusFlat: coarse, smooth maps) and γ with "
        "a z-box first layer bounded by the data's range (EpsilonGammaBox).",
        figures=[
            Figure(
                heat,
                f"Input relevance of the four LRP presets for {n} held-out examples, each for the "
                "predicted class; red positive, blue negative, each map on its own symmetric "
                "scale (channels summed).",
            ),
            Figure(
                curve,
                "Relevance summed per layer (mean over the examples, their range shaded), from "
                "the input (left) to the logits (right, 1 at the predicted class); the dashed "
                f"line is the output relevance. Mean input relevance: {leaks}.",
            ),
        ],
    )
