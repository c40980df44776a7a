"""The curvature and training-trajectory sections, built quick into a temporary folder."""

import re
from pathlib import Path

import pytest

from visjax.report.context import DemoContext
from visjax.report.curvature import curvature_section
from visjax.report.html import Figure
from visjax.report.landscape import trajectory_section


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return DemoContext(out=tmp_path_factory.mktemp("report"), quick=True, log=lambda _: None)


def _path(fig):
    """A section's figure entry as a path (a plain path or a captioned Figure)."""
    return Path(fig.path if isinstance(fig, Figure) else fig)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_curvature_section_reports_top_eigenvalues(ctx):
    section = curvature_section(ctx)
    assert _path(section.figures[0]).name == "curvature_density.png"
    assert _path(section.figures[0]).stat().st_size > 1000
    found = re.search(
        r"Top 3 eigenvalues \(Lanczos, .*? products\): (.+?)\. The density", section.text
    )
    assert found, section.text
    top = [float(v) for v in found.group(1).split(", ")]
    assert len(top) == 3 and top == sorted(top, reverse=True) and top[0] > 0


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_trajectory_section_draws_the_path_in_its_pca_plane(ctx):
    section = trajectory_section(ctx)
    assert _path(section.figures[0]).name == "landscape_trajectory.png"
    assert _path(section.figures[0]).stat().st_size > 1000
    assert "16 checkpoints" in section.text  # 15 quick epochs and the initial weights
    found = re.search(r"explain ([\d.]+)% and ([\d.]+)%", section.text)
    first, second = float(found.group(1)), float(found.group(2))
    assert 0 < second <= first < 100
