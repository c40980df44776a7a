import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.landscape.directions import tree_dot, tree_norm
from visjax.landscape.trajectory import (
    PCADirections,
    TrajectoryWriter,
    load_trajectory,
    pca_directions,
    trajectory_steps,
)
from visjax.zoo import digits_cnn, load_digits
from visjax.zoo.data import Split
from visjax.zoo.train import train

T = 8
THETA = 2 * np.pi * np.arange(T) / T
X, Y = 3.0 * np.cos(THETA), np.sin(THETA)  # centred columns, orthogonal: ratios 0.9 and 0.1


def _tree(seed):
    k = jax.random.split(jax.random.key(seed), 3)
    return {
        "conv": {"kernel": jax.random.normal(k[0], (3, 3, 2, 4)), "bias": jnp.zeros(4)},
        "dense": {"kernel": jax.random.normal(k[1], (5, 3)), "bias": jax.random.normal(k[2], (3,))},
    }


def _unit_plane():
    """Two orthonormal pytrees, zero on the 1-D leaves."""
    a, b = _tree(1), _tree(2)
    for t in (a, b):
        t["conv"]["bias"] = jnp.zeros(4)
        t["dense"]["bias"] = jnp.zeros(3)
    u = jax.tree.map(lambda x: x / tree_norm(a), a)
    bu = tree_dot(b, u)
    w = jax.tree.map(lambda x, y: x - bu * y, b, u)
    v = jax.tree.map(lambda x: x / tree_norm(w), w)
    return u, v


def _synthetic(bias_noise=True):
    base, (u, v) = _tree(0), _unit_plane()
    path = []
    for i in range(T):
        p = jax.tree.map(lambda b, du, dv, i=i: b + X[i] * du + Y[i] * dv, base, u, v)
        if bias_noise:  # moves in the 1-D leaves, which "biasbn" must ignore
            p["dense"]["bias"] = p["dense"]["bias"] + 10.0 * np.sin(3.0 * i)
        path.append(p)
    return path, u, v


def _sign(a, b):
    return float(np.sign(tree_dot(a, b)))


def test_recovers_two_known_directions_and_coordinates():
    path, u, v = _synthetic()
    r = pca_directions(path)
    assert isinstance(r, PCADirections)
    np.testing.assert_allclose(r.explained_variance_ratio, [0.9, 0.1], atol=1e-6)
    s1, s2 = _sign(r.d1, u), _sign(r.d2, v)
    for got, want, s in ((r.d1, u, s1), (r.d2, v, s2)):
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(g, s * w, atol=1e-5)
    assert float(tree_norm(r.d1)) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(tree_dot(r.d1, r.d2))) < 1e-5
    assert not np.any(r.d1["dense"]["bias"]) and not np.any(r.d2["conv"]["bias"])
    want = np.stack([s1 * (X - X[-1]), s2 * (Y - Y[-1])], 1)
    np.testing.assert_allclose(r.coords, want, atol=1e-4)
    np.testing.assert_allclose(r.coords[-1], [0.0, 0.0], atol=1e-5)  # final at the origin
    assert (r.coords[0] <= 0).all()  # the sign convention
    # the coordinates are Li et al.'s projection (Δ·d / |d|) of every checkpoint
    for i, p in enumerate(path):
        delta = jax.tree.map(lambda a, b: a - b, p, path[-1])
        assert r.coords[i, 0] == pytest.approx(float(tree_dot(delta, r.d1)), abs=1e-4)
        assert r.coords[i, 1] == pytest.approx(float(tree_dot(delta, r.d2)), abs=1e-4)


def test_leaf_dtypes_and_explicit_final():
    path, _, _ = _synthetic(bias_noise=False)
    half = [jax.tree.map(lambda x: x.astype(jnp.bfloat16), p) for p in path]
    r = pca_directions(half[:-1], final=half[-1])
    assert jax.tree.leaves(r.d1)[0].dtype == jnp.bfloat16
    assert r.coords.shape == (T - 1, 2)


def _flat(tree, ignore_1d):
    return np.concatenate(
        [
            np.zeros(np.size(x)) if (ignore_1d and np.ndim(x) <= 1) else np.ravel(x)
            for x in jax.tree.leaves(tree)
        ]
    )


@pytest.mark.parametrize("ignore", ["biasbn", None])
def test_matches_scikit_learn_pca_like_li_et_al(ignore):
    """Li et al.'s code: sklearn PCA(n_components=2) on the rows θ_i − θ_final (it centres)."""
    sklearn_decomposition = pytest.importorskip("sklearn.decomposition")
    key = jax.random.key(3)
    p, path = _tree(4), []
    for _ in range(12):  # a random walk with drift
        key, sub = jax.random.split(key)
        steps = _tree(int(jax.random.randint(sub, (), 0, 10_000)))
        p = jax.tree.map(lambda a, s: a + 0.1 * s + 0.05, p, steps)
        path.append(p)
    final = _flat(path[-1], ignore == "biasbn")
    m = np.stack([_flat(q, ignore == "biasbn") - final for q in path])
    pca = sklearn_decomposition.PCA(n_components=2).fit(m)
    r = pca_directions(path, ignore=ignore)
    np.testing.assert_allclose(r.explained_variance_ratio, pca.explained_variance_ratio_, rtol=1e-5)
    for k, d in enumerate((r.d1, r.d2)):
        got = _flat(d, False)
        s = np.sign(got @ pca.components_[k])
        np.testing.assert_allclose(got, s * pca.components_[k], atol=1e-5)
        # their project_1D: Δ·d / |d|
        theirs = m @ pca.components_[k] / np.linalg.norm(pca.components_[k])
        np.testing.assert_allclose(r.coords[:, k], s * theirs, rtol=1e-4, atol=1e-4)


