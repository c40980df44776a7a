"""Many runs on one plane: planes spanned by solutions or by the PCA of several trajectories.

Several trained solutions of one architecture (seeds, optimisers, schedules) are compared on one
shared plane, the loss surface on it computed once, and every solution's point and every run's
trajectory projected onto it:

* :func:`solutions_plane`: the plane through three solutions (Garipov et al. 2018): origin
  ``w₁``, ``u = (w₂ − w₁)/‖w₂ − w₁‖``, ``v`` the part of ``w₃ − w₁`` orthogonal to ``u``
  (Gram–Schmidt over the flattened parameters), normalised; the coordinates are distances in
  parameter space and ``w₁, w₂, w₃`` sit at ``(0, 0)``, ``(‖w₂ − w₁‖, 0)`` and
  ``(⟨w₃ − w₁, u⟩, ‖w₃ − w₁ − ⟨w₃ − w₁, u⟩ u‖)``: ``w₁ + x u + y v`` gives each of them back to
  float32 rounding. Garipov et al.'s ``plane.py`` builds the same basis.
* :func:`runs_pca_plane`: the plane of the top two principal directions of all checkpoints of all
  runs stacked, offsets taken from a chosen origin (Li et al. 2018, section 6, does this for one
  trajectory; :func:`visjax.landscape.pca_directions` is the computation), with the explained
  variance ratios.
* :func:`project`: the coordinates of any parameter vectors in a plane and their distance from it
  (the residual norm, out of plane).
* :func:`runs_surface`: the loss on a grid that covers every solution and trajectory, with all of
  them projected: one sweep, all runs drawn together (:func:`visjax.plot.runs_contour`).
* :func:`side_by_side`: several models or losses, each with the same direction definition
  (filter-normalised random directions with one key, each model's own PCA, or a function),
  swept over one shared grid, with a shared colour scale per metric
  (:func:`visjax.plot.surface_row`).

Inner products and residuals are accumulated leaf by leaf in float64 on the host (one leaf of all
points at a time), the directions are stored in the parameters' dtypes. A plane's basis ``d1``,
``d2`` has unit norm: coordinates along it are parameter-space distances, comparable between the
three-solution plane and the PCA plane. Coordinates are those of the orthogonal projection onto
the stored (rounded) basis, so ``origin + x d1 + y d2`` is the point of the plane closest to the
projected parameters.

References:
  Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, "Loss Surfaces, Mode Connectivity, and Fast
  Ensembling of DNNs", NeurIPS 2018. https://arxiv.org/abs/1802.10026 ;
  Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets", NeurIPS
  2018, section 6. https://arxiv.org/abs/1712.09913
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import (
    check_finite_tree,
    check_floating_tree,
    check_key,
)
from visjax.base.grids import check_grid, cover_grid
from visjax.base.trees import check_like, flat_paths
from visjax.landscape.directions import (
    Ignore,
    Normalization,
    check_ignore,
    random_plane,
)
from visjax.landscape.losses import as_loss_table
from visjax.landscape.slices import basis_through, plane
from visjax.landscape.surface import Strategy
from visjax.landscape.trajectory import pca_directions

# --------------------------------------------------------------------------- results


class SolutionPlane(NamedTuple):
    """A plane ``origin + x d1 + y d2`` shared by several solutions.

    ``d1``, ``d2``: orthonormal directions shaped like the parameters (leaf dtypes kept);
    ``coords``: ``(S, 2)`` coordinates of the solutions (the given solutions for
    :func:`solutions_plane`, each run's last checkpoint for :func:`runs_pca_plane`);
    ``residuals``: ``(S,)`` their distances from the plane; ``explained_variance_ratio``: ``(2,)``
    for a PCA plane, ``None`` for a plane spanned by solutions.
    """

    origin: Any
    d1: Any
    d2: Any
    coords: np.ndarray
    residuals: np.ndarray
    explained_variance_ratio: np.ndarray | None


class Projection(NamedTuple):
    """Points projected on a plane: ``coords`` ``(N, 2)`` and ``residuals`` ``(N,)``, the norm of
    each point's offset from the plane (out of plane)."""

    coords: np.ndarray
    residuals: np.ndarray


class RunsSurface(NamedTuple):
    """One surface with every solution and run on it.

    ``surface``: dict metric -> ``(len(xs), len(ys))`` as :func:`visjax.landscape.plane` returns
    (``surface[m][i, j]`` at ``origin + xs[i] d1 + ys[j] d2``); ``solutions``: the solutions'
    :class:`Projection`; ``paths``: one :class:`Projection` per run (its checkpoints in order);
    ``plane``: the :class:`SolutionPlane`.
    """

    surface: dict[str, np.ndarray]
    xs: np.ndarray
    ys: np.ndarray
    solutions: Projection
    paths: tuple[Projection, ...]
    plane: SolutionPlane


class SurfaceSpec(NamedTuple):
    """One panel of :func:`side_by_side`: a loss, the parameters the plane is centred on, and
    optionally its own data and checkpoints (for ``directions="pca"``).

    ``loss_fn`` is anything :func:`visjax.landscape.plane` takes (a callable, a dict of metrics,
    ``(model, "cross_entropy", ...)``); ``data=None`` uses the shared ``data=`` of
    :func:`side_by_side`.
    """

    loss_fn: Any
    params: Any
    data: Any = None
    checkpoints: Sequence[Any] | None = None


class SideBySide(NamedTuple):
    """Surfaces of several models over one grid, with a shared colour scale.

    ``surfaces``: panel name -> dict metric -> ``(len(xs), len(ys))``; ``scale``: metric ->
    ``(vmin, vmax)`` over the finite values of every panel; ``log``: metric -> whether every
    finite value is positive (geometric levels fit); ``paths``: panel name -> ``(T, 2)`` checkpoint
    coordinates for ``directions="pca"``, else ``None``; ``explained_variance_ratio``: panel name
    -> ``(2,)`` for ``"pca"``, else ``None``.
    """

    surfaces: dict[str, dict[str, np.ndarray]]
    xs: np.ndarray
    ys: np.ndarray
    scale: dict[str, tuple[float, float]]
    log: dict[str, bool]
    paths: dict[str, np.ndarray | None]
    explained_variance_ratio: dict[str, np.ndarray | None]


# --------------------------------------------------------------------------- host algebra


def _f64(x: Any) -> np.ndarray:
    return np.asarray(jax.device_get(x), np.float64).reshape(-1)


def _check_points(points: Any, name: str, minimum: int) -> list[Any]:
    if isinstance(points, (str, bytes, Mapping)) or not isinstance(points, Sequence):
        raise TypeError(
            f"`{name}` must be a sequence (list or tuple) of parameter pytrees, "
            f"got {type(points).__name__}"
        )
    if len(points) < minimum:
        raise ValueError(
            f"`{name}` must hold at least {minimum} parameter pytree"
            f"{'s' if minimum > 1 else ''}, got {len(points)}"
        )
    return list(points)


def _leaf_rows(
    points: list[Any], names: list[str], ref: Any, ref_name: str
) -> tuple[list[str], list[list]]:
    """Dotted paths of ``ref`` and, per point, its leaves; every point checked against ``ref``
    (tree, shapes, floating dtypes)."""
    check_floating_tree(ref, ref_name)
    for p, name in zip(points, names, strict=True):
        if name != ref_name:
            check_like(p, ref, name, ref_name)
            check_floating_tree(p, name)
    paths, _, _ = flat_paths(ref)
    return paths, [jax.tree.leaves(p) for p in points]


def _nonfinite(paths, rows_by_point, names) -> None:
    for leaves, name in zip(rows_by_point, names, strict=True):
        for path, leaf in zip(paths, leaves, strict=True):
            if not np.isfinite(np.asarray(jax.device_get(leaf))).all():
                raise ValueError(f"`{name}` has NaN or Inf values in leaf '{path}'")


def _project(origin: Any, d1: Any, d2: Any, points: list[Any], names: list[str]) -> Projection:
    """Orthogonal projection of ``points`` on ``origin + span(d1, d2)``, in float64."""
    paths, rows = _leaf_rows(points, names, origin, "plane.origin")
    o, a, b = (jax.tree.leaves(t) for t in (origin, d1, d2))
    n = len(points)
    rhs = np.zeros((n, 2))
    gram = np.zeros((2, 2))
    for j in range(len(o)):
        base, u, v = _f64(o[j]), _f64(a[j]), _f64(b[j])
        for arr, what in ((base, "plane.origin"), (u, "plane.d1"), (v, "plane.d2")):
            if not np.isfinite(arr).all():
                raise ValueError(f"`{what}` has NaN or Inf values in leaf '{paths[j]}'")
        gram += [[u @ u, u @ v], [u @ v, v @ v]]
        for i in range(n):
            off = _f64(rows[i][j]) - base
            if not np.isfinite(off).all():
                raise ValueError(f"`{names[i]}` has NaN or Inf values in leaf '{paths[j]}'")
            rhs[i] += (off @ u, off @ v)
    if np.linalg.det(gram) <= 1e-12 * gram[0, 0] * gram[1, 1] or gram[0, 0] * gram[1, 1] == 0:
        raise ValueError("`plane.d1` and `plane.d2` do not span a plane (a zero or parallel pair)")
    coords = np.linalg.solve(gram, rhs.T).T
    res2 = np.zeros(n)
    for j in range(len(o)):
        base, u, v = _f64(o[j]), _f64(a[j]), _f64(b[j])
        for i in range(n):
            r = _f64(rows[i][j]) - base - coords[i, 0] * u - coords[i, 1] * v
            res2[i] += r @ r
    return Projection(coords, np.sqrt(res2))


# --------------------------------------------------------------------------- planes


def solutions_plane(
    solutions: Sequence[Any], *, span: tuple[int, int, int] = (0, 1, 2)
) -> SolutionPlane:
    """The plane through three solutions (Garipov et al. 2018), every solution projected on it.

    With ``w₁, w₂, w₃`` the solutions picked by ``span``: origin ``w₁``, ``d1 = (w₂ − w₁)/‖w₂ −
    w₁‖``, ``d2`` the part of ``w₃ − w₁`` orthogonal to ``d1`` (Gram–Schmidt over all leaves,
    float64), normalised. ``w₁, w₂, w₃`` land on their own coordinates: ``w₁ + x d1 + y d2``
    equals each of them to float32 rounding (``(0, 0)``, ``(‖w₂ − w₁‖, 0)`` and ``(⟨w₃ − w₁,
    d1⟩, ‖…‖)``); the other solutions are projected (with their distance from the plane).

    Args:
      solutions: ``S >= 3`` parameter pytrees with the same tree and leaf shapes (e.g. runs
        from different seeds).
      span: the indices of ``w₁, w₂, w₃`` in ``solutions`` (distinct).

    Returns:
      A :class:`SolutionPlane` (``explained_variance_ratio`` ``None``).

    Raises:
      TypeError: ``solutions`` is not a sequence; a solution with a non-floating leaf.
      ValueError: fewer than 3 solutions; trees or shapes that differ; NaN/Inf values; a bad
        ``span``; ``w₁ = w₂`` or three solutions on one line (no plane).

    Example:
      >>> import jax.numpy as jnp
      >>> ws = [{"w": jnp.array(v)} for v in ([0.0, 0.0, 1.0], [3.0, 0.0, 1.0], [1.0, 2.0, 1.0])]
      >>> solutions_plane(ws).coords.round(6).tolist()
      [[0.0, 0.0], [3.0, 0.0], [1.0, 2.0]]

    References:
      Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, "Loss Surfaces, Mode Connectivity, and
      Fast Ensembling of DNNs", NeurIPS 2018. https://arxiv.org/abs/1802.10026
    """
    solutions = _check_points(solutions, "solutions", 3)
    if (
        not isinstance(span, (tuple, list))
        or len(span) != 3
        or not all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in span)
        or len({int(i) % len(solutions) for i in span}) != 3
        or not all(-len(solutions) <= i < len(solutions) for i in span)
    ):
        raise ValueError(
            f"`span` must be 3 distinct indices into `solutions` (0..{len(solutions) - 1}), "
            f"got {span!r}"
        )
    names = [f"solutions[{i}]" for i in range(len(solutions))]
    i1, i2, i3 = (int(i) % len(solutions) for i in span)
    w1 = solutions[i1]
    paths, rows = _leaf_rows(solutions, names, w1, names[i1])
    _nonfinite(paths, rows, names)
    o = jax.tree.leaves(w1)
    u, v, _ = basis_through(
        o,
        rows[i2],
        rows[i3],
        names=(names[i1], names[i2], names[i3]),
        hint=" (pick, with `span`, three distinct solutions not on one line)",
    )
    _, treedef = jax.tree.flatten(w1)

    def tree(vecs):
        return jax.tree.unflatten(
            treedef,
            [
                jnp.asarray(x.reshape(np.shape(leaf)), jnp.result_type(leaf))
                for x, leaf in zip(vecs, o, strict=True)
            ],
        )

    d1, d2 = tree(u), tree(v)
    proj = _project(w1, d1, d2, solutions, names)
    return SolutionPlane(w1, d1, d2, proj.coords, proj.residuals, None)


