"""The "Layer-wise relevance propagation" section, built quick on a small model."""

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visjax import as_model
from visjax.report.context import ReportContext, SkipSection
from visjax.report.demo import SECTIONS
from visjax.report.lrp import lrp_section
from visjax.zoo import Split, digits_cnn, digits_resnet, load_digits


def _ctx(tmp_path, model):
    data = load_digits()
    return ReportContext(
        tmp_path,
        model=model,
        train=data.train,
        test=Split(data.test.x[:16], data.test.y[:16]),
        num_classes=10,
        quick=True,
        log=lambda _: None,
    )


def test_lrp_section_is_registered():
    (spec,) = [s for s in SECTIONS if s.name == "lrp"]
    assert spec.build is lrp_section and not spec.demo_only
    names = [s.name for s in SECTIONS]
    assert names.index("attribution") < names.index("lrp")


@pytest.mark.parametrize("model", ["cnn", "resnet_bn"])
def test_lrp_section_figures_and_conservation(tmp_path, model):
    m = digits_cnn("nnx", seed=1) if model == "cnn" else digits_resnet(norm=True, seed=1)
    t0 = time.perf_counter()
    section = lrp_section(_ctx(tmp_path, m))
    took = time.perf_counter() - t0
    assert section.title == "Layer-wise relevance propagation"
    heat, curve = section.figures
    assert Path(heat.path).name == "lrp_heatmaps.png"
    assert Path(curve.path).name == "lrp_conservation.png"
    with Image.open(heat.path) as im:
        assert im.size[0] > im.size[1]  # five columns, four rows
    for name in ("EpsilonPlus", "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonGammaBox"):
        assert name in curve.caption
    sums = dict(re.findall(r"(Epsilon\w+) (-?\d+\.\d+)", curve.caption))
    assert all(np.isfinite(float(v)) for v in sums.values())
    if model == "cnn":
        assert took < 60  # quick: four compiled programs (see visjax.report.lrp)


def test_lrp_section_skips_a_model_without_rules(tmp_path):
    import jax.numpy as jnp

    m = as_model(lambda p, x: jnp.sin(x.reshape(x.shape[0], -1) @ p), jnp.ones((64, 10)))
    with pytest.raises(SkipSection, match="LRP does not apply"):
        lrp_section(_ctx(tmp_path, m))
