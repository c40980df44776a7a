"""Weight views: per-parameter histograms, and how the same weights changed between checkpoints.

TensorBoard's weight histograms and the "same neurons before and after training" view: every
parameter leaf (a layer's kernel, bias, scale, embedding) is keyed by its dotted path, e.g.
``"conv1.kernel"``, so the entries of two checkpoints of one model line up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from visjax.base.checks import check_positive_int, check_tree_like
from visjax.model import Model, as_model


class WeightHistogram(NamedTuple):
    """One parameter's value distribution.

    Attributes:
      path: the parameter's dotted path (``"conv1.kernel"``).
      shape: the parameter's shape.
      edges: ``(bins + 1,)`` bin edges over the parameter's range.
      counts: ``(bins,)`` int histogram (NumPy's convention).
      mean: the mean weight.
      std: the population standard deviation.
      min: the smallest weight.
      max: the largest weight.
      norm: the Frobenius (L2) norm.
    """

    path: str
    shape: tuple[int, ...]
    edges: np.ndarray
    counts: np.ndarray
    mean: float
    std: float
    min: float
    max: float
    norm: float


class WeightChange(NamedTuple):
    r"""One parameter at two checkpoints ``a`` (before) and ``b`` (after).

    Attributes:
      path: the parameter's dotted path.
      shape: the parameter's shape.
      relative_change: :math:`\|b - a\|_2 / \|a\|_2` (``inf`` when ``a`` is all zeros and ``b``
        is not, 0 when both are).
      norm_a: :math:`\|a\|_2`.
      norm_b: :math:`\|b\|_2`.
      edges: ``(bins + 1,)`` bin edges over the range of both, shared by both histograms.
      counts_a: ``(bins,)`` histogram of ``a``.
      counts_b: ``(bins,)`` histogram of ``b``.
    """

    path: str
    shape: tuple[int, ...]
    relative_change: float
    norm_a: float
    norm_b: float
    edges: np.ndarray
    counts_a: np.ndarray
    counts_b: np.ndarray


def _params(obj: Any, name: str) -> Any:
    """The parameter tree of a Model, of anything as_model takes, or a pytree of arrays."""
    if isinstance(obj, Model):
        return obj.params
    leaves = jax.tree.leaves(obj)
    if leaves and all(hasattr(a, "shape") and hasattr(a, "dtype") for a in leaves):
        return obj
    try:
        return as_model(obj).params
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"`{name}` must be a model or a pytree of parameter arrays, got {type(obj).__name__}"
        ) from e


def _leaves(params: Any) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        parts = []
        for key in path:
            for attr in ("key", "name", "idx"):
                if hasattr(key, attr):
                    parts.append(str(getattr(key, attr)))
                    break
            else:
                parts.append(str(key))
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.floating):
            out[".".join(parts)] = a.astype(np.float64)
    return out


def _edges(values: list[np.ndarray], bins: int) -> np.ndarray:
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _check_finite(leaves: Mapping[str, np.ndarray], name: str) -> None:
    for path, a in leaves.items():
        if not np.isfinite(a).all():
            raise ValueError(f"`{name}` parameter {path!r} holds NaN or Inf")


def weight_histograms(params_or_model: Any, *, bins: int = 32) -> dict[str, WeightHistogram]:
    r"""A histogram and summary statistics of every floating parameter, keyed by dotted path.

    Each histogram spans its own parameter's range ``[min, max]`` in ``bins`` equal bins; the
    norm is :math:`\|w\|_2 = \sqrt{\sum_i w_i^2}`. Computed on the host with NumPy in float64.

    Args:
      params_or_model: a :class:`visjax.Model`, anything :func:`visjax.as_model` accepts, or a
        pytree of parameter arrays.
      bins: bins per histogram.

    Returns:
      ``{path: WeightHistogram}`` in the tree's leaf order (non-floating leaves skipped).

    Raises:
      ValueError: ``bins < 1``, NaN/Inf weights or no floating parameter; TypeError: not a model
        or parameter tree.

    Example:
      >>> import numpy as np
      >>> h = weight_histograms({"fc": {"kernel": np.ones((2, 3)), "bias": np.zeros(3)}}, bins=4)
      >>> list(h), h["fc.kernel"].counts.tolist(), h["fc.kernel"].norm
      (['fc.bias', 'fc.kernel'], [0, 0, 6, 0], 2.449489742783178)
    """
    bins = check_positive_int(bins, "bins")
    leaves = _leaves(_params(params_or_model, "params_or_model"))
    if not leaves:
        raise ValueError("`params_or_model` holds no floating parameter")
    _check_finite(leaves, "params_or_model")
    out = {}
    for path, a in leaves.items():
        edges = _edges([a], bins)
        out[path] = WeightHistogram(
            path=path,
            shape=a.shape,
            edges=edges,
            counts=np.histogram(a, edges)[0],
            mean=float(a.mean()),
            std=float(a.std()),
            min=float(a.min()),
            max=float(a.max()),
            norm=float(np.linalg.norm(a.ravel())),
        )
    return out


def weight_change(params_a: Any, params_b: Any, *, bins: int = 32) -> dict[str, WeightChange]:
    r"""How each parameter moved between two checkpoints of one model (before ``a``, after ``b``).

    Per parameter the relative change :math:`\|b - a\|_2 / \|a\|_2` (how far training moved
    that layer, relative to where it started; the update-to-weight ratio summed over training)
    and both histograms over shared edges, so the distributions can be overlaid.

    Args:
      params_a: the first checkpoint: a model or a parameter pytree.
      params_b: the second, with the same tree structure and leaf shapes.
      bins: bins per histogram.

    Returns:
      ``{path: WeightChange}`` in the tree's leaf order.

    Raises:
      ValueError: the trees differ (the message names the first differing leaf), NaN/Inf
        weights, ``bins < 1``.

    Example:
      >>> import numpy as np
      >>> a = {"w": np.ones(4)}
      >>> weight_change(a, {"w": np.full(4, 1.5)})["w"].relative_change
      0.5
    """
    bins = check_positive_int(bins, "bins")
    tree_a = _params(params_a, "params_a")
    tree_b = _params(params_b, "params_b")
    check_tree_like(tree_b, tree_a, "params_b")
    a_leaves, b_leaves = _leaves(tree_a), _leaves(tree_b)
    _check_finite(a_leaves, "params_a")
    _check_finite(b_leaves, "params_b")
    out = {}
    for path, a in a_leaves.items():
        b = b_leaves[path]
        norm_a = float(np.linalg.norm(a.ravel()))
        diff = float(np.linalg.norm((b - a).ravel()))
        if norm_a > 0:
            rel = diff / norm_a
        else:
            rel = 0.0 if diff == 0 else float("inf")
        edges = _edges([a, b], bins)
        out[path] = WeightChange(
            path=path,
            shape=a.shape,
            relative_change=rel,
            norm_a=norm_a,
            norm_b=float(np.linalg.norm(b.ravel())),
            edges=edges,
            counts_a=np.histogram(a, edges)[0],
            counts_b=np.histogram(b, edges)[0],
        )
    return out
