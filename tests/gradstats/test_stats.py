import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.gradstats.stats import (
    STATISTICS,
    default_edges,
    flags,
    groups_of,
    histogram,
    layer_stats,
)
from visjax.zoo.cnn import apply as cnn_apply
from visjax.zoo.data import load_digits
from visjax.zoo.train import cross_entropy


def _tree(seed=0):
    rng = np.random.default_rng(seed)
    g = {
        "conv1": {"kernel": rng.normal(size=(3, 3, 1, 4)), "bias": np.zeros(4)},
        "fc": {"kernel": 1e-3 * rng.normal(size=(4, 3)), "bias": rng.normal(size=3)},
        "scale": rng.normal(size=(2,)),
    }
    g["fc"]["kernel"][0, :2] = 0.0
    return jax.tree.map(lambda a: np.asarray(a, np.float32), g)


def _np_hist(x, edges):
    x = x[np.isfinite(x)]
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1)


def _np_stats(xs, edges):
    x = np.concatenate([np.ravel(a) for a in xs]).astype(np.float64)
    fin = x[np.isfinite(x)]
    n = max(fin.size, 1)
    mean = fin.sum() / n
    return {
        "norm": np.sqrt((fin**2).sum()),
        "mean": mean,
        "std": np.sqrt(((fin - mean) ** 2).sum() / n),
        "max_abs": np.abs(fin).max(initial=0.0),
        "zero_fraction": (fin == 0).sum() / n,
        "nonfinite": x.size - fin.size,
        "histogram": _np_hist(x, edges),
    }


def _check_against_numpy(out, grads_by_group, edges):
    for group, xs in grads_by_group.items():
        ref = _np_stats(xs, edges)
        for name, value in ref.items():
            got = np.asarray(out[name][group])
            if name in ("nonfinite", "histogram"):
                assert got.dtype == np.int32
                np.testing.assert_array_equal(got, value, err_msg=f"{name} {group}")
            else:
                np.testing.assert_allclose(got, value, rtol=2e-6, atol=1e-12, err_msg=name)


def test_statistics_equal_numpy_per_layer():
    g = _tree()
    assert list(layer_stats(g, stats=("std", "norm"))) == ["std", "norm"]  # eager: as given
    out = jax.jit(layer_stats)(g)
    assert sorted(out) == sorted(s for s in STATISTICS if s != "update_ratio")
    assert list(out["norm"]) == ["conv1", "fc", "scale"]
    by_group = {
        "conv1": [g["conv1"]["bias"], g["conv1"]["kernel"]],
        "fc": [g["fc"]["bias"], g["fc"]["kernel"]],
        "scale": [g["scale"]],
    }
    _check_against_numpy(out, by_group, default_edges())


def test_statistics_equal_numpy_for_pattern_groups_and_custom_edges():
    g = _tree(1)
    edges = np.array([-1.0, -0.1, 0.0, 0.1, 1.0])
    groups = {"kernels": "*.kernel", "rest": ("*.bias", "scale")}
    out = layer_stats(g, groups=groups, edges=edges)
    by_group = {
        "kernels": [g["conv1"]["kernel"], g["fc"]["kernel"]],
        "rest": [g["conv1"]["bias"], g["fc"]["bias"], g["scale"]],
    }
    _check_against_numpy(out, by_group, edges)


def test_update_ratio_equals_numpy_and_needs_updates_and_params():
    g, p, u = _tree(0), _tree(1), _tree(2)
    out = layer_stats(g, stats="update_ratio", updates=u, params=p)
    for group in ("conv1", "fc"):
        un = np.sqrt(sum((u[group][k].astype(np.float64) ** 2).sum() for k in ("kernel", "bias")))
        pn = np.sqrt(sum((p[group][k].astype(np.float64) ** 2).sum() for k in ("kernel", "bias")))
        np.testing.assert_allclose(out["update_ratio"][group], un / pn, rtol=2e-6)
    zero = jax.tree.map(np.zeros_like, p)
    out = layer_stats(g, stats="update_ratio", updates=u, params=zero)
    assert np.isinf(out["update_ratio"]["fc"])
    out = layer_stats(g, stats="update_ratio", updates=zero, params=zero)
    assert float(out["update_ratio"]["fc"]) == 0.0
    with pytest.raises(ValueError, match="needs both `updates` and `params`"):
        layer_stats(g, stats=("norm", "update_ratio"), updates=u)
    with pytest.raises(ValueError, match="tree structure"):
        layer_stats(g, stats="update_ratio", updates={"fc": u["fc"]}, params=p)


