"""The Adebayo et al. (2018) sanity-check experiment, quick mode (about a minute, 2 cores)."""

import csv

import numpy as np
import pytest

from experiments.adebayo2018_sanity_checks.run import QUICK, SIMILARITIES, run


@pytest.mark.slow  # end to end: trains the BatchNorm ResNet and randomises it for 4 methods
def test_quick_run_writes_figures_and_table(tmp_path):
    out = tmp_path / "out"
    results = run(quick=True, out=out, cache=tmp_path / "cache")
    assert list(results) == list(QUICK.methods)
    for name in ("cascade_0.png", "rank_correlation.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "guided_backprop" in (out / "results.md").read_text()
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    n_layers = len(QUICK.layers)
    assert len(rows) == n_layers * len(QUICK.methods)
    for res in results.values():
        assert res["layers"] == QUICK.layers
        for sim in SIMILARITIES:
            s = res["scores"][sim]
            assert s.shape == (n_layers, QUICK.images)
            assert (np.nan_to_num(s) <= 1 + 1e-5).all() and (np.nan_to_num(s) >= -1 - 1e-5).all()
    # randomising everything destroys the gradient's map (the paper's baseline behaviour)
    assert float(np.nanmean(results["gradient"]["scores"]["spearman_abs"][-1])) < 0.5
    arrays = np.load(out / "scores.npz")
    assert arrays["gradient.spearman"].shape == (n_layers, QUICK.images)
