"""Many runs on one plane: planes through solutions, the PCA of several runs, projections,
one surface for all runs, and surfaces side by side (visjax.landscape.solutions)."""

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

from visjax import plot
from visjax.landscape import (
    SolutionPlane,
    SurfaceSpec,
    cover_grid,
    project,
    runs_pca_plane,
    runs_surface,
    side_by_side,
    solutions_plane,
    tree_dot,
    tree_norm,
)

matplotlib.use("Agg")


def _tree(seed, scale=1.0):
    # NumPy draws: jax.random would compile one program per leaf shape (seconds on 2 cores)
    rng = np.random.default_rng(seed)

    def draw(shape, s):
        return jnp.asarray(s * rng.standard_normal(shape), jnp.float32)

    return {
        "dense1": {"kernel": draw((4, 8), scale), "bias": draw((8,), 0.1)},
        "dense2": {"kernel": draw((8, 1), scale), "bias": draw((1,), 0.1)},
    }


def _loss(params, batch):
    x, y = batch
    h = jnp.tanh(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
    return jnp.mean((h @ params["dense2"]["kernel"] + params["dense2"]["bias"] - y) ** 2)


def _data():
    rng = np.random.default_rng(99)
    return rng.standard_normal((32, 4), np.float32), rng.standard_normal((32, 1), np.float32)


def _flat(t):
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(t)])


def _at(basis, x, y):
    """``origin + x d1 + y d2`` in float32 (NumPy: no compiles)."""
    x, y = np.float32(x), np.float32(y)
    return jax.tree.map(
        lambda o, a, b: np.asarray(o) + x * np.asarray(a) + y * np.asarray(b),
        basis.origin,
        basis.d1,
        basis.d2,
    )


@pytest.mark.parametrize("span", [(0, 1, 2), (3, 0, 1)])
def test_three_solutions_land_on_their_own_coordinates(span):
    ws = [_tree(s) for s in range(4)]
    basis = solutions_plane(ws, span=span)
    assert isinstance(basis, SolutionPlane) and basis.explained_variance_ratio is None
    assert basis.coords.shape == (4, 2) and basis.residuals.shape == (4,)
    # orthonormal basis
    assert abs(float(tree_norm(basis.d1)) - 1) < 1e-6
    assert abs(float(tree_norm(basis.d2)) - 1) < 1e-6
    assert abs(float(tree_dot(basis.d1, basis.d2))) < 1e-6
    i1, i2, _ = span
    c = basis.coords
    assert np.allclose(c[i1], 0, atol=1e-6) and abs(c[i2, 1]) < 1e-5 * abs(c[i2, 0])
    assert np.isclose(c[i2, 0], np.linalg.norm(_flat(ws[i2]) - _flat(ws[i1])), rtol=1e-6)
    for i in span:  # each lands on its own coordinates, in float32, relative 1e-5 of its norm
        back = _at(basis, c[i, 0], c[i, 1])
        err = np.linalg.norm(_flat(back) - _flat(ws[i]))
        assert err <= 1e-5 * np.linalg.norm(_flat(ws[i])), (i, err)
        assert basis.residuals[i] <= 1e-5 * np.linalg.norm(_flat(ws[i]))
    (other,) = set(range(4)) - set(span)
    assert basis.residuals[other] > 1.0  # a random fourth solution is far off the plane


def test_pca_of_several_runs_equals_numpy_svd():
    runs = [[_tree(10 * r + t) for t in range(4)] for r in range(3)]
    for origin, center in [(None, True), ("mean", False), (1, False)]:
        basis = runs_pca_plane(runs, origin=origin, ignore=None, center=center)
        o = _flat(basis.origin)
        m = np.stack([_flat(p) - o for run in runs for p in run])
        if center:
            m = m - m.mean(0)
        _, s, vt = np.linalg.svd(m, full_matrices=False)
        d1, d2 = _flat(basis.d1), _flat(basis.d2)
        assert abs(abs(d1 @ vt[0]) - 1) < 1e-5 and abs(abs(d2 @ vt[1]) - 1) < 1e-5
        assert abs(d1 @ d1 - 1) < 1e-5 and abs(d2 @ d2 - 1) < 1e-5 and abs(d1 @ d2) < 1e-5
        np.testing.assert_allclose(basis.explained_variance_ratio, s[:2] ** 2 / (s**2).sum(), 1e-6)
        finals = np.stack([_flat(run[-1]) - o for run in runs])
        np.testing.assert_allclose(basis.coords, finals @ np.stack([d1, d2], 1), atol=1e-4)
    first = runs_pca_plane(runs, ignore=None)
    assert np.allclose(_flat(first.origin), _flat(runs[0][-1]))
    assert np.allclose(first.coords[0], 0, atol=1e-6)