def runs_pca_plane(
    runs: Sequence[Sequence[Any]],
    *,
    origin: Any = None,
    ignore: Ignore = "biasbn",
    center: bool = True,
) -> SolutionPlane:
    """The PCA plane of several trajectories: all checkpoints of all runs stacked (Li et al. §6).

    The rows are ``θ − origin`` for every checkpoint of every run (the leaves selected by
    ``ignore`` zero), mean-centred with ``center=True`` (scikit-learn's PCA, as Li et al.'s code
    for one trajectory); the directions are the top two principal directions (unit norm), the
    explained variance ratios their share of the rows' variance
    (:func:`visjax.landscape.pca_directions` on the stacked checkpoints). Signs: the first run's
    first checkpoint has coordinates ``≤ 0``. The solutions are each run's last checkpoint.

    Args:
      runs: one sequence of parameter pytrees per run (its checkpoints in order, the last one its
        solution), at least 3 checkpoints in all.
      origin: the point the offsets are taken from and the plane is centred on: ``None``
        (default) the first run's last checkpoint (Li et al.'s choice for one run), an int ``k``
        the last checkpoint of run ``k``, ``"mean"`` the mean of all checkpoints, or a parameter
        pytree.
      ignore: ``"biasbn"``, ``None`` or glob patterns, as in :func:`pca_directions`.
      center: subtract the rows' mean before the SVD (with it, the directions do not depend on
        ``origin``; only the coordinates do).

    Returns:
      A :class:`SolutionPlane` with ``explained_variance_ratio``.

    Raises:
      TypeError: ``runs`` or a run is not a sequence; a checkpoint (or ``origin``) with a
        non-floating leaf.
      ValueError: an empty run; fewer than 3 checkpoints in all; trees or shapes that differ;
        NaN/Inf values; a bad ``origin``; checkpoints that do not span a plane.

    Example:
      >>> import jax.numpy as jnp
      >>> runs = [[{"w": jnp.array([[c, s, 0.0]])} for c, s in p]
      ...         for p in ([(3.0, 0.0), (0.0, 1.0)], [(-3.0, 0.0), (0.0, -1.0)])]
      >>> r = runs_pca_plane(runs, origin="mean", ignore=None)
      >>> r.explained_variance_ratio.round(3).tolist(), r.coords.round(3).tolist()
      ([0.9, 0.1], [[0.0, -1.0], [0.0, 1.0]])

    References:
      Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
      NeurIPS 2018, section 6. https://arxiv.org/abs/1712.09913
    """
    runs = _check_points(runs, "runs", 1)
    flat, names = [], []
    for k, run in enumerate(runs):
        run = _check_points(run, f"runs[{k}]", 1)
        flat += run
        names += [f"runs[{k}][{t}]" for t in range(len(run))]
    if len(flat) < 3:
        raise ValueError(f"`runs` must hold at least 3 checkpoints in all, got {len(flat)}")
    ignore = check_ignore(ignore)
    ref = flat[0]
    paths, rows = _leaf_rows(flat, names, ref, names[0])
    _nonfinite(paths, rows, names)
    origin = _resolve_origin(origin, runs, flat, ref)
    pca = pca_directions(flat, origin, ignore=ignore, center=bool(center))
    finals = [run[-1] for run in runs]
    proj = _project(origin, pca.d1, pca.d2, finals, [f"runs[{k}][-1]" for k in range(len(runs))])
    return SolutionPlane(
        origin, pca.d1, pca.d2, proj.coords, proj.residuals, pca.explained_variance_ratio
    )