def test_uncentred_is_the_svd_of_the_raw_offsets():
    path, _, _ = _synthetic(bias_noise=False)
    final = _flat(path[-1], True)
    m = np.stack([_flat(q, True) - final for q in path])
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    r = pca_directions(path, center=False)
    np.testing.assert_allclose(r.explained_variance_ratio, s[:2] ** 2 / (s**2).sum(), rtol=1e-5)
    got = _flat(r.d1, False)
    np.testing.assert_allclose(np.abs(got @ vt[0]), 1.0, atol=1e-5)


def test_bad_input():
    path, _, _ = _synthetic()
    with pytest.raises(ValueError, match=r"`checkpoints`.*at least 3"):
        pca_directions(path[:2])
    with pytest.raises(TypeError, match="`checkpoints`"):
        pca_directions(path[0])
    wrong = dict(path[1], extra={"kernel": jnp.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"`checkpoints\[1\]`"):
        pca_directions([path[0], wrong, path[2], path[3]])
    reshaped = jax.tree.map(lambda x: x, path[2])
    reshaped["dense"]["kernel"] = jnp.zeros((3, 5))
    with pytest.raises(ValueError, match="shape"):
        pca_directions([path[0], path[1], reshaped, path[3]])
    line = [jax.tree.map(lambda x, a=a: x * a, path[0]) for a in (1.0, 2.0, 3.0)]
    with pytest.raises(ValueError, match="one line"):
        pca_directions(line)
    with pytest.raises(ValueError, match="do not move"):
        pca_directions([path[0]] * 3)
    nan = jax.tree.map(lambda x: x, path[1])
    nan["conv"]["kernel"] = nan["conv"]["kernel"].at[0, 0, 0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="NaN"):
        pca_directions([path[0], nan, path[2], path[3]])
    with pytest.raises(ValueError, match="`ignore`"):
        pca_directions(path, ignore="bias")


# --------------------------------------------------------------------------- saving and loading


def test_save_load_round_trip(tmp_path, cnn_params):
    writer = TrajectoryWriter(tmp_path / "traj")
    trees = {s: jax.tree.map(lambda x, s=s: x + s, cnn_params) for s in (2, 0, 10)}
    for s, tree in trees.items():
        writer.save(s, tree)
    assert trajectory_steps(tmp_path / "traj") == [0, 2, 10]
    for like in (None, cnn_params):
        steps, params = load_trajectory(tmp_path / "traj", like=like)
        assert steps == [0, 2, 10]
        for s, p in zip(steps, params, strict=True):
            assert jax.tree.structure(p) == jax.tree.structure(cnn_params)
            for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(trees[s]), strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="`step` 2 is already saved"):
        writer.save(2, cnn_params)
    with pytest.raises(ValueError, match="`step`"):
        writer.save(-1, cnn_params)
    with pytest.raises(ValueError, match="no trajectory"):
        load_trajectory(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        load_trajectory(tmp_path / "missing")


@pytest.fixture(scope="module")
def small_digits():
    d = load_digits()
    return Split(d.train.x[:128], d.train.y[:128])


def test_train_writes_a_checkpoint_per_epoch(tmp_path, small_digits):
    model = digits_cnn("function", seed=0)
    writer = TrajectoryWriter(tmp_path / "t")
    trained, _ = train(model, small_digits, epochs=3, batch_size=32, trajectory=writer)
    steps, params = load_trajectory(tmp_path / "t", like=model.params)
    assert steps == [0, 1, 2, 3]
    for a, b in zip(jax.tree.leaves(params[0]), jax.tree.leaves(model.params), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(params[-1]), jax.tree.leaves(trained.params), strict=True):
        np.testing.assert_array_equal(a, b)
    # the same training without a trajectory gives the same weights
    again, _ = train(model, small_digits, epochs=3, batch_size=32)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(trained.params), strict=True):
        np.testing.assert_array_equal(a, b)
    r = pca_directions(params)
    assert r.coords.shape == (4, 2) and np.isfinite(r.coords).all()
    assert 0 < r.explained_variance_ratio[1] <= r.explained_variance_ratio[0] <= 1


def test_train_takes_a_writer(tmp_path, small_digits):
    writer = TrajectoryWriter(tmp_path)
    train(digits_cnn("function", seed=0), small_digits, epochs=1, batch_size=64, trajectory=writer)
    assert trajectory_steps(tmp_path) == [0, 1]
    with pytest.raises(TypeError, match="save"):
        train(digits_cnn("function", seed=0), small_digits, epochs=1, trajectory=tmp_path / "x")
