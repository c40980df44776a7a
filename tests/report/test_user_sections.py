"""The CAM, embedding, perturbation, featviz and landscape sections on a user's model: a tiny
tagged-function CNN on random 16 x 16 RGB images with 3 classes, through
:func:`visjax.report.write`. The layers come from the model, the wording names no digits, and the
embedding has no untrained panel."""

import html
import re

import numpy as np
from PIL import Image

import visjax.report
from tests.report.tiny_models import tagged_cnn
from visjax.report import embed as embed_module
from visjax.report.demo import select_sections
from visjax.report.layers import spatial_layers


def _rgb_cnn():
    """RGB 16 x 16 inputs, 3 classes; layers stem, features, pooled, logits."""
    return tagged_cnn(channels=3, classes=3, size=16)


def _section_text(page: str, anchor: str) -> str:
    """The text of the section with ``id=anchor`` (up to the next section), tags removed."""
    body = page.split(f'id="{anchor}"', 1)[1].split("<section", 1)[0]
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def _write(tmp_path, sections, *, n, seed):
    """The quick report of the tiny RGB CNN on ``n`` random images (the first 40 for training):
    its page and log lines."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 3, n)
    lines = []
    report = visjax.report.write(
        tmp_path,
        model=_rgb_cnn(),
        data=(x[:40], y[:40], x[40:], y[40:]),
        sections=sections,
        quick=True,
        log=lines.append,
        progress=False,
    )
    return report.read_text(), lines


def test_cam_and_embed_are_in_the_default_sections():
    names = [s.name for s in select_sections() if not s.demo_only]
    assert "cam" in names and "embed" in names


def test_write_builds_cam_and_embed_for_a_user_model(tmp_path, monkeypatch):
    monkeypatch.setattr(embed_module, "QUICK_POINTS", 40)  # 60 held-out images: a subset of 40
    page, lines = _write(tmp_path, ["cam", "embed"], n=100, seed=1)
    assert not any("skipped" in line or "failed" in line for line in lines), lines
    cam, emb = _section_text(page, "cam"), _section_text(page, "embed")
    assert "at layer `features`" in cam and "(16 x 16) map" in cam
    assert re.search(r"on the same [1-6] test images?;", cam), cam
    assert "penultimate layer (pooled:" in emb and "6-D vectors" in emb
    assert "40 examples (a random 40 of 60)" in emb
    assert "No untrained panel" in emb and "untrained:" not in emb
    for text in (cam, emb):
        assert "digit" not in text and "stroke" not in text
    assert (tmp_path / "cam.png").stat().st_size > 1000
    with Image.open(tmp_path / "embed_tsne.png") as im:
        assert im.size[0] < 1.5 * im.size[1]  # one map, not two side by side


def test_perturbation_featviz_and_landscape_are_in_the_default_sections():
    names = [s.name for s in select_sections() if not s.demo_only]
    assert {"perturbation", "featviz", "landscape"} <= set(names)
    assert "trajectory" not in names and "dream" not in names


def test_write_builds_perturbation_featviz_and_landscape_for_a_user_model(tmp_path):
    page, lines = _write(tmp_path, ["perturbation", "featviz", "landscape"], n=60, seed=2)
    assert not any("skipped" in line or "failed" in line for line in lines), lines
    pert = _section_text(page, "perturbation")
    feat = _section_text(page, "featviz")
    land = _section_text(page, "landscape")
    assert "16 features of 4 x 4 pixels (baseline 0)" in pert
    assert "5 x 5 window with stride 2" in pert
    assert re.search(r"on the same [1-6] test images?,", pert), pert
    assert "first 3 class logits (of 3)" in feat and "colour-decorrelated 16 x 16" in feat
    assert "6 channels (of 6) of `features`" in feat and "`stem`'s feature maps" in feat
    assert "11x11 points" in land and "all 40 training examples" in land
    assert "No line from the initial to the trained weights" in land
    for text in (pert, feat, land):
        assert "digit" not in text and "stroke" not in text and "shapes CNN" not in text
    for name in (
        "perturbation.png",
        "featviz_classes.png",
        "featviz_channels.png",
        "featviz_maps.png",
        "landscape/contour.png",
        "landscape/surface3d.png",
    ):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert not (tmp_path / "featviz_filters.png").exists()  # a tagged function: no kernel


def test_spatial_layers_in_forward_order():
    x = np.zeros((1, 16, 16, 3), np.float32)
    assert spatial_layers(_rgb_cnn(), x) == ["stem", "features"]
