"""Optimisation trajectories: saving checkpoints during training and their PCA plane (Li et al.).

Random directions in a very high-dimensional space are nearly orthogonal to an optimisation path,
so Li et al. (2018, §6) plot the path in the plane of the top two principal directions of the
checkpoints' offsets from the final parameters. Here:

* :class:`TrajectoryWriter` saves parameters with orbax-checkpoint into ``folder/<step>/`` (one
  checkpoint per step; orbax writes each into a temporary folder and renames it, so a killed
  writer leaves no partial checkpoint); :func:`visjax.zoo.train` takes ``trajectory=`` to save the
  initial parameters (step 0) and the parameters after every epoch (step ``epoch + 1``).
* :func:`load_trajectory` reads them back in step order.
* :func:`pca_directions` computes the two directions, their explained variance ratios and the
  path's coordinates in that plane; ``plane(loss_fn, final, d1, d2, xs, ys, ...)`` then sweeps the
  loss there and :func:`visjax.plot.trajectory_contour` draws both.

What Li et al.'s code does (``projection.py`` of ``tomgoldstein/loss-landscape``,
``setup_PCA_directions`` and ``project_trajectory``), and how this module matches it:

* The rows are ``θ_i − θ_final`` for every saved checkpoint *including the final one* (a zero row):
  ``plot_trajectory.py`` collects epochs ``start, start + save_epoch, ..., max_epoch``.
* The PCA is ``sklearn.decomposition.PCA(n_components=2).fit(matrix)``, which **centres** the rows
  (subtracts their mean) before the SVD, so the directions and the explained variance ratios are
  those of the centred matrix (the paper's text says only "PCA of the matrix M"). ``center=True``
  (the default) does the same; ``center=False`` takes the SVD of the raw offsets.
* With ``--ignore biasbn`` the 1-D leaves (biases, norm parameters) are zeroed in the offsets and in
  the directions; ``ignore=`` here does that (default ``"biasbn"``; their script's default is no
  ignoring, ``ignore=None``). The directions are not otherwise normalised (no filter
  normalisation), and keep unit norm.
* A checkpoint's coordinate is ``x = (θ_i − θ_final)·d / ‖d‖`` (their ``project_1D``, method
  ``"cos"``). Since the directions have unit norm this equals ``(θ_i − θ_final)·d / ‖d‖²`` as
  well, so the coordinates are exactly those of the plane ``θ_final + x d₁ + y d₂`` that the loss
  surface is swept on; the final parameters sit at ``(0, 0)``.

Departures: the principal directions come from the eigen-decomposition of the ``T × T`` Gram matrix
of the offsets, accumulated leaf by leaf in float64 on the host, instead of the SVD of the
flattened ``T × P`` matrix (the same singular vectors; memory is one leaf at a time, not ``T × P``).
SVD signs are arbitrary; here each direction's sign is chosen so that the first checkpoint has a
coordinate ``≤ 0`` along it (training runs towards the origin from the left and from below).

References:
  Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
  NeurIPS 2018. https://arxiv.org/abs/1712.09913
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_finite_tree, check_positive_int
from visjax.base.trees import check_like, flat_paths
from visjax.landscape.directions import Ignore, check_ignore, leaf_roles

# --------------------------------------------------------------------------- saving and loading


def _abstract(tree: Any) -> Any:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a), sharding=sharding), tree
    )


class TrajectoryWriter:
    """Saves parameter pytrees as orbax checkpoints ``folder/<step>/``, one per step.

    Each :meth:`save` returns once the checkpoint is on disk (orbax writes it into a temporary
    folder and renames it into place); the writer holds no open resources between saves.

    Args:
      folder: the trajectory folder, created if missing. A step already saved there is an error
        (a new run should get a new folder).

    Example:
      >>> import jax.numpy as jnp, tempfile
      >>> folder = tempfile.mkdtemp()
      >>> w = TrajectoryWriter(folder)
      >>> for step in range(3):
      ...     _ = w.save(step, {"w": jnp.full((2,), float(step))})
      >>> steps, params = load_trajectory(folder)
      >>> steps, [float(p["w"][0]) for p in params]
      ([0, 1, 2], [0.0, 1.0, 2.0])
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).expanduser().resolve()
        self.folder.mkdir(parents=True, exist_ok=True)

    def save(self, step: int, params: Any) -> Path:
        """Save ``params`` as step ``step`` (an int >= 0); return its folder."""
        import orbax.checkpoint as ocp  # noqa: PLC0415 - orbax (~1.1 s), only to save or load

        step = check_positive_int(step, "step", 0)
        path = self.folder / str(int(step))
        if path.exists():
            raise ValueError(
                f"`step` {int(step)} is already saved in {str(self.folder)!r}; "
                "write a new trajectory into a new folder"
            )
        ckptr = ocp.StandardCheckpointer()
        try:
            ckptr.save(path, params)
            ckptr.wait_until_finished()
        finally:
            ckptr.close()
        return path


