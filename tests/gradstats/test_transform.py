import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from visjax.gradstats.stats import STATISTICS, flags, layer_stats
from visjax.gradstats.transform import (
    Snapshot,
    TrackState,
    find_track_state,
    snapshot,
    track,
)
from visjax.zoo.cnn import apply as cnn_apply
from visjax.zoo.data import load_digits
from visjax.zoo.train import cross_entropy


@pytest.fixture(scope="module")
def digits():
    data = load_digits().train
    return jnp.asarray(data.x[:640]), jnp.asarray(data.y[:640])


def _train(opt, params, digits, n_steps, traces):
    """Adam-style training of the digits CNN: a Python loop over one jitted step."""

    def loss(p, x, y):
        traces.append(1)
        return cross_entropy(cnn_apply(p, x), y)

    @jax.jit
    def step(p, s, x, y):
        g = jax.grad(loss)(p, x, y)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    x_all, y_all = digits
    state = opt.init(params)
    trajectory = []
    for i in range(n_steps):
        j = (i * 64) % (len(x_all) - 63)
        params, state = step(params, state, x_all[j : j + 64], y_all[j : j + 64])
        trajectory.append(params)
    return trajectory, state


def test_track_keeps_the_bare_trajectory_bitwise_and_traces_once(cnn_params, digits):
    bare_traces, tracked_traces = [], []
    bare, _ = _train(optax.adam(1e-2), cnn_params, digits, 20, bare_traces)
    opt = track(optax.adam(1e-2), stats=STATISTICS, history=8)
    tracked, state = _train(opt, cnn_params, digits, 20, tracked_traces)
    assert len(tracked_traces) == 1
    for a, b in zip(bare, tracked, strict=True):
        jax.tree.map(np.testing.assert_array_equal, a, b)
    snap = snapshot(state)
    assert isinstance(snap, Snapshot) and snap.n_steps == 20
    np.testing.assert_array_equal(snap.steps, np.arange(12, 20))
    assert list(snap.stats) == list(STATISTICS)
    assert list(snap.stats["norm"]) == ["conv1", "conv2", "fc"]
    assert snap.stats["norm"]["fc"].shape == (8,) and snap.stats["norm"]["fc"].dtype == np.float32
    assert snap.stats["histogram"]["conv1"].shape == (8, 21)
    np.testing.assert_array_equal(snap.stats["histogram"]["conv1"].sum(1), 3 * 3 * 16 + 16)
    assert snap.edges.shape == (22,)
    ratio = snap.stats["update_ratio"]["conv2"]
    assert np.all((ratio > 0) & (ratio < 1))
    healthy = flags(snap.stats)
    assert not any(np.any(v) for d in healthy.values() for v in d.values())