def test_projection_in_plane_has_zero_residual_and_off_plane_its_distance():
    basis = solutions_plane([_tree(s) for s in range(3)])
    p = project(basis, [_at(basis, 0.3, -1.7), basis.origin])
    np.testing.assert_allclose(p.coords, [[0.3, -1.7], [0.0, 0.0]], atol=1e-5)
    assert np.all(p.residuals < 1e-5 * np.linalg.norm(_flat(basis.origin)))
    # an offset orthogonal to both directions: its norm is the residual
    n = jax.tree.map(np.asarray, _tree(7))
    for d in (basis.d1, basis.d2):
        c = np.float32(tree_dot(n, d))
        n = jax.tree.map(lambda a, b, c=c: a - c * np.asarray(b), n, d)
    off = jax.tree.map(np.add, _at(basis, 2.0, 1.0), n)
    q = project(basis, [off])
    np.testing.assert_allclose(q.coords, [[2.0, 1.0]], atol=1e-4)
    np.testing.assert_allclose(q.residuals, [float(tree_norm(n))], rtol=1e-5)
    assert project(basis, []).coords.shape == (0, 2)


def test_surface_at_each_solution_equals_its_loss():
    data = _data()
    ws = [_tree(s, 0.5) for s in range(3)]
    basis = solutions_plane(ws)
    c = basis.coords
    xs, ys = np.unique(c[:, 0].astype(np.float32)), np.unique(c[:, 1].astype(np.float32))
    runs = [[_tree(s + 20, 0.5), w] for s, w in enumerate(ws)]
    r = runs_surface(_loss, basis, data=data, runs=runs, xs=xs, ys=ys, progress=False)
    assert r.surface["loss"].shape == (len(xs), len(ys)) and len(r.paths) == 3
    for i, w in enumerate(ws):
        v = r.surface["loss"][
            np.searchsorted(xs, np.float32(c[i, 0])), np.searchsorted(ys, np.float32(c[i, 1]))
        ]
        np.testing.assert_allclose(v, float(jax.jit(_loss)(w, data)), rtol=1e-5)
        # a run ends at its solution
        np.testing.assert_allclose(r.paths[i].coords[-1], c[i], atol=1e-5)