def test_histogram_counts_every_finite_element_and_clips_into_edge_bins():
    edges = [-1.0, 0.0, 1.0]
    x = jnp.array([-1e9, -jnp.inf, -1.0, -0.5, 0.0, 0.5, 1.0, 1e9, jnp.nan, jnp.inf])
    counts = histogram(x, edges)
    np.testing.assert_array_equal(counts, [3, 4])  # [-1e9, -1, -.5] | [0, .5, 1, 1e9]
    rng = np.random.default_rng(0)
    y = (rng.standard_cauchy(5000) * 10.0 ** rng.uniform(-12, 4, 5000)).astype(np.float32)
    y[:7] = np.nan
    y[7:9] = [np.inf, -np.inf]
    y[9:20] = 0.0
    counts = np.asarray(jax.jit(histogram)(y))
    assert counts.sum() == np.isfinite(y).sum() == 5000 - 9
    np.testing.assert_array_equal(counts, _np_hist(y, default_edges().astype(np.float32)))
    fin = y[np.isfinite(y)]
    assert counts[0] == (fin < -1e1).sum() and counts[-1] == (fin >= 1e1).sum()  # edge bins
    assert counts[10] == (np.abs(fin) < 1e-8).sum() >= 11  # zero bin
    with pytest.raises(ValueError, match="strictly increasing"):
        histogram(y, [0.0, 0.0, 1.0])


def test_default_edges_are_symmetric_decades_with_a_zero_bin():
    e = default_edges()
    assert e.shape == (22,)
    np.testing.assert_allclose(e[11:], 10.0 ** np.arange(-8, 3))
    np.testing.assert_array_equal(e[:11], -e[11:][::-1])
    assert default_edges(per_decade=2).shape == (42,)


def test_include_selects_subsets():
    g = _tree()
    assert groups_of(g, include="fc.*") == {"fc": ["fc.bias", "fc.kernel"]}
    assert groups_of(g, include=["*.kernel", "scale"]) == {
        "conv1": ["conv1.kernel"],
        "fc": ["fc.kernel"],
        "scale": ["scale"],
    }
    out = layer_stats(g, include="*.kernel", stats="norm")
    assert list(out["norm"]) == ["conv1", "fc"]
    np.testing.assert_allclose(out["norm"]["fc"], np.linalg.norm(g["fc"]["kernel"]), rtol=1e-6)
    out = layer_stats(g, groups={"all": "*"}, include="conv1.*", stats="norm")
    np.testing.assert_allclose(out["norm"]["all"], np.linalg.norm(g["conv1"]["kernel"]), rtol=1e-6)


def test_groups_and_include_matching_nothing_list_the_paths():
    g = _tree()
    with pytest.raises(ValueError, match=r"`include` 'conv9\.\*' matches no.*conv1\.bias"):
        layer_stats(g, include="conv9.*")
    with pytest.raises(ValueError, match=r"group 'head'.*fc\.kernel"):
        layer_stats(g, groups={"head": "head.*"})
    with pytest.raises(ValueError, match="among the paths `include` selects"):
        groups_of(g, {"fc": "fc.*"}, include="conv1.*")
    with pytest.raises(ValueError, match="'layers' or a mapping"):
        groups_of(g, "modules")
    with pytest.raises(TypeError, match="glob pattern"):
        groups_of(g, {"fc": 3})


def test_unknown_statistic_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown statistic 'variance'.*norm, mean, std"):
        layer_stats(_tree(), stats=("norm", "variance"))
    with pytest.raises(ValueError, match="unknown statistic"):
        jax.jit(lambda g: layer_stats(g, stats="l2"))(_tree())


def test_nonfinite_gradients_are_counted_and_left_out_of_the_rest():
    g = _tree()
    g["fc"]["kernel"][1, 1] = np.nan
    g["fc"]["bias"][0] = np.inf
    g["scale"][:] = np.nan
    out = jax.jit(lambda g: layer_stats(g, stats=STATISTICS[:-1]))(g)
    assert int(out["nonfinite"]["fc"]) == 2 and int(out["nonfinite"]["conv1"]) == 0
    assert int(out["nonfinite"]["scale"]) == 2
    _check_against_numpy(out, {"fc": [g["fc"]["bias"], g["fc"]["kernel"]]}, default_edges())
    for name in ("norm", "mean", "std", "max_abs", "zero_fraction"):
        for group in out[name]:
            assert np.isfinite(out[name][group]), (name, group)
        assert float(out[name]["scale"]) == 0.0  # no finite element
    assert int(out["histogram"]["scale"].sum()) == 0
    f = flags(out)
    assert bool(f["exploding"]["fc"]) and bool(f["exploding"]["scale"])
    assert not bool(f["exploding"]["conv1"])