def _resolve_origin(origin: Any, runs: list, flat: list, ref: Any) -> Any:
    if origin is None:
        return runs[0][-1]
    if isinstance(origin, str):
        if origin != "mean":
            raise ValueError(
                f"`origin` must be None, an int, 'mean' or a parameter pytree, got {origin!r}"
            )
        leaves = [jax.tree.leaves(p) for p in flat]
        _, treedef = jax.tree.flatten(ref)
        mean = [
            jnp.asarray(
                np.mean([_f64(ls[j]) for ls in leaves], 0).reshape(np.shape(leaf)),
                jnp.result_type(leaf),
            )
            for j, leaf in enumerate(jax.tree.leaves(ref))
        ]
        return jax.tree.unflatten(treedef, mean)
    if isinstance(origin, int | np.integer) and not isinstance(origin, bool):
        if not -len(runs) <= origin < len(runs):
            raise ValueError(f"`origin` {origin} is not a run index (0..{len(runs) - 1})")
        return runs[int(origin)][-1]
    check_like(origin, ref, "origin", "runs[0][0]")
    check_floating_tree(origin, "origin")
    paths, leaves, _ = flat_paths(origin)
    _nonfinite(paths, [leaves], ["origin"])
    return origin


def project(plane: SolutionPlane, points: Sequence[Any]) -> Projection:
    """Coordinates of parameter vectors in a plane and their distances from it.

    ``coords[i]`` minimises ``‖points[i] − (origin + x d1 + y d2)‖`` (the orthogonal
    projection, float64); ``residuals[i]`` is that minimum, the norm of the part out of plane
    (zero, to rounding, for a point of the plane).

    Args:
      plane: a :class:`SolutionPlane` (or any object with ``origin``, ``d1``, ``d2``).
      points: a sequence of parameter pytrees shaped like ``plane.origin`` (e.g. a run's
        checkpoints).

    Returns:
      A :class:`Projection`: ``coords`` ``(N, 2)``, ``residuals`` ``(N,)``.

    Raises:
      TypeError: ``plane`` lacks ``origin``/``d1``/``d2``; ``points`` is not a sequence; a
        point with a non-floating leaf.
      ValueError: a point's tree or shapes differ from the origin; NaN/Inf values.

    Example:
      >>> import jax.numpy as jnp
      >>> ws = [{"w": jnp.array(v)} for v in ([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])]
      >>> p = project(solutions_plane(ws), [{"w": jnp.array([2.0, 3.0, 4.0])}])
      >>> p.coords.tolist(), p.residuals.tolist()
      ([[2.0, 3.0]], [4.0])
    """
    _check_plane(plane)
    points = _check_points(points, "points", 0)
    if not points:
        return Projection(np.zeros((0, 2)), np.zeros(0))
    return _project(
        plane.origin, plane.d1, plane.d2, points, [f"points[{i}]" for i in range(len(points))]
    )


