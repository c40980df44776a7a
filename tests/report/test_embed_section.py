"""The "Embeddings" section: t-SNE of the digits CNN's penultimate layer, built quick."""

import re
from pathlib import Path

import pytest
from PIL import Image

from visjax.report.context import DemoContext
from visjax.report.demo import SECTIONS
from visjax.report.embed import embed_section


def test_embed_section_is_registered():
    (spec,) = [s for s in SECTIONS if s.name == "embed"]
    assert spec.title == "Embeddings" and spec.build is embed_section and not spec.demo_only


@pytest.mark.slow  # trains the digits CNN (15 epochs) unless cached, then two t-SNEs
def test_embed_section_before_and_after_training(tmp_path):
    ctx = DemoContext(out=tmp_path, quick=True, log=lambda _: None)
    section = embed_section(ctx)
    assert section.title == "Embeddings"
    (figure,) = section.figures
    path = Path(figure.path)
    assert path == tmp_path / "embed_tsne.png"
    with Image.open(path) as im:
        assert im.size[0] > 1.8 * im.size[1]  # two maps side by side
    numbers = re.search(
        r"Trustworthiness .*?: ([\d.]+) untrained, ([\d.]+) trained; .*?accuracy in the embedding: "
        r"([\d.]+)% untrained, ([\d.]+)% trained",
        figure.caption,
    )
    assert numbers, figure.caption
    t0, t1, a0, a1 = map(float, numbers.groups())
    assert 0.5 < t0 <= 1 and 0.9 < t1 <= 1
    assert a1 > 90 and a1 > a0  # training separates the classes in the penultimate layer
