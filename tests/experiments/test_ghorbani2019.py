"""The Ghorbani et al. (2019) Hessian-outlier experiment, quick mode (about a minute, 2 cores)."""

import csv

import numpy as np
import pytest

from experiments.ghorbani2019_hessian_outliers.run import QUICK, run


@pytest.mark.slow  # end to end: trains two ResNets, SLQ spectra at three checkpoints each
def test_quick_run_writes_figures_and_table(tmp_path):
    out = tmp_path / "out"
    results = run(quick=True, out=out)
    for name in ("densities.png", "top_eigenvalues.png"):
        assert (out / name).stat().st_size > 1000, name
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    # init, early (= mid for 2 epochs), end per network, plus the BN end with frozen statistics
    assert [r["network"] for r in rows] == ["no-BN"] * 3 + ["BN"] * 3 + ["BN (frozen stats)"]
    assert [r["checkpoint"] for r in rows[:3]] == ["init", "early", "end"]
    for row in rows:
        for key in ("loss", "lambda_max", "lambda_edge", "ratio"):
            assert np.isfinite(float(row[key])), key
        assert float(row["lambda_max"]) >= float(row["lambda_edge"]) > 0
    for r in results:
        assert len(r["lambda_max_per_epoch"]) == QUICK.epochs + 1
        assert all(v > 0 for v in r["lambda_max_per_epoch"])
        assert 0.1 < r["test_accuracy"] <= 1
    # frozen statistics leave the loss value unchanged (only its derivatives differ)
    bn = {r["network"]: r for r in rows if r["checkpoint"] == "end" and "BN" in r["network"]}
    assert float(bn["BN"]["loss"]) == pytest.approx(float(bn["BN (frozen stats)"]["loss"]), 1e-4)
    arrays = np.load(out / "spectra.npz")
    assert arrays["BN.lambda_max_per_epoch"].shape == (QUICK.epochs + 1,)
