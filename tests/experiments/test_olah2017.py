"""The Olah et al. (2017) feature-visualisation experiment, quick mode (~45 s of CPU time)."""

import csv

import numpy as np
import pytest

from experiments.olah2017_feature_visualization.run import METRICS, QUICK, hf_share, run


def test_hf_share_separates_fine_and_coarse_patterns():
    rows = np.arange(16)[:, None] * np.ones((1, 16))
    fine = np.repeat(((rows % 2) == 0)[None, ..., None], 3, -1).astype(float)  # period 2 px
    coarse = np.repeat(((rows // 8) == 0)[None, ..., None], 3, -1).astype(float)  # period 16 px
    assert hf_share(fine)[0] > 0.99
    assert hf_share(coarse)[0] < 0.2


@pytest.mark.slow  # end to end: trains the target CNN and the judge, renders two conditions
def test_quick_run_writes_figures_and_table(tmp_path):
    out = tmp_path / "out"
    res = run(quick=True, out=out, cache=tmp_path / "cache")
    for name in ("renders.png", "overview.png", "scores.png"):
        assert (out / name).stat().st_size > 1000, name
    md = (out / "results.md").read_text()
    assert all(c in md for c in QUICK.conditions)
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(QUICK.conditions) * QUICK.n_seeds
    assert [r["condition"] for r in rows[:: QUICK.n_seeds]] == list(QUICK.conditions)
    for row in rows:
        vals = {m: float(row[m]) for m in METRICS}
        assert all(np.isfinite(v) for v in vals.values()), row
        for m in ("judge_accuracy", "judge_prob", "own_accuracy", "hf_share"):
            assert 0 <= vals[m] <= 1, (m, row)
        assert vals["pixel_distance"] >= 0 and 0 <= vals["feature_distance"] <= 2 + 1e-6
    assert res["info"]["judge_test_accuracy"] > 0.9  # the judge learned the shapes
    for acc in res["per_class"].values():
        assert np.shape(acc) == (QUICK.n_seeds, 8)
    arrays = np.load(out / "renders.npz")
    images = arrays[f"{QUICK.conditions[0]}.seed{QUICK.seed}"]
    assert images.shape == (8, QUICK.renders, 16, 16, 3) and images.dtype == np.uint8