def test_automatic_grid_covers_all_runs_and_runs_contour_draws_them():
    data = _data()
    ws = [_tree(s, 0.5) for s in range(3)]
    basis = solutions_plane(ws)
    runs = [[_tree(s + 20, 0.5), w] for s, w in enumerate(ws)]
    # the automatic grid covers every solution and every checkpoint
    auto = runs_surface(_loss, basis, data=data, runs=runs, resolution=3, progress=False)
    pts = np.concatenate([auto.solutions.coords, *(p.coords for p in auto.paths)])
    assert auto.xs.min() < pts[:, 0].min() and auto.xs.max() > pts[:, 0].max()
    assert auto.ys.min() < pts[:, 1].min() and auto.ys.max() > pts[:, 1].max()
    fig = plot.runs_contour(
        auto.xs,
        auto.ys,
        auto.surface["loss"],
        paths={f"seed {k}": p.coords for k, p in enumerate(auto.paths)},
        solutions=auto.solutions.coords,
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["seed 0", "seed 1", "seed 2"]
    assert {"w1", "w2", "w3"} <= {t.get_text() for t in ax.texts}


def test_side_by_side_shares_grid_and_scale():
    data = _data()
    a, b = _tree(0, 0.5), _tree(1, 2.0)
    specs = {"small": SurfaceSpec(_loss, a), "large": SurfaceSpec({"mse": _loss}, b)}
    xs = np.linspace(-1, 1, 3)
    r = side_by_side(specs, xs, xs, data=data, key=jax.random.key(0), progress=False)
    assert list(r.surfaces) == ["small", "large"] and r.scale.keys() == {"loss", "mse"}
    lo, hi = r.scale["loss"]
    assert lo == r.surfaces["small"]["loss"].min() and hi == r.surfaces["small"]["loss"].max()
    assert r.log["loss"] and r.paths["small"] is None
    centre = float(jax.jit(_loss)(a, data))
    np.testing.assert_allclose(r.surfaces["small"]["loss"][1, 1], centre, rtol=1e-5)
    # each model's own PCA plane, paths returned
    ckpts = {k: [_tree(30 + t, 0.5) for t in range(3)] + [p] for k, p in (("a", a), ("b", b))}
    pca = side_by_side(
        {k: SurfaceSpec(_loss, ckpts[k][-1], checkpoints=ckpts[k]) for k in ckpts},
        xs,
        xs,
        data=data,
        directions="pca",
        progress=False,
    )
    assert pca.paths["a"].shape == (4, 2) and pca.explained_variance_ratio["b"].shape == (2,)
    surf = {k: v["loss"] for k, v in pca.surfaces.items()}
    lo = min(v.min() for v in surf.values())
    hi = max(v.max() for v in surf.values())
    assert pca.scale["loss"] == (lo, hi)
    fig = plot.surface_row(xs, xs, surf, vmin=lo, vmax=hi, paths=pca.paths)
    assert len(fig.axes) == 3  # two panels and one shared colour bar


def test_bad_inputs_are_refused_naming_the_argument():
    ws = [_tree(s) for s in range(3)]
    with pytest.raises(ValueError, match="`solutions` must hold at least 3"):
        solutions_plane(ws[:2])
    with pytest.raises(TypeError, match="`solutions`"):
        solutions_plane(ws[0])
    with pytest.raises(ValueError, match=r"`solutions\[0\]` and `solutions\[1\]` are identical"):
        solutions_plane([ws[0], ws[0], ws[2]])
    with pytest.raises(ValueError, match=r"`solutions\[2\]` is identical to"):
        solutions_plane([ws[0], ws[1], ws[0]])
    with pytest.raises(ValueError, match=r"`solutions\[2\]` is identical to `solutions\[1\]`"):
        solutions_plane([ws[0], ws[1], ws[1]])
    mid = jax.tree.map(lambda p, q: 0.5 * (p + q), ws[0], ws[1])
    with pytest.raises(ValueError, match="lies on the line"):
        solutions_plane([ws[0], ws[1], mid])
    nan = jax.tree.map(lambda p: p, ws[2])
    nan["dense2"]["bias"] = jnp.array([jnp.nan])
    with pytest.raises(
        ValueError, match=r"`solutions\[2\]` has NaN or Inf values in leaf 'dense2.bias'"
    ):
        solutions_plane([ws[0], ws[1], nan])
    bad = jax.tree.map(lambda p: p, ws[1])
    bad["dense1"]["kernel"] = jnp.zeros((3, 8))
    with pytest.raises(ValueError, match=r"`solutions\[1\]` leaf 'dense1.kernel'"):
        solutions_plane([ws[0], bad, ws[2]])
    with pytest.raises(ValueError, match="`span`"):
        solutions_plane(ws, span=(0, 1, 1))
    with pytest.raises(ValueError, match="`runs` must hold at least 3 checkpoints"):
        runs_pca_plane([[ws[0]], [ws[1]]])
    with pytest.raises(ValueError, match="`origin`"):
        runs_pca_plane([ws], origin="median")
    with pytest.raises(ValueError, match="`origin` 3 is not a run index"):
        runs_pca_plane([ws], origin=3)
    with pytest.raises(ValueError, match=r"`runs\[1\]` must hold at least 1"):
        runs_pca_plane([ws, []])
    basis = solutions_plane(ws)
    with pytest.raises(TypeError, match="`plane`"):
        project(ws[0], ws)
    with pytest.raises(TypeError, match="`points`"):
        project(basis, ws[0])
    with pytest.raises(ValueError, match=r"`points\[0\]` has NaN"):
        project(basis, [nan])
    with pytest.raises(ValueError, match="do not span a plane"):
        project(basis._replace(d2=basis.d1), ws)
    with pytest.raises(ValueError, match="`xs` and `ys` must be given together"):
        runs_surface(_loss, basis, data=_data(), xs=[0.0, 1.0])
    with pytest.raises(ValueError, match="`resolution`"):
        cover_grid([[0.0, 0.0]], resolution=1)
    spec = {"a": SurfaceSpec(_loss, ws[0])}
    with pytest.raises(TypeError, match="`key` is required"):
        side_by_side(spec, [0.0, 1.0], [0.0, 1.0], data=_data())
    with pytest.raises(ValueError, match="needs `checkpoints`"):
        side_by_side(spec, [0.0, 1.0], [0.0, 1.0], data=_data(), directions="pca")
    with pytest.raises(ValueError, match="no shared `data=`"):
        side_by_side(spec, [0.0, 1.0], [0.0, 1.0], key=jax.random.key(0))
    with pytest.raises(TypeError, match=r"`specs\['a'\]` must be a SurfaceSpec"):
        side_by_side({"a": (_loss, ws[0])}, [0.0, 1.0], [0.0, 1.0], data=_data())
    with pytest.raises(ValueError, match="`surfaces`"):
        plot.surface_row([0.0, 1.0], [0.0, 1.0], {})
    with pytest.raises(ValueError, match="`solutions`"):
        plot.runs_contour([0.0, 1.0], [0.0, 1.0], np.ones((2, 2)), solutions=np.ones((2, 3)))
