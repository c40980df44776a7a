"""The Model section on the demo's model, built quick into a temporary folder."""

from pathlib import Path

import pytest

from visjax.report.context import DemoContext
from visjax.report.html import Figure, write_report
from visjax.report.model import model_section


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return DemoContext(out=tmp_path_factory.mktemp("report"), quick=True, log=lambda _: None)


def test_model_section_renders_table_graph_weights_and_dead_units(ctx):
    section = model_section(ctx)
    names = [Path(f.path if isinstance(f, Figure) else f).name for f in section.figures]
    assert names == ["model_graph.svg", "model_weights.png", "model_activations.png"]
    assert all((ctx.out / n).stat().st_size > 1000 for n in names)
    assert (ctx.out / "model_graph.svg").read_text().startswith("<svg")
    assert "conv1" in (ctx.out / "model_graph.dot").read_text()
    assert "<table" in (ctx.out / "summary.html").read_text()
    assert "conv2" in section.preformatted[0] and "total" in section.preformatted[0]
    assert "Dead units (never active over 200 held-out examples) per layer: conv1:" in section.text
    page = write_report(ctx.out / "report.html", [section]).read_text()
    assert 'src="model_graph.svg"' in page and "Dead units" in page
