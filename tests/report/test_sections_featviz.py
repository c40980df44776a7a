"""The DeepDream and top-activating-examples section, built quick into a temporary folder."""

from pathlib import Path

import pytest

from visjax.report.context import DemoContext
from visjax.report.featviz import dream_section
from visjax.report.html import Figure


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return DemoContext(out=tmp_path_factory.mktemp("report"), quick=True, log=lambda _: None)


def _path(fig):
    """A section's figure entry as a path (a plain path or a captioned Figure)."""
    return Path(fig.path if isinstance(fig, Figure) else fig)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_dream_section_writes_top_activating_and_deepdream_figures(ctx):
    section = dream_section(ctx)
    assert [_path(f).name for f in section.figures] == [
        "featviz_top_activating.png",
        "featviz_deepdream.png",
    ]
    assert all(_path(f).stat().st_size > 1000 for f in section.figures)
    assert "each row holds the 6 test images (of 600)" in section.text
    assert "3 octaves x 8 gradient steps" in section.text
