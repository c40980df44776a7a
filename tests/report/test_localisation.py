"""The localisation section (objects with exact masks), built quick into a temporary folder."""

import re
from pathlib import Path

import numpy as np
import pytest

from visjax.report.context import DemoContext
from visjax.report.localisation import localisation_section, mass_in_mask, pointing_hits


def test_mass_in_mask_counts_positive_mass_inside():
    maps = np.zeros((3, 4, 4))
    maps[0, :2, :2] = 1.0  # all inside
    maps[1] = 1.0  # even: the mask's share of the image
    maps[2] = -1.0  # no positive mass
    maps[1, 3, 3] = -5.0  # negative values are left out
    masks = np.zeros((3, 4, 4), bool)
    masks[:, :2, :2] = True
    share = mass_in_mask(maps, masks)
    np.testing.assert_allclose(share[:2], [1.0, 4 / 15])
    assert np.isnan(share[2])
    # channels are summed (signed) first
    np.testing.assert_allclose(mass_in_mask(np.stack([maps, -maps / 2], -1), masks)[:2], share[:2])
    assert pointing_hits(maps[:1], masks[:1]).tolist() == [True]
    with pytest.raises(ValueError, match="masks"):
        mass_in_mask(maps, masks[:, :3])


@pytest.mark.slow
def test_localisation_section_writes_figures_and_table(tmp_path):
    ctx = DemoContext(out=tmp_path, quick=True, log=lambda _: None)
    section = localisation_section(ctx)
    paths = [Path(f[0]) for f in section.figures]
    assert [p.name for p in paths] == [
        "localisation_cam.png",
        "localisation_attribution.png",
        "localisation_dff.png",
    ]
    assert all(p.stat().st_size > 1000 for p in paths)
    table, dff_table = section.preformatted
    dff = [float(line.split()[-1].rstrip("%")) for line in dff_table.splitlines()[2:]]
    # the concept tied to the true class covers the object: well above chance and the others
    assert dff[0] > 2 * dff[-1] and dff[0] > max(dff[1:-1]), dff_table
    agree = float(re.search(r"true class on ([\d.]+)%", section.text).group(1))
    assert agree > 60
    rows = {line[:16].strip(): line[16:].split() for line in table.splitlines()[2:]}
    assert list(rows) == ["Grad-CAM", "HiResCAM", "IG (16)", "occlusion 4x4", "even map"]
    share = {k: float(v[0].rstrip("%")) for k, v in rows.items()}
    # every map beats an even one by a wide margin on a trained model
    assert all(share[k] > 2 * share["even map"] for k in list(share)[:-1]), share
    acc = float(re.search(r"test accuracy ([\d.]+)%", section.text).group(1))
    assert acc > 90
    assert "8 x 8 digits" in section.text
