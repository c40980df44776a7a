"""The attribution and CAM sections with guided backprop, deconvnet, DeepLIFT, HiResCAM and
guided Grad-CAM, built quick into a temporary folder."""

import re
from pathlib import Path

import pytest

from visjax.report.attribution import attribution_section, cam_section
from visjax.report.context import DemoContext
from visjax.report.html import Figure


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return DemoContext(out=tmp_path_factory.mktemp("report"), quick=True, log=lambda _: None)


def _path(fig):
    """A section's figure entry as a path (a plain path or a captioned Figure)."""
    return Path(fig.path if isinstance(fig, Figure) else fig)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_attribution_section_has_gradient_and_shared_scale_figures(ctx):
    section = attribution_section(ctx)
    assert [_path(f).name for f in section.figures] == ["attribution.png", "attribution_shared.png"]
    assert all(_path(f).stat().st_size > 1000 for f in section.figures)
    for name in ("guided backprop", "deconvnet", "DeepLIFT", "one shared scale"):
        assert name in section.text
    # DeepLIFT's attributions sum to f(x) - f(0) up to float rounding.
    gap = re.search(r"DeepLIFT's sum minus f\(x\) - f\(0\): at most (\S+)\.", section.text)
    assert gap and float(gap.group(1)) < 1e-3


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_cam_section_adds_hirescam_and_guided_grad_cam(ctx):
    section = cam_section(ctx)
    assert _path(section.figures[0]).stat().st_size > 1000
    for name in ("HiResCAM", "guided Grad-CAM"):
        assert re.search(rf"{name} \d+%", section.text), name
