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


def test_recomputed_statistics_equal_the_train_mode_forward():
    """Inference with recomputed statistics = train mode on the same data as one batch."""
    import jax.numpy as jnp

    from experiments.li2018_skip_connections.bn import recompute_stats, train_mode_loss
    from visjax.zoo import digits_resnet, load_digits
    from visjax.zoo.train import cross_entropy

    m = digits_resnet(depth=8, width=4, norm=True, seed=3)
    d = load_digits().train
    x, y = jnp.asarray(d.x[:64]), jnp.asarray(d.y[:64])
    stats = recompute_stats(True, 8, 4, m.params, m.state, x)
    means = [v for p, v in jax_leaves_with_path(stats) if "mean" in p]
    assert any(float(jnp.abs(v).max()) > 0 for v in means)  # not the fresh zeros
    ours = cross_entropy(m.replace(state=stats)(x), y)
    want = train_mode_loss(True, 8, 4, m.state)(m.params, (x, y))
    np.testing.assert_allclose(float(ours), float(want), rtol=1e-5)


def jax_leaves_with_path(tree):
    import jax

    return [(jax.tree_util.keystr(p), v) for p, v in jax.tree_util.tree_leaves_with_path(tree)]
