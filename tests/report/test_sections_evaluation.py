"""The report's data and evaluation sections, built quick into a temporary folder."""

from pathlib import Path

import numpy as np
import pytest

from visjax import evaluation as ev
from visjax.report.context import DemoContext
from visjax.report.data import data_section
from visjax.report.evaluation import evaluation_section
from visjax.report.html import Figure


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return DemoContext(out=tmp_path_factory.mktemp("report"), quick=True, log=lambda _: None)


def _path(fig):
    """A section's figure entry as a path (a plain path or a captioned Figure)."""
    return Path(fig.path if isinstance(fig, Figure) else fig)


def _figures_exist(section):
    assert section.figures
    for fig in section.figures:
        assert _path(fig).stat().st_size > 1000, fig


def test_data_section_shows_counts_and_pixel_statistics(ctx):
    section = data_section(ctx)
    _figures_exist(section)
    assert [_path(f).name for f in section.figures] == [
        "data_samples.png",
        "data_balance.png",
        "data_pixels.png",
    ]
    assert f"{len(ctx.train.y)} training and {len(ctx.test.y)} test examples" in section.text
    counts = np.bincount(ctx.train.y)
    assert f"({counts.min()} to {counts.max()} training examples per class)" in section.text
    assert f"{ctx.train.x.mean():.3f} \u00b1 {ctx.train.x.std():.3f}" in section.text


def test_evaluation_section_reports_accuracy_auc_and_ece(ctx):
    section = evaluation_section(ctx)
    _figures_exist(section)
    assert len(section.figures) == 6
    logits = np.asarray(ctx.model(ctx.test.x), np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    y = ctx.test.y
    accuracy = (probs.argmax(1) == y).mean()
    assert f"the model is {accuracy:.2%} accurate" in section.text
    assert f"expected calibration error {ev.expected_calibration_error(y, probs):.4f}" in (
        section.text
    )
    assert f"macro ROC AUC {ev.roc_auc(y, probs):.4f}" in section.text
    assert f"precision {ev.average_precision(y, probs):.4f}" in section.text