def test_norm_does_not_overflow_in_float32():
    g = {"w": jnp.full((4,), 1e30, jnp.float32)}
    out = layer_stats(g, stats=("norm", "std", "mean"))
    np.testing.assert_allclose(out["norm"]["w"], 2e30, rtol=1e-6)
    assert float(out["std"]["w"]) == 0.0


def test_jit_traces_once_and_matches_eager():
    traces = []

    @jax.jit
    def f(g):
        traces.append(1)
        return layer_stats(g, stats=STATISTICS[:-1])

    g1, g2 = _tree(0), _tree(3)
    eager = layer_stats(g2, stats=STATISTICS[:-1])
    f(g1)
    got = f(g2)
    assert len(traces) == 1
    for name in eager:
        for group in eager[name]:
            np.testing.assert_allclose(got[name][group], eager[name][group], rtol=1e-6)


# --------------------------------------------------------------------------- flags


def _mlp(depth, width, key, scale=1.0):
    init = jax.nn.initializers.lecun_normal()
    keys = jax.random.split(key, depth)
    return {
        f"l{i:02d}": {"kernel": scale * init(keys[i], (width, width)), "bias": jnp.zeros(width)}
        for i in range(depth)
    }


def _mlp_grads(params, act):
    def loss(p):
        x = jax.random.normal(jax.random.key(1), (64, 32))
        y = jax.random.normal(jax.random.key(2), (64, 32))
        for name in sorted(p):
            x = act(x @ p[name]["kernel"] + p[name]["bias"])
        return ((x - y) ** 2).mean()

    return jax.jit(jax.grad(loss))(params)


def _norms(g):
    return jax.jit(lambda g: layer_stats(g, stats=("norm", "nonfinite")))(g)


def test_deep_sigmoid_mlp_is_flagged_vanishing_in_its_first_layers():
    g = _mlp_grads(_mlp(12, 32, jax.random.key(0)), jax.nn.sigmoid)
    f = flags(_norms(g))
    vanishing = [name for name, v in f["vanishing"].items() if v]
    assert vanishing[:3] == ["l00", "l01", "l02"] and "l11" not in vanishing
    assert not any(bool(v) for v in f["exploding"].values())


def test_badly_scaled_linear_stack_is_flagged_exploding():
    g = _mlp_grads(_mlp(6, 32, jax.random.key(0), scale=10.0), lambda x: x)
    f = flags(_norms(g))
    assert all(bool(v) for v in f["exploding"].values())


def test_healthy_digits_cnn_is_neither_vanishing_nor_exploding(cnn_params):
    data = load_digits().train
    x, y = jnp.asarray(data.x[:256]), jnp.asarray(data.y[:256])
    g = jax.jit(jax.grad(lambda p: cross_entropy(cnn_apply(p, x), y)))(cnn_params)
    f = flags(_norms(g))
    assert list(f["vanishing"]) == ["conv1", "conv2", "fc"]
    assert not any(bool(v) for d in f.values() for v in d.values())


def test_flags_work_per_step_on_numpy_histories():
    stats = {
        "norm": {"a": np.array([1.0, 1e-9, 0.0]), "b": np.array([1.0, 1.0, 0.0])},
        "nonfinite": {"a": np.array([0, 0, 0]), "b": np.array([0, 3, 0])},
    }
    f = flags(stats, vanishing=1e-3, exploding=10.0)
    assert isinstance(f["vanishing"]["a"], np.ndarray)
    np.testing.assert_array_equal(f["vanishing"]["a"], [False, True, True])
    np.testing.assert_array_equal(f["vanishing"]["b"], [False, False, True])
    np.testing.assert_array_equal(f["exploding"]["b"], [False, True, False])
    with pytest.raises(ValueError, match="needs the statistic 'norm'"):
        flags({"max_abs": {"a": 1.0}})
