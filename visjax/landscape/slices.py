"""1-D and 2-D slices of the loss landscape: lines, planes, the plane through three models."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import (
    check_finite_tree,
    check_positive_int,
    check_tree_like,
)
from visjax.base.grids import check_grid, cover_grid
from visjax.landscape.losses import as_loss_table
from visjax.landscape.surface import Strategy, evaluate


def _result(values: dict, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {k: v.reshape(shape) for k, v in values.items()}


def interpolate(
    loss_fn: Any,
    params_a: Any,
    params_b: Any,
    alphas: Any,
    *,
    data: Any,
    batch_size: int | str | None = "auto",
    strategy: Strategy = "auto",
    progress: bool | str | Callable[[int, int], None] = "auto",
    block_size: int | None = None,
    devices: Any = None,
    run_dir: str | os.PathLike | None = None,
    dtype: Any = None,
) -> dict[str, np.ndarray]:
    """The loss along the line ``(1 − α) a + α b`` (Goodfellow et al. 2015).

    Args:
      loss_fn: ``(params, batch) -> scalar`` (batch mean), a mapping of them, or
        ``(model, "cross_entropy", ...)``.
      params_a, params_b: the end points (same tree).
      alphas: strictly increasing grid; values outside [0, 1] extrapolate.
      data: one batch (pytree with a leading example axis), summed in chunks of ``batch_size``.
      batch_size: examples per data chunk; ``"auto"`` (default): chosen from the backend and
        the loss's per-example cost (:mod:`visjax.landscape.surface`); ``None``: all at once.
      strategy: how points run (see :mod:`visjax.landscape.surface`).
      progress: a bar over the blocks: ``"auto"`` (default) when standard error is a terminal,
        ``True``/``False`` force it; or ``progress(done, total)`` called after each block.
      block_size: points per compiled block (the unit of progress and of resume).
      devices: ``None`` (all devices), a device list or a :class:`jax.sharding.Mesh`: the points
        are sharded over them (see :mod:`visjax.landscape.surface`).
      run_dir: a folder that makes the sweep resumable (see :mod:`visjax.landscape.resume`).
      dtype: the forward passes' precision: ``None`` (default) the parameters' own, or e.g.
        ``jnp.bfloat16`` (float32 accumulation; see :func:`visjax.landscape.evaluate`).

    Returns:
      A dict name -> ``(len(alphas),)`` NumPy array, one per metric (a single loss function is
      keyed ``"loss"``).

    References:
      Goodfellow, Vinyals, Saxe, "Qualitatively characterizing neural network optimization
      problems", ICLR 2015. https://arxiv.org/abs/1412.6544
    """
    as_loss_table(loss_fn)
    a = check_grid(alphas, "alphas")
    check_tree_like(params_b, params_a, "params_b")
    check_finite_tree(params_a, "params_a", floating=False)
    check_finite_tree(params_b, "params_b", floating=False)
    direction = jax.tree.map(lambda p, q: jnp.asarray(q) - jnp.asarray(p), params_a, params_b)
    values = evaluate(
        loss_fn,
        params_a,
        (direction,),
        a[:, None],
        data=data,
        batch_size=batch_size,
        strategy=strategy,
        progress=progress,
        block_size=block_size,
        devices=devices,
        run_dir=run_dir,
        dtype=dtype,
    )
    return _result(values, a.shape)


def plane(
    loss_fn: Any,
    params: Any,
    d1: Any,
    d2: Any,
    xs: Any,
    ys: Any,
    *,
    data: Any,
    batch_size: int | str | None = "auto",
    strategy: Strategy = "auto",
    progress: bool | str | Callable[[int, int], None] = "auto",
    block_size: int | None = None,
    devices: Any = None,
    run_dir: str | os.PathLike | None = None,
    dtype: Any = None,
) -> dict[str, np.ndarray]:
    """The loss on the plane ``params + x d1 + y d2`` over the grid ``xs × ys``.

    Args:
      loss_fn: as in :func:`interpolate`.
      params: the centre.
      d1, d2: directions shaped like ``params`` (e.g. from :func:`random_plane`).
      xs, ys: strictly increasing grids.
      data, batch_size, strategy, progress, block_size, devices, run_dir, dtype: as in
        :func:`interpolate`.

    Returns:
      A dict name -> surface of shape ``(len(xs), len(ys))`` with ``surface[i, j]`` at
      ``params + xs[i] d1 + ys[j] d2``, one per metric (a single loss function is keyed
      ``"loss"``).

    References:
      Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
      NeurIPS 2018. https://arxiv.org/abs/1712.09913
    """
    as_loss_table(loss_fn)
    gx, gy = check_grid(xs, "xs"), check_grid(ys, "ys")
    check_tree_like(d1, params, "d1")
    check_tree_like(d2, params, "d2")
    for tree, name in ((params, "params"), (d1, "d1"), (d2, "d2")):
        check_finite_tree(tree, name, floating=False)
    coords = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
    values = evaluate(
        loss_fn,
        params,
        (d1, d2),
        coords,
        data=data,
        batch_size=batch_size,
        strategy=strategy,
        progress=progress,
        block_size=block_size,
        devices=devices,
        run_dir=run_dir,
        dtype=dtype,
    )
    return _result(values, (gx.size, gy.size))


class PlaneThrough(NamedTuple):
    """The plane through three models: surfaces, grid, basis and the models' coordinates.

    ``surface`` is a dict name -> surface as :func:`plane` returns; ``surface[name][i, j]`` is
    at ``origin + xs[i] u + ys[j] v`` with ``u, v`` orthonormal (parameter space distances),
    ``origin`` the first model; ``points`` ``(3, 2)`` the models' coordinates.
    """

    surface: Any
    xs: np.ndarray
    ys: np.ndarray
    points: np.ndarray
    u: Any
    v: Any


def plane_through(
    loss_fn: Any,
    p1: Any,
    p2: Any,
    p3: Any,
    *,
    data: Any,
    resolution: int = 21,
    margin: float = 0.25,
    batch_size: int | str | None = "auto",
    strategy: Strategy = "auto",
    progress: bool | str | Callable[[int, int], None] = "auto",
    block_size: int | None = None,
    devices: Any = None,
    run_dir: str | os.PathLike | None = None,
    dtype: Any = None,
) -> PlaneThrough:
    """The loss on the plane through three parameter vectors (as in mode-connectivity work).

    ``u = (p2 − p1)/|p2 − p1|``, ``v`` the normalised part of ``p3 − p1`` orthogonal to ``u``
    (Garipov et al. 2018), computed in float64 as in
    :func:`visjax.landscape.solutions.solutions_plane` (:func:`basis_through`) and returned as
    float32 trees; the grid covers the three models with a ``margin`` (a fraction of the
    extent) on every side, ``resolution`` points per axis. ``batch_size``, ``strategy``,
    ``progress``, ``block_size``, ``devices``, ``run_dir`` and ``dtype`` are as in
    :func:`interpolate`.

    Returns:
      A :class:`PlaneThrough`.

    Raises:
      ValueError: ``p2`` or ``p3`` not shaped like ``p1``, NaN/Inf values, a bad ``resolution``,
        or three models on one line (no plane).
      TypeError: a non-floating leaf in ``p1``, ``p2`` or ``p3``.

    References:
      Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, "Loss Surfaces, Mode Connectivity, and
      Fast Ensembling of DNNs", NeurIPS 2018. https://arxiv.org/abs/1802.10026
    """
    check_tree_like(p2, p1, "p2")
    check_tree_like(p3, p1, "p3")
    resolution = check_positive_int(resolution, "resolution", 2)
    leaves = [jax.tree.leaves(p) for p in (p1, p2, p3)]
    for p, name in zip((p1, p2, p3), ("p1", "p2", "p3"), strict=True):
        check_finite_tree(p, name)
    u, v, (nu, bu, nv) = basis_through(*leaves, names=("p1", "p2", "p3"))
    treedef = jax.tree.structure(p1)
    u, v = (jax.tree.unflatten(treedef, [jnp.asarray(x, jnp.float32) for x in d]) for d in (u, v))
    points = np.array([[0.0, 0.0], [nu, 0.0], [bu, nv]], np.float32)
    xs, ys = cover_grid(points, resolution=resolution, margin=margin)
    surface = plane(
        loss_fn,
        p1,
        u,
        v,
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
    return PlaneThrough(surface, xs, ys, points, u, v)


def basis_through(
    o: list, a: list, b: list, *, names: tuple[str, str, str], hint: str = ""
) -> tuple[list[np.ndarray], list[np.ndarray], tuple[float, float, float]]:
    """Gram–Schmidt basis of the plane through three points given as leaf lists, in float64.

    ``u = (a − o)/‖a − o‖`` and ``v`` the normalised part of ``b − o`` orthogonal to ``u``
    (over all leaves together), each a list of float64 arrays shaped like the leaves, and the
    points' coordinates ``(‖a − o‖, ⟨b − o, u⟩, ‖…‖)``: ``o`` at ``(0, 0)``, ``a`` at ``(nu, 0)``,
    ``b`` at ``(bu, nv)``. Shared by :func:`plane_through` and
    :func:`visjax.landscape.solutions.solutions_plane`; ``names`` (the three arguments) and
    ``hint`` (appended) word the errors for a degenerate plane.
    """
    n1, n2, n3 = names

    def f64(x: Any) -> np.ndarray:
        return np.asarray(jax.device_get(x), np.float64)

    o = [f64(x) for x in o]
    da = [f64(x) - y for x, y in zip(a, o, strict=True)]
    db = [f64(x) - y for x, y in zip(b, o, strict=True)]
    nu = float(np.sqrt(sum((x * x).sum() for x in da)))
    if nu == 0:
        raise ValueError(
            f"`{n1}` and `{n2}` are identical: the plane through them is degenerate{hint}"
        )
    u = [x / nu for x in da]
    bu = float(sum((x * y).sum() for x, y in zip(db, u, strict=True)))
    w = [x - bu * y for x, y in zip(db, u, strict=True)]
    nv = float(np.sqrt(sum((x * x).sum() for x in w)))
    nb = float(np.sqrt(sum((x * x).sum() for x in db)))
    if nv <= 1e-6 * max(nb, nu):
        if nb == 0 or all(np.array_equal(x, y) for x, y in zip(da, db, strict=True)):
            which = f"is identical to `{n1 if nb == 0 else n2}`"
        else:
            which = f"lies on the line through `{n1}` and `{n2}`"
        raise ValueError(
            f"`{n3}` {which}: `{n1}`, `{n2}` and `{n3}` lie on one line, so the plane through "
            f"them is degenerate{hint}"
        )
    return u, [x / nv for x in w], (nu, bu, nv)
