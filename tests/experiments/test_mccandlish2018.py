"""The McCandlish et al. (2018) noise-scale experiment, quick mode (3 batch sizes, 2 levels)."""

import csv

import numpy as np
import pytest

from experiments.mccandlish2018_noise_scale.run import QUICK, fit_hyperbola, run


def test_fit_recovers_an_exact_hyperbola():
    b = np.array([8.0, 32, 128, 512])
    s_min, e_min = fit_hyperbola(b, 50 + 2000 / b)
    assert s_min == pytest.approx(50, rel=1e-4) and e_min == pytest.approx(2000, rel=1e-4)


@pytest.mark.slow  # end to end: three compiled training loops and the per-example statistics
def test_quick_run_writes_figure_and_tables(tmp_path):
    out = tmp_path / "out"
    runs, table = run(quick=True, out=out)
    assert (out / "steps_vs_examples.png").stat().st_size > 1000
    assert "B_crit" in (out / "results.md").read_text()
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["batch"]) for r in rows} == set(QUICK.batch_sizes)
    assert len(table) == len(QUICK.levels)
    for row in table:
        assert len(row["points"]) == len(QUICK.batch_sizes)  # every batch size reaches 0.5, 0.3
        steps = [q["steps"] for q in row["points"]]
        # larger batches never need more steps (up to noise), fewer than the cap
        assert steps[-1] <= 1.2 * steps[0] < QUICK.max_steps
        assert 0 < row["s_min"] <= 1.5 * min(steps)
        assert 1 < row["b_crit"] < 1e4 and 1 < row["b_simple"] < 1e4
        assert 0.01 < row["ratio"] < 100  # the paper: within an order of magnitude
    for r in runs:
        assert r["batch"] in QUICK.batch_sizes and r["lr"] > 0