def _check_plane(plane: Any) -> None:
    if not all(hasattr(plane, a) for a in ("origin", "d1", "d2")):
        raise TypeError(
            "`plane` must be a SolutionPlane (from solutions_plane or runs_pca_plane), "
            f"got {type(plane).__name__}"
        )
    check_like(plane.d1, plane.origin, "plane.d1", "plane.origin")
    check_like(plane.d2, plane.origin, "plane.d2", "plane.origin")


# --------------------------------------------------------------------------- sweeps


def runs_surface(
    loss_fn: Any,
    basis: SolutionPlane,
    *,
    data: Any,
    runs: Sequence[Sequence[Any]] = (),
    xs: Any = None,
    ys: Any = None,
    resolution: int = 21,
    margin: float = 0.25,
    batch_size: int | str | None = "auto",
    strategy: Strategy = "auto",
    progress: bool | str | Callable[[int, int], None] = "auto",
    block_size: int | None = None,
    devices: Any = None,
    run_dir: str | os.PathLike | None = None,
    dtype: Any = None,
) -> RunsSurface:
    """The loss on a plane once, with every solution and every run's trajectory projected on it.

    The grid is ``xs × ys`` when given, else :func:`cover_grid` of the solutions' and all
    checkpoints' coordinates (``resolution`` points per axis, ``margin`` on every side); the
    sweep is :func:`visjax.landscape.plane` ``(loss_fn, basis.origin, basis.d1, basis.d2, xs,
    ys)``. ``visjax.plot.runs_contour`` draws the result.

    Args:
      loss_fn: ``(params, batch) -> scalar``, a dict of them, or ``(model, "cross_entropy",
        ...)``.
      basis: a :class:`SolutionPlane` (:func:`solutions_plane` or :func:`runs_pca_plane`).
      data: one loss batch, summed in chunks of ``batch_size``.
      runs: one sequence of checkpoints per run (may be empty), projected as paths.
      xs, ys: explicit strictly increasing grids (both or neither).
      resolution, margin: the automatic grid (:func:`cover_grid`).
      batch_size, strategy, progress, block_size, devices, run_dir, dtype: as in
        :func:`visjax.landscape.plane`.

    Returns:
      A :class:`RunsSurface`.

    Raises:
      ValueError: only one of ``xs``/``ys``; a bad grid; a run or checkpoint that does not match
        the plane's origin, or holds NaN/Inf; the errors of :func:`visjax.landscape.plane`.
    """
    as_loss_table(loss_fn)
    _check_plane(basis)
    runs = _check_points(runs, "runs", 0)
    paths = tuple(
        _project(
            basis.origin,
            basis.d1,
            basis.d2,
            _check_points(run, f"runs[{k}]", 1),
            [f"runs[{k}][{t}]" for t in range(len(run))],
        )
        for k, run in enumerate(runs)
    )
    sol = Projection(
        np.asarray(basis.coords, np.float64).reshape(-1, 2),
        np.asarray(basis.residuals, np.float64).reshape(-1),
    )
    if (xs is None) != (ys is None):
        raise ValueError("`xs` and `ys` must be given together (or neither, for an automatic grid)")
    if xs is None:
        xs, ys = cover_grid(
            np.concatenate([sol.coords, *(p.coords for p in paths)]),
            resolution=resolution,
            margin=margin,
        )
    else:
        xs, ys = check_grid(xs, "xs"), check_grid(ys, "ys")
    surface = plane(
        loss_fn,
        basis.origin,
        basis.d1,
        basis.d2,
        xs,
        ys,
        data=data,
        batch_size=batch_size,
        strategy=strategy,
        progress=progress,
        block_size=block_size,
        devices=devices,
        run_dir=run_dir,
        dtype=dtype,
    )
    return RunsSurface(surface, xs, ys, sol, paths, basis)


