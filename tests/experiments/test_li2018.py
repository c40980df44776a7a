"""The Li et al. (2018) skip-connection experiment, quick mode (under a minute, 2 cores)."""

import csv

import numpy as np
import pytest

from experiments.li2018_skip_connections.run import run


@pytest.mark.slow  # end to end: trains two ResNets and sweeps their planes
def test_quick_run_writes_figures_and_table(tmp_path):
    out = tmp_path / "out"
    results = run(quick=True, out=out, cache=tmp_path / "cache")
    for name in ("contours.png", "contours_log.png", "convexity.png"):
        assert (out / name).stat().st_size > 1000, name
    assert (out / "results.md").read_text().count("resnet8") >= 2
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["resnet8", "resnet8-noshort"]
    for row, r in zip(rows, results, strict=True):
        assert np.isfinite(r["_surface"]).all() and r["_surface"].shape == (5, 5)
        assert np.isfinite(r["_ratio"]).all() and (r["_ratio"] >= 0).all()
        for key in ("ratio_centre", "ratio_mean", "ratio_max", "lambda_max_centre", "loss_centre"):
            assert np.isfinite(float(row[key])), key
        assert float(row["lambda_max_centre"]) > 0
    arrays = np.load(out / "surfaces.npz")
    assert arrays["resnet8-noshort.surface"].shape == (5, 5)
