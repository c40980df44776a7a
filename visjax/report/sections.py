"""The report's model and training sections, on any classifier (the demo: the digits CNN).

The model section lives in :mod:`visjax.report.model` and is re-exported here.

Each section is a function ``build(ctx) -> Section`` (``ctx`` a
:class:`~visjax.report.context.ReportContext`); the sections, in report order, are listed in
:data:`visjax.report.demo.SECTIONS`. Each section's ``quick`` run should stay within about 10 s on
2 CPU cores, so the demo test stays fast as sections are added. A section that does not apply to
a run raises :class:`~visjax.report.context.SkipSection` with the reason.
"""

from __future__ import annotations

from visjax.base.io import save_figure
from visjax.plot import training_curves
from visjax.report.context import ReportContext, SkipSection
from visjax.report.html import Figure, Section
from visjax.report.model import model_section as model_section


def training_section(ctx: ReportContext) -> Section:
    """The training curves: loss and accuracy per epoch, train against held-out."""
    h = ctx.history
    if h is None or not h.train_loss:
        raise SkipSection("no training history (pass history= to write the training section)")
    fig = save_figure(training_curves(h, title="training"), ctx.out / "training_curves.png")
    final = (
        f" Final held-out accuracy {h.test_accuracy[-1]:.2%} on {len(ctx.test.y):,} examples."
        if h.test_accuracy
        else ""
    )
    note = f" {ctx.training_note}" if ctx.training_note else ""
    return Section(
        "Training",
        f"Loss (left) and accuracy (right) after each of {len(h.train_loss)} epochs, on the "
        f"training data and on the held-out data.{note}{final} Held-out loss rising while the "
        "training loss still falls is over-fitting; both flat and high is under-fitting.",
        figures=[
            Figure(
                fig,
                "Training curves: cross-entropy and accuracy per epoch, train vs held-out.",
            )
        ],
    )
