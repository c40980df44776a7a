"""The Cohen et al. (2021) edge-of-stability experiment, quick mode (seconds to a minute)."""

import csv

import numpy as np
import pytest

from experiments.cohen2021_edge_of_stability.run import QUICK, run


@pytest.mark.slow  # end to end: 300 gradient-descent steps with a Lanczos run every 50
def test_quick_run_writes_figures_and_table(tmp_path):
    out = tmp_path / "out"
    results = run(quick=True, out=out)
    for name in ("sharpness.png", "late_phase.png"):
        assert (out / name).stat().st_size > 1000, name
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["eta"]) for r in rows] == list(QUICK.etas)
    (r,) = results
    assert r["_losses"].shape == (QUICK.steps + 1,) and np.isfinite(r["_losses"]).all()
    assert r["_sharpness"].shape == (QUICK.steps // QUICK.every + 1,)
    assert (r["_sharpness"] > 0).all() and np.isfinite(r["_sharpness"]).all()
    assert r["loss_final"] < r["loss_init"]
    # η = 0.5: the sharpness cannot stay far above 2/η = 4 without diverging
    assert r["sharpness_final"] < 2 * r["two_over_eta"]
    assert 0 <= r["late_within_band"] <= 1
    arrays = np.load(out / "curves.npz")
    assert arrays["eta0.5.sharpness"].shape == r["_sharpness"].shape
