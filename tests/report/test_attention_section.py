"""The attention section (ViT and text model), built quick into a temporary folder."""

import re
from pathlib import Path

import pytest

from visjax.report.attention import attention_section
from visjax.report.context import DemoContext
from visjax.report.demo import section_names


def test_registered():
    assert "attention" in section_names()


@pytest.mark.slow
def test_attention_section_writes_figures_html_and_table(tmp_path):
    ctx = DemoContext(out=tmp_path, quick=True, log=lambda _: None)
    section = attention_section(ctx)
    paths = [Path(f[0]) for f in section.figures]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert (tmp_path / "attention_text.html").stat().st_size > 1000
    (table,) = section.preformatted
    share = float(re.search(r"rollout argmax\s+(\d+)%", table).group(1))
    assert share >= 90  # the marked token lights up