def side_by_side(
    specs: Mapping[str, SurfaceSpec],
    xs: Any,
    ys: Any,
    *,
    data: Any = None,
    directions: str | Callable[[Any], tuple[Any, Any]] = "random",
    key: jax.Array | None = None,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
    orthogonal: bool = False,
    batch_size: int | str | None = "auto",
    strategy: Strategy = "auto",
    progress: bool | str | Callable[[int, int], None] = "auto",
    block_size: int | None = None,
    devices: Any = None,
    dtype: Any = None,
) -> SideBySide:
    """Surfaces of several models or losses along the same direction definition, one grid.

    Every panel is swept with :func:`visjax.landscape.plane` over the same ``xs × ys`` around its
    own ``params``, its directions made the same way for all:

    * ``"random"``: :func:`visjax.landscape.random_plane` ``(params, key=key, normalization=,
      ignore=, orthogonal=)``, the same key for every panel (Li et al.'s comparison of
      architectures: filter-normalised, so the planes are on one scale);
    * ``"pca"``: each panel's own trajectory, :func:`visjax.landscape.pca_directions`
      ``(spec.checkpoints, spec.params, ignore=)``; the paths are returned too;
    * a callable ``directions(params) -> (d1, d2)``.

    The colour scale of each metric is shared: ``scale[m] = (vmin, vmax)`` over the finite values
    of all panels, ``log[m]`` whether they are all positive; :func:`visjax.plot.surface_row`
    draws the panels with it.

    Args:
      specs: panel name -> :class:`SurfaceSpec` (at least one; order kept).
      xs, ys: the shared grid (strictly increasing).
      data: the loss batch of every panel whose ``spec.data`` is ``None``.
      directions: ``"random"``, ``"pca"`` or a callable, as above.
      key: the PRNG key for ``"random"`` (required there, unused otherwise).
      normalization, ignore, orthogonal: for ``"random"`` (``ignore`` also for ``"pca"``).
      batch_size, strategy, progress, block_size, devices, dtype: as in
        :func:`visjax.landscape.plane`.

    Returns:
      A :class:`SideBySide`.

    Raises:
      TypeError: ``specs`` is not a non-empty mapping of :class:`SurfaceSpec`; ``key`` missing
        or not a key for ``"random"``; ``directions`` of another kind; a non-floating leaf in a
        panel's ``params`` (``"random"``, ``"pca"``) or ``checkpoints``.
      ValueError: a panel without data, or without ``checkpoints`` for ``"pca"``; a bad grid;
        NaN/Inf in any panel's ``params`` or ``checkpoints`` (named, e.g.
        "`specs['a'].params['w']`", before any surface is computed); the errors of the
        direction functions and of :func:`visjax.landscape.plane`.
    """
    if not isinstance(specs, Mapping) or not specs:
        raise TypeError("`specs` must be a non-empty mapping of panel name -> SurfaceSpec")
    for name, spec in specs.items():
        if not isinstance(spec, SurfaceSpec):
            raise TypeError(
                f"`specs[{name!r}]` must be a SurfaceSpec(loss_fn, params, data=None, "
                f"checkpoints=None), got {type(spec).__name__}"
            )
        if spec.data is None and data is None:
            raise ValueError(f"`specs[{name!r}]` has no data and no shared `data=` was given")
        as_loss_table(spec.loss_fn)
        # every spec checked before the first surface compiles (random and PCA directions need
        # floating leaves; a callable's may keep others fixed, as plane does)
        check_finite_tree(
            spec.params, f"specs[{name!r}].params", floating=isinstance(directions, str)
        )
    gx, gy = check_grid(xs, "xs"), check_grid(ys, "ys")
    if isinstance(directions, str):
        if directions not in ("random", "pca"):
            raise ValueError(
                f"`directions` must be 'random', 'pca' or a callable, got {directions!r}"
            )
        if directions == "random":
            if key is None:
                raise TypeError("`key` is required with directions='random'")
            check_key(key)
        else:
            ignore = check_ignore(ignore)
            for name, spec in specs.items():
                if spec.checkpoints is None:
                    raise ValueError(
                        f"`specs[{name!r}]` needs `checkpoints` (its trajectory) for "
                        "directions='pca'"
                    )
                where = f"specs[{name!r}].checkpoints"
                for i, c in enumerate(_check_points(spec.checkpoints, where, 0)):
                    check_finite_tree(c, f"{where}[{i}]")
    elif not callable(directions):
        raise TypeError(
            f"`directions` must be 'random', 'pca' or a callable, got {type(directions).__name__}"
        )
    surfaces, paths, ratios = {}, {}, {}
    for name, spec in specs.items():
        path = ratio = None
        if directions == "random":
            d1, d2 = random_plane(
                spec.params,
                key=key,
                normalization=normalization,
                ignore=ignore,
                orthogonal=orthogonal,
            )
        elif directions == "pca":
            pca = pca_directions(list(spec.checkpoints), spec.params, ignore=ignore)
            d1, d2, path, ratio = pca.d1, pca.d2, pca.coords, pca.explained_variance_ratio
        else:
            pair = directions(spec.params)
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"`directions` must return a pair (d1, d2) for `specs[{name!r}]`")
            d1, d2 = pair
        surfaces[str(name)] = plane(
            spec.loss_fn,
            spec.params,
            d1,
            d2,
            gx,
            gy,
            data=data if spec.data is None else spec.data,
            batch_size=batch_size,
            strategy=strategy,
            progress=progress,
            block_size=block_size,
            devices=devices,
            dtype=dtype,
        )
        paths[str(name)], ratios[str(name)] = path, ratio
    scale, log = {}, {}
    for metric in dict.fromkeys(m for s in surfaces.values() for m in s):
        vals = np.concatenate([s[metric].ravel() for s in surfaces.values() if metric in s])
        vals = vals[np.isfinite(vals)]
        if vals.size:
            scale[metric] = (float(vals.min()), float(vals.max()))
            log[metric] = bool(vals.min() > 0)
        else:
            scale[metric] = (float("nan"), float("nan"))
            log[metric] = False
    return SideBySide(surfaces, gx, gy, scale, log, paths, ratios)
