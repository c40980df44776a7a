"""The demo report's model and training sections, on the digits CNN.

Each section is a function ``build(ctx) -> Section`` (``ctx`` a :class:`DemoContext`); the demo's
sections, in report order, are listed in :data:`visjax.report.demo.SECTIONS`. Each section's
``quick`` run should stay within about 10 s on 2 CPU cores, so the demo test stays fast as sections
are added.
"""

from __future__ import annotations

import jax.numpy as jnp

from visjax.base.io import atomic_write_text, save_figure
from visjax.inspect import summary
from visjax.plot import training_curves
from visjax.report.context import DemoContext
from visjax.report.html import Section


def model_section(ctx: DemoContext) -> Section:
    """The digits CNN's layer table: paths, activation shapes, parameter counts."""
    model = ctx.digits_cnn.model
    table = summary(model, jnp.zeros((1, 8, 8, 1), jnp.float32)).to_text()
    atomic_write_text(ctx.out / "summary.txt", table + "\n")
    return Section(
        "Model",
        "The digits CNN as a Flax NNX module, seen through visjax's model interface: layer "
        "paths, activation shapes for one example, parameter counts.",
        preformatted=[table],
    )


def training_section(ctx: DemoContext) -> Section:
    """The digits CNN's training curves."""
    result = ctx.digits_cnn
    h = result.history
    fig = save_figure(training_curves(h, title="digits CNN"), ctx.out / "training_curves.png")
    return Section(
        "Training",
        f"Adam (lr 1e-2), batch 64, {len(h.train_loss)} epochs, seed {ctx.seed}"
        f"{' (weights from the cache)' if result.from_cache else ''}. Final test accuracy "
        f"{h.test_accuracy[-1]:.2%} on 450 held-out digits.",
        figures=[fig],
    )