def trajectory_steps(folder: str | os.PathLike) -> list[int]:
    """The steps saved in a trajectory folder, increasing (orbax's temporary folders skipped)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"`folder` {str(folder)!r} is not a folder")
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def load_trajectory(folder: str | os.PathLike, *, like: Any = None) -> tuple[list[int], list[Any]]:
    """Read the checkpoints a :class:`TrajectoryWriter` saved, in step order.

    Args:
      folder: the trajectory folder.
      like: optional parameters with the saved tree, shapes and dtypes (e.g. ``model.params``);
        the checkpoints are then restored into that structure (and checked against it). Without
        it, orbax restores the saved tree as it is.

    Returns:
      ``(steps, params)``: the increasing steps and one parameter pytree per step.

    Raises:
      ValueError: ``folder`` is not a folder or holds no checkpoint.
    """
    import orbax.checkpoint as ocp  # noqa: PLC0415 - orbax (~1.1 s), only to save or load

    steps = trajectory_steps(folder)
    if not steps:
        raise ValueError(f"`folder` {str(folder)!r} holds no trajectory checkpoint")
    root = Path(folder).expanduser().resolve()
    target = None if like is None else _abstract(like)
    ckptr = ocp.StandardCheckpointer()
    try:
        params = [ckptr.restore(root / str(s), target) for s in steps]
    finally:
        ckptr.close()
    return steps, params


# --------------------------------------------------------------------------- PCA directions


class PCADirections(NamedTuple):
    """The PCA plane of a trajectory.

    ``d1``, ``d2``: unit-norm, orthogonal directions shaped like the parameters (leaf dtypes kept);
    ``explained_variance_ratio``: ``(2,)`` fractions of the offsets' variance (of their total
    squared norm with ``center=False``) along ``d1`` and ``d2``; ``coords``: ``(T, 2)``
    coordinates ``((θ_i − θ_final)·d1, (θ_i − θ_final)·d2)`` of every checkpoint.
    """

    d1: Any
    d2: Any
    explained_variance_ratio: np.ndarray
    coords: np.ndarray


def _f64(x: Any) -> np.ndarray:
    return np.asarray(jax.device_get(x), np.float64)


def pca_directions(
    checkpoints: Sequence[Any],
    final: Any = None,
    *,
    ignore: Ignore = "biasbn",
    center: bool = True,
) -> PCADirections:
    """The top two principal directions of a trajectory's offsets from the final parameters.

    With ``Δ_i = θ_i − θ_final`` (the leaves selected by ``ignore`` set to zero) stacked as the rows
    of ``M`` (``T × P``) and ``M_c = M − mean_i Δ_i`` (``M`` itself with ``center=False``), the
    directions are the top two right singular vectors of ``M_c``, ``d_k = M_cᵀ u_k / s_k``, the
    explained variance ratios ``s_k² / Σ_j s_j²``, and the coordinates ``Δ_i · d_k``. See the
    module docstring for how this matches Li et al.'s code (which centres, through scikit-learn's
    PCA, and includes the final checkpoint in the rows).

    Args:
      checkpoints: ``T >= 3`` parameter pytrees along the path, in order (e.g. the second value of
        :func:`load_trajectory`); include the final parameters to match Li et al.
      final: the parameters the offsets are taken from; default ``checkpoints[-1]``.
      ignore: ``"biasbn"`` (1-D leaves are zero in the offsets and directions), ``None`` (all
        leaves count) or a sequence of glob patterns over dotted parameter paths (matching leaves
        are zero); as in :func:`visjax.landscape.random_direction`.
      center: subtract the mean offset before the SVD (scikit-learn's PCA, Li et al.'s code).

    Returns:
      A :class:`PCADirections`.

    Raises:
      ValueError: fewer than 3 checkpoints, trees or shapes that do not match ``final``, NaN/Inf
        values (in any leaf, ignored ones too), or offsets that do not span a plane (all on one
        line or all zero).
      TypeError: a checkpoint or ``final`` with a non-floating leaf.

    Example:
      >>> import jax.numpy as jnp
      >>> path = [{"w": jnp.array([[3.0 * c, s]])} for c, s in
      ...         [(-1.0, 0.0), (0.0, 1.0), (1.0, 0.0), (0.0, -1.0)]]
      >>> r = pca_directions(path, ignore=None)
      >>> [round(float(v), 3) for v in r.explained_variance_ratio]
      [0.9, 0.1]

    References:
      Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
      NeurIPS 2018, §6. https://arxiv.org/abs/1712.09913
    """
    if isinstance(checkpoints, (str, bytes)) or not isinstance(checkpoints, Sequence):
        raise TypeError(
            "`checkpoints` must be a sequence of parameter pytrees, "
            f"got {type(checkpoints).__name__}"
        )
    if len(checkpoints) < 3:
        raise ValueError(
            f"`checkpoints` must hold at least 3 parameter pytrees for a PCA plane, "
            f"got {len(checkpoints)}"
        )
    ignore = check_ignore(ignore)
    if final is None:
        final = checkpoints[-1]
    else:
        check_finite_tree(final, "final")
    for i, c in enumerate(checkpoints):
        check_like(c, final, f"checkpoints[{i}]", "final")
        check_finite_tree(c, f"checkpoints[{i}]")  # ignored leaves too: a NaN is never silent
    paths, f_leaves, treedef = flat_paths(final)
    zero = [r == "zero" for r in leaf_roles(paths, f_leaves, ignore)]
    t = len(checkpoints)
    all_leaves = [jax.tree.leaves(c) for c in checkpoints]

    def offsets(j: int) -> np.ndarray:  # (T, n) offsets of leaf j, in float64
        base = _f64(f_leaves[j]).reshape(-1)
        rows = np.stack([_f64(leaves[j]).reshape(-1) - base for leaves in all_leaves])
        if not np.isfinite(rows).all():
            bad = next(i for i in range(t) if not np.isfinite(rows[i]).all())
            raise ValueError(
                f"`checkpoints[{bad}]` (or `final`) has NaN or Inf values in leaf '{paths[j]}'"
            )
        return rows

    kept = [j for j in range(len(f_leaves)) if not zero[j]]
    gram = np.zeros((t, t))
    for j in kept:
        rows = offsets(j)
        gram += rows @ rows.T
    h = np.eye(t) - (np.full((t, t), 1.0 / t) if center else 0.0)
    gc = h @ gram @ h
    lam, u = np.linalg.eigh(gc)
    lam, u = lam[::-1][:2], u[:, ::-1][:, :2]
    total = float(np.trace(gc))
    if total <= 0 or lam[0] <= 0:
        raise ValueError("`checkpoints` do not move: every offset from `final` is zero")
    if lam[1] <= 1e-12 * lam[0]:
        raise ValueError("`checkpoints` lie on one line: their offsets do not span a plane")
    s = np.sqrt(lam)
    # coordinates Δ_i·d_k = (M M_cᵀ u_k)/s_k = (G H u_k)/s_k, with G = M Mᵀ
    coords = gram @ h @ u / s
    sign = np.where(coords[0] > 0, -1.0, 1.0)
    coords, u = coords * sign, u * sign
    weights = h @ u / s  # d_k = M_cᵀ u_k / s_k = Mᵀ (H u_k) / s_k

    d1, d2 = [], []
    for j, leaf in enumerate(f_leaves):
        dtype = jnp.result_type(leaf)
        if zero[j]:
            d1.append(jnp.zeros(np.shape(leaf), dtype))
            d2.append(jnp.zeros(np.shape(leaf), dtype))
            continue
        dj = offsets(j).T @ weights  # (n, 2)
        d1.append(jnp.asarray(dj[:, 0].reshape(np.shape(leaf)), dtype))
        d2.append(jnp.asarray(dj[:, 1].reshape(np.shape(leaf)), dtype))
    return PCADirections(
        jax.tree_util.tree_unflatten(treedef, d1),
        jax.tree_util.tree_unflatten(treedef, d2),
        lam / total,
        coords,
    )