def _grads(k):
    rng = np.random.default_rng(k)
    return {
        "a": {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": jnp.zeros(2)},
        "c": jnp.asarray(rng.normal(size=4) * (k + 1), jnp.float32),
    }


def _params():
    return jax.tree.map(lambda g: g + 1.0, _grads(99))


@pytest.mark.parametrize("n_steps", [3, 5, 12])
def test_ring_buffer_keeps_the_last_steps_in_order(n_steps):
    opt = track(optax.sgd(0.1), stats=("norm", "histogram", "update_ratio"), history=5)
    params = _params()
    state = opt.init(params)
    assert snapshot(state).steps.shape == (0,)
    assert snapshot(state).stats["norm"]["a"].shape == (0,)
    update = jax.jit(opt.update)
    expected = []
    for k in range(n_steps):
        g = _grads(k)
        _, state = update(g, state, params)
        expected.append(layer_stats(g, stats="norm")["norm"])
    assert update._cache_size() == 1
    snap = snapshot(state)
    first = max(0, n_steps - 5)
    np.testing.assert_array_equal(snap.steps, np.arange(first, n_steps))
    for group in ("a", "c"):
        want = [float(e[group]) for e in expected[first:]]
        np.testing.assert_allclose(snap.stats["norm"][group], want, rtol=1e-6)
    assert snap.stats["histogram"]["c"].shape == (n_steps - first, 21)
    np.testing.assert_allclose(
        snap.stats["update_ratio"]["c"],
        0.1 * snap.stats["norm"]["c"] / np.linalg.norm(params["c"]),
        rtol=1e-5,
    )


def test_running_aggregates_equal_numpy_over_the_steps():
    opt = track(
        optax.sgd(0.1), stats=("norm", "mean", "nonfinite", "histogram"), aggregate="running"
    )
    params = _params()
    state = opt.init(params)
    update = jax.jit(opt.update)
    seen = []
    for k in range(7):
        g = _grads(k)
        _, state = update(g, state, params)
        seen.append(layer_stats(g, stats=("norm", "mean", "nonfinite", "histogram")))
    assert update._cache_size() == 1
    snap = snapshot(state)
    assert state.buffer is None and snap.n_steps == 7
    np.testing.assert_array_equal(snap.steps, [6])
    for name in ("norm", "mean", "nonfinite", "histogram"):
        for group in ("a", "c"):
            rows = np.stack([np.asarray(s[name][group]) for s in seen])
            np.testing.assert_allclose(
                snap.running["mean"][name][group], rows.mean(0), rtol=1e-5, atol=1e-7
            )
            np.testing.assert_array_equal(snap.running["max"][name][group], rows.max(0))
            np.testing.assert_array_equal(snap.stats[name][group], rows[-1:])
    assert snap.running["mean"]["histogram"]["a"].dtype == np.float32


def test_nonfinite_gradients_are_counted_without_changing_the_updates():
    params = _params()
    bare, opt = (
        optax.adam(1e-2),
        track(optax.adam(1e-2), stats=("norm", "nonfinite", "update_ratio")),
    )
    s_bare, s_track = bare.init(params), opt.init(params)
    for k in range(3):
        g = _grads(k)
        if k == 1:
            g["c"] = g["c"].at[0].set(jnp.nan).at[1].set(jnp.inf)
        u_bare, s_bare = jax.jit(bare.update)(g, s_bare, params)
        u_track, s_track = jax.jit(opt.update)(g, s_track, params)
        jax.tree.map(np.testing.assert_array_equal, u_bare, u_track)
    snap = snapshot(s_track)
    np.testing.assert_array_equal(snap.stats["nonfinite"]["c"], [0, 2, 0])
    np.testing.assert_array_equal(snap.stats["nonfinite"]["a"], [0, 0, 0])
    assert np.all(np.isfinite(snap.stats["norm"]["c"]))
    np.testing.assert_array_equal(flags(snap.stats)["exploding"]["c"], [False, True, False])


def test_update_ratio_needs_params():
    opt = track(optax.sgd(0.1))
    state = opt.init(_params())
    with pytest.raises(ValueError, match="needs `params`"):
        opt.update(_grads(0), state)
    norm_only = track(optax.sgd(0.1), stats="norm")
    updates, _ = norm_only.update(_grads(0), norm_only.init(_params()))  # no params needed
    jax.tree.map(
        np.testing.assert_array_equal, updates, jax.tree.map(lambda g: -0.1 * g, _grads(0))
    )


def test_running_mean_of_an_infinite_update_ratio_stays_inf_not_nan():
    params = jax.tree.map(jnp.zeros_like, _params())
    opt = track(optax.sgd(0.1), stats="update_ratio", aggregate="running")
    state = opt.init(params)
    for k in range(3):
        _, state = jax.jit(opt.update)(_grads(k), state, params)
    snap = snapshot(state)
    assert np.isinf(snap.running["mean"]["update_ratio"]["c"])
    assert np.isinf(snap.running["max"]["update_ratio"]["c"])


def test_bad_arguments_fail_early():
    with pytest.raises(ValueError, match=r"unknown statistic 'l2'; the known statistics are norm"):
        track(optax.sgd(0.1), stats=("norm", "l2"))
    with pytest.raises(ValueError, match="`history`"):
        track(optax.sgd(0.1), history=0)
    with pytest.raises(ValueError, match="`aggregate`"):
        track(optax.sgd(0.1), aggregate="ema")
    with pytest.raises(ValueError, match="`edges`"):
        track(optax.sgd(0.1), stats="histogram", edges=[1.0, 0.0])
    with pytest.raises(ValueError, match=r"`include` 'head\.\*' matches no parameter path"):
        track(optax.sgd(0.1), include="head.*").init(_params())


def test_include_and_groups_in_track():
    opt = track(optax.sgd(0.1), groups={"weights": "*.w", "all": "*"}, include="a.*", stats="norm")
    params = _params()
    _, state = opt.update(_grads(0), opt.init(params), params)
    snap = snapshot(state)
    assert list(snap.stats["norm"]) == ["all", "weights"]
    np.testing.assert_allclose(
        snap.stats["norm"]["weights"], [np.linalg.norm(_grads(0)["a"]["w"])], rtol=1e-6
    )


def test_find_track_state_inside_a_chain_and_extra_args():
    opt = optax.chain(optax.clip_by_global_norm(1.0), track(optax.sgd(0.1), stats="norm"))
    params = _params()
    state = opt.init(params)
    _, state = jax.jit(opt.update)(_grads(0), state, params)
    found = find_track_state(state)
    assert isinstance(found, TrackState) and int(found.step) == 1
    clipped = optax.clip_by_global_norm(1.0).update(_grads(0), optax.EmptyState())[0]
    np.testing.assert_allclose(
        snapshot(state).stats["norm"]["c"], [np.linalg.norm(clipped["c"])], rtol=1e-6
    )
    with pytest.raises(ValueError, match="found 0"):
        find_track_state(optax.sgd(0.1).init(params))
    two = optax.chain(track(optax.sgd(0.1), stats="norm"), track(optax.sgd(0.1), stats="norm"))
    with pytest.raises(ValueError, match="found 2"):
        find_track_state(two.init(params))
    # extra arguments reach an inner transformation that takes them
    plateau = track(optax.contrib.reduce_on_plateau(patience=1), stats="norm")
    s = plateau.init(params)
    _, s = plateau.update(_grads(0), s, params, value=jnp.asarray(1.0))
    assert int(s.step) == 1


@pytest.mark.parametrize("aggregate", ["ring", "running"])
def test_flags_see_a_nan_step_whatever_stats_holds(aggregate):
    # defect 5 of issue 26: without "nonfinite" in `stats` the NaN entry left `norm` finite
    # and `flags` missed the step
    params = {"a": {"w": jnp.ones(2)}, "b": {"w": jnp.ones(2)}}
    opt = track(optax.sgd(0.1), stats="norm", history=4, aggregate=aggregate)
    state = opt.init(params)
    for g in (1.0, jnp.nan, 1.0) if aggregate == "ring" else (1.0, jnp.nan):
        grads = {"a": {"w": jnp.array([g, 1.0])}, "b": {"w": jnp.ones(2)}}
        _, state = jax.jit(opt.update)(grads, state, params)
    snap = snapshot(state)
    exploding = flags(snap.stats)["exploding"]
    if aggregate == "ring":
        assert exploding["a"].tolist() == [False, True, False]
        assert exploding["b"].tolist() == [False, False, False]
    else:
        assert exploding["a"].tolist() == [True] and exploding["b"].tolist() == [False]
    assert list(snap.stats) == ["norm", "nonfinite"]


def test_track_refuses_a_non_optax_inner():
    with pytest.raises(TypeError, match=r"`inner`.*optax\.GradientTransformation"):
        track("adam")
