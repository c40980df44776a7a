"""The Goodfellow et al. (2015) linear-interpolation experiment, quick mode."""

import csv

import numpy as np
import pytest

from experiments.goodfellow2015_linear_interpolation.run import line_stats, run


def test_line_stats_finds_the_rise_and_the_barrier():
    a = np.linspace(-0.5, 1.5, 9)  # 0, 0.25, 0.5, 0.75, 1 inside
    loss = np.array([9.0, 9.0, 2.0, 1.0, 3.0, 0.5, 0.2, 5.0, 5.0])
    st = line_stats(a, loss, 1e-3)
    assert not st["monotone"] and st["max_rise"] == pytest.approx(2.0)
    assert st["max_rise_at"] == "0.25->0.5"
    chord = 2.0 + (0.5 - 0.0) * (0.2 - 2.0)  # at alpha 0.5
    assert st["barrier"] == pytest.approx(3.0 - chord) and st["barrier_at"] == 0.5
    st = line_stats(a, -a, 1e-3)
    assert st["monotone"] and st["barrier"] == 0.0


@pytest.mark.slow  # end to end: trains six small networks and sweeps ten lines
def test_quick_run_writes_figures_and_table(tmp_path):
    out = tmp_path / "out"
    rows, curves = run(quick=True, out=out, cache=tmp_path / "cache")
    for name in ("init_to_trained.png", "between_solutions.png"):
        assert (out / name).stat().st_size > 1000, name
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["model"] for r in table] == ["cnn"] * 3 + ["resnet"] * 3 + ["resnet_fixedstats"] + [
        "vit"
    ] * 3
    assert (out / "results.md").read_text().count("| vit |") == 3
    for r in rows:
        for k in ("loss_start", "loss_end", "loss_max", "max_rise", "barrier"):
            assert np.isfinite(r[k]), (r["model"], k)
        assert r["barrier"] >= 0 and r["loss_max"] >= max(r["loss_start"], r["loss_end"])
        assert 0 <= r["acc_min_inside"] <= min(r["acc_start"], r["acc_end"]) <= 1
        if r["kind"] == "init":  # training lowered the loss, from about ln 10 at init
            assert r["loss_end"] < r["loss_start"] and 1.5 < r["loss_start"] < 5
    for c in curves.values():
        assert c["loss"].shape == c["alphas"].shape == c["accuracy"].shape
        assert np.isfinite(c["loss"]).all()
    arrays = np.load(out / "curves.npz")
    assert any(k.endswith(".loss") for k in arrays.files)
