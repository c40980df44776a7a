"""Directions in parameter space: random, filter-normalised directions and planes (Li et al.).

A direction is a pytree shaped like the parameters (same tree, leaf shapes and dtypes); a loss
landscape plots ``L(θ + α d₁ + β d₂)``. Following Li et al. (2018) and their code
(``net_plotter.py`` of ``tomgoldstein/loss-landscape``), a Gaussian direction is rescaled so that
its pieces have the norms of the corresponding pieces of the parameters, which makes plots of
different networks (and of scale-invariant ones) comparable:

* ``"filter"``: ``d_{i,j} ← d_{i,j} · ‖θ_{i,j}‖ / (‖d_{i,j}‖ + 10⁻¹⁰)`` for every leaf ``i`` with
  ``ndim >= 2`` and every output filter ``j``. Their PyTorch code takes filters along the *first*
  axis (``Conv2d`` weights are ``(out, in, kh, kw)``, ``Linear`` weights ``(out, in)``); in Flax's
  layout (HWIO conv kernels ``(kh, kw, in, out)``, dense kernels ``(in, out)``) the output axis is
  the *last*, so filter ``j`` is the slice ``[..., j]``: the same filters as theirs. The rule
  is by axis, not by layer type: a Flax ``Embed`` table ``(vocab, features)`` is grouped by
  feature (PyTorch's ``Embedding`` weight by token), and a ``DenseGeneral`` kernel
  ``(in, heads, head_dim)`` by ``head_dim`` index; use ``"layer"`` there if that matters.
* ``"layer"``: ``d_i ← d_i · ‖θ_i‖ / (‖d_i‖ + 10⁻¹⁰)`` per leaf with ``ndim >= 2``.
* ``"model"``: ``d ← d · ‖θ‖ / (‖d‖ + 10⁻¹⁰)``, both norms over all leaves with ``ndim >= 2``
  that are not ignored (not in their code: one global scale).
* ``None``: the raw Gaussian.

Leaves with ``ndim <= 1`` (biases, norm scales and offsets) are never rescaled. With
``ignore="biasbn"`` (their default for the paper's figures) they are zero in the direction; with
``ignore=None`` they are set equal to the parameters (their ``d.copy_(w)``), so moving by ``α``
scales them by ``1 + α``. ``ignore`` may instead be a sequence of ``fnmatch`` glob patterns over
dotted parameter paths (``"conv1.*"``, ``"stages.0.*"``, ``"*.bias"``); exactly the leaves whose
path matches a pattern are zero and nothing else is: the other 1-D leaves are copied from the
parameters as with ``ignore=None`` (their code does this for any ``ignore`` other than
``"biasbn"``). To zero biases too, add patterns for them (``("conv1.*", "*.bias", "*.scale")``).

Dotted paths join dict keys and sequence indices with ``"."`` in ``jax.tree.leaves`` order:
``"conv1.kernel"``, ``"stages.0.blocks.1.conv2.bias"`` (see :func:`param_paths`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_finite_tree, check_key
from visjax.base.trees import check_like, flat_paths, param_paths

Normalization = Literal["filter", "layer", "model"] | None
Ignore = Literal["biasbn"] | Sequence[str] | None
NORMALIZATIONS = ("filter", "layer", "model", None)
EPS = 1e-10  # Li et al.'s guard in the filter normalisation, used for every norm ratio here


# --------------------------------------------------------------------------- checks


def _check_normalization(normalization: Any) -> Normalization:
    if normalization is None or (
        isinstance(normalization, str) and normalization in ("filter", "layer", "model")
    ):
        return normalization
    raise ValueError(
        f"`normalization` must be one of 'filter', 'layer', 'model' or None, got {normalization!r}"
    )


def check_ignore(ignore: Any) -> str | tuple[str, ...] | None:
    """``ignore`` checked: ``"biasbn"``, ``None`` or a tuple of glob patterns."""
    if ignore is None or (isinstance(ignore, str) and ignore == "biasbn"):
        return ignore
    if isinstance(ignore, str):
        raise ValueError(
            f"`ignore` must be 'biasbn', None or a sequence of glob patterns, got the string "
            f"{ignore!r}; to ignore leaves by pattern pass a tuple, e.g. ({ignore!r},)"
        )
    if isinstance(ignore, (tuple, list)) and all(isinstance(p, str) for p in ignore):
        return tuple(ignore)
    raise TypeError(
        "`ignore` must be 'biasbn', None or a sequence (a tuple under jit) of glob patterns "
        f"over dotted parameter paths, got {ignore!r}"
    )


def leaf_roles(
    paths: list[str], leaves: list[Any], ignore: str | tuple[str, ...] | None
) -> list[str]:
    """Per leaf: ``"norm"`` (random, normalised), ``"zero"`` or ``"copy"`` (the parameter)."""
    small = [np.ndim(leaf) <= 1 for leaf in leaves]
    if ignore == "biasbn":
        return ["zero" if s else "norm" for s in small]
    if ignore is None:
        return ["copy" if s else "norm" for s in small]
    for pat in ignore:
        if not any(fnmatchcase(p, pat) for p in paths):
            shown = ", ".join(paths[:12]) + (", ..." if len(paths) > 12 else "")
            raise ValueError(
                f"`ignore` pattern {pat!r} matches no parameter path; the paths are: {shown}"
            )
    hit = [any(fnmatchcase(p, pat) for pat in ignore) for p in paths]
    return ["zero" if h else "copy" if s else "norm" for h, s in zip(hit, small, strict=True)]


# --------------------------------------------------------------------------- tree algebra


def _acc_dtype(dtypes: Sequence[Any]) -> Any:
    return jnp.result_type(jnp.float32, *dtypes)


def _acc(x: Any) -> jax.Array:
    """``x`` as an array in at least float32, for sums and norms."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def tree_dot(a: Any, b: Any) -> jax.Array:
    """The inner product ``Σ_leaves Σ_i a_i b_i`` of two pytrees with the same tree and shapes.

    Products are accumulated in at least float32 (bfloat16 and float16 leaves are promoted), so
    large parameter vectors do not lose the sum.

    Args:
      a: a pytree of arrays.
      b: a pytree with the tree and leaf shapes of ``a``.

    Returns:
      A scalar (float32, or float64 for float64 leaves).

    Example:
      >>> import jax.numpy as jnp
      >>> float(tree_dot({"w": jnp.ones((2, 2))}, {"w": jnp.full((2, 2), 0.5)}))
      2.0
    """
    check_like(b, a, "b", "a")
    return _dot(a, b)


def tree_norm(a: Any) -> jax.Array:
    """The Euclidean norm ``√(Σ_leaves Σ_i a_i²)`` of a pytree, accumulated in at least float32.

    Example:
      >>> import jax.numpy as jnp
      >>> float(tree_norm({"a": jnp.full((2, 2), 1.5), "b": jnp.zeros(3)}))
      3.0
    """
    return _norm(a)


@jax.jit
def _dot(a: Any, b: Any) -> jax.Array:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return sum((jnp.vdot(_acc(x).ravel(), _acc(y).ravel()) for x, y in pairs), jnp.float32(0))


@jax.jit
def _norm(a: Any) -> jax.Array:
    return jnp.sqrt(sum((jnp.sum(_acc(x) ** 2) for x in jax.tree.leaves(a)), jnp.float32(0)))


def _ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    return num / (den + EPS)


def _normalize_leaves(d_leaves, w_leaves, roles, normalization):
    if normalization == "model":
        norm = [i for i, r in enumerate(roles) if r == "norm"]
        scale = _ratio(_norm([w_leaves[i] for i in norm]), _norm([d_leaves[i] for i in norm]))
    out = []
    for d, w, role in zip(d_leaves, w_leaves, roles, strict=True):
        d = jnp.asarray(d)
        if role == "zero":
            out.append(jnp.zeros_like(d))
        elif role == "copy":
            out.append(jnp.asarray(w, d.dtype))
        elif normalization is None:
            out.append(d)
        elif normalization == "filter":
            axes = tuple(range(d.ndim - 1))
            wn = jnp.sqrt(jnp.sum(_acc(w) ** 2, axis=axes))
            dn = jnp.sqrt(jnp.sum(_acc(d) ** 2, axis=axes))
            out.append((_acc(d) * _ratio(wn, dn)).astype(d.dtype))
        elif normalization == "layer":
            out.append((_acc(d) * _ratio(_norm(w), _norm(d))).astype(d.dtype))
        else:  # model
            out.append((_acc(d) * scale).astype(d.dtype))
    return out


# --------------------------------------------------------------------------- directions


def _check_tree(tree: Any, name: str) -> None:
    """``TypeError`` naming ``name`` for a non-floating leaf, ``ValueError`` for NaN/Inf in a
    concrete one (under jit only dtypes are checked); an empty tree passes."""
    if jax.tree.leaves(tree):
        check_finite_tree(tree, name)


def normalize_direction(
    direction: Any,
    params: Any,
    *,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
) -> Any:
    """Rescale a direction to the norms of the parameters (Li et al.'s normalisation on its own).

    Leaves with ``ndim >= 2`` that are not ignored are rescaled: ``"filter"``:
    ``d_{i,j} ← d_{i,j} ‖θ_{i,j}‖ / (‖d_{i,j}‖ + 10⁻¹⁰)`` per output filter ``j`` (the slice
    ``[..., j]``, Flax's last axis); ``"layer"``: ``d_i ← d_i ‖θ_i‖ / (‖d_i‖ + 10⁻¹⁰)`` per leaf;
    ``"model"``: one scale ``‖θ‖ / (‖d‖ + 10⁻¹⁰)`` over all of them; ``None``: unchanged.
    ``ignore`` then zeroes or copies leaves as in the module docstring (``"biasbn"``: 1-D leaves
    zero; ``None``: 1-D leaves equal to ``params``; patterns: matching leaves zero, other 1-D
    leaves equal to ``params``). A zero filter or leaf of ``direction`` stays zero.

    Li et al.'s PCA (trajectory) directions are not normalised but have biases and norm
    parameters zeroed: ``normalization=None, ignore="biasbn"`` reproduces that.

    Args:
      direction: a pytree with the tree and leaf shapes of ``params`` (leaf dtypes are kept).
      params: the parameters whose norms are matched.
      normalization: ``"filter"``, ``"layer"``, ``"model"`` or ``None`` (static).
      ignore: ``"biasbn"``, ``None`` or a sequence of glob patterns over dotted paths (static;
        pass a tuple under ``jax.jit``).

    Returns:
      The normalised direction, with the tree and leaf dtypes of ``direction``.

    Raises:
      ValueError: an unknown ``normalization``; a ``direction`` whose tree or leaf shapes differ
        from ``params`` (the message names the first differing dotted path); an ``ignore``
        pattern that matches no path; NaN/Inf in ``direction`` or ``params`` (concrete).
      TypeError: ``ignore`` of a wrong type; a non-floating leaf in ``direction`` or ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"w": jnp.array([[3.0, 0.0], [4.0, 1.0]]), "b": jnp.ones(2)}
      >>> d = normalize_direction({"w": jnp.ones((2, 2)), "b": jnp.ones(2)}, params)
      >>> jnp.linalg.norm(d["w"], axis=0).round(5), d["b"]
      (Array([5., 1.], dtype=float32), Array([0., 0.], dtype=float32))

    References:
      Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
      NeurIPS 2018. https://arxiv.org/abs/1712.09913 ; code: https://github.com/tomgoldstein/
      loss-landscape (``net_plotter.normalize_directions_for_weights``). Differences: filters
      are the last axis (Flax layout, the same filters as their first axis in PyTorch);
      ``"layer"`` and ``"model"`` use the same ``10⁻¹⁰`` guard as ``"filter"`` (their
      ``"layer"`` has none); ``"model"`` and glob patterns are additions; their ``"weight"``,
      ``"dfilter"`` and ``"dlayer"`` modes are not provided.
    """
    normalization = _check_normalization(normalization)
    ignore = check_ignore(ignore)
    check_like(direction, params, "direction", "params")
    _check_tree(direction, "direction")
    _check_tree(params, "params")
    leaf_roles(param_paths(params), jax.tree.leaves(params), ignore)  # pattern errors, eagerly
    return _normalize(direction, params, normalization, ignore)


@functools.partial(jax.jit, static_argnames=("normalization", "ignore"))
def _normalize(direction, params, normalization, ignore):
    paths, w_leaves, _ = flat_paths(params)
    d_leaves, treedef = jax.tree.flatten(direction)
    roles = leaf_roles(paths, w_leaves, ignore)
    return jax.tree.unflatten(treedef, _normalize_leaves(d_leaves, w_leaves, roles, normalization))


def random_direction(
    params: Any,
    *,
    key: jax.Array,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
) -> Any:
    """A Gaussian direction shaped like ``params``, normalised as Li et al. (filter-wise default).

    ``d ~ N(0, I)`` (one draw for all leaves, in their common dtype of at least float32, cast to
    each leaf's dtype; a leaf's draw does not depend on ``normalization`` or ``ignore``), then
    :func:`normalize_direction`. With the defaults, every output filter ``[..., j]`` of every
    kernel has the norm of the same filter of ``params`` and biases / norm parameters are zero.

    Works under ``jax.jit`` with ``normalization`` and ``ignore`` static:
    ``jax.jit(random_direction, static_argnames=("normalization", "ignore"))`` (``ignore``
    patterns as a tuple there).

    Args:
      params: a pytree of floating-point arrays (Flax layout: conv kernels ``(kh, kw, in, out)``,
        dense kernels ``(in, out)``, biases and norm parameters ``(c,)``).
      key: one PRNG key (``jax.random.key(0)``; a legacy ``PRNGKey`` also works).
      normalization: ``"filter"`` (default), ``"layer"``, ``"model"`` or ``None`` (static).
      ignore: ``"biasbn"`` (default: 1-D leaves zero), ``None`` (1-D leaves equal to
        ``params``) or a sequence of glob patterns whose leaves are zero (static).

    Returns:
      A pytree with the tree, leaf shapes and dtypes of ``params``.

    Raises:
      TypeError: ``key`` is not one PRNG key; ``ignore`` of a wrong type; a leaf of ``params``
        is not floating-point.
      ValueError: an unknown ``normalization``; an ``ignore`` pattern that matches no path;
        NaN/Inf in ``params`` (concrete).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> params = digits_cnn("function").params
      >>> d = random_direction(params, key=jax.random.key(0))
      >>> d["conv2"]["kernel"].shape, float(jnp.abs(d["conv2"]["bias"]).sum())
      ((3, 3, 16, 32), 0.0)
      >>> w, v = params["conv2"]["kernel"][..., 5], d["conv2"]["kernel"][..., 5]
      >>> bool(jnp.isclose(jnp.linalg.norm(v), jnp.linalg.norm(w), rtol=1e-5))
      True

    References:
      Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
      NeurIPS 2018. https://arxiv.org/abs/1712.09913 (``net_plotter.create_random_direction``;
      differences listed in :func:`normalize_direction`). Their command-line defaults are
      ``--xnorm ''`` and ``--xignore ''`` (no normalisation, biases copied); the paper's
      figures and scripts pass ``filter`` and ``biasbn``, the defaults here.
    """
    check_key(key)
    normalization = _check_normalization(normalization)
    ignore = check_ignore(ignore)
    paths, w_leaves, treedef = flat_paths(params)
    for path, w in zip(paths, w_leaves, strict=True):
        if not jnp.issubdtype(jnp.result_type(w), jnp.floating):
            raise TypeError(
                f"`params` leaf '{path}' has dtype {jnp.result_type(w)}; random directions need "
                "floating-point leaves"
            )
    check_finite_tree(params, "params", floating=False)
    leaf_roles(paths, w_leaves, ignore)  # pattern errors, eagerly
    if not w_leaves:
        return jax.tree.unflatten(treedef, [])
    return _normalize(_gaussian(params, key), params, normalization, ignore)


@jax.jit
def _gaussian(params, key):
    # One draw for all leaves (a threefry per leaf compiled several times slower), kept apart
    # from the normalisation so every normalisation reuses its compiled program.
    w_leaves, treedef = jax.tree.flatten(params)
    dtypes = [jnp.result_type(w) for w in w_leaves]
    flat = jax.random.normal(key, (sum(int(np.size(w)) for w in w_leaves),), _acc_dtype(dtypes))
    raw, start = [], 0
    for w, dtype in zip(w_leaves, dtypes, strict=True):
        size = int(np.size(w))
        raw.append(flat[start : start + size].reshape(np.shape(w)).astype(dtype))
        start += size
    return jax.tree.unflatten(treedef, raw)


def orthogonalize(d1: Any, d2: Any, *, keep_norm: bool = True) -> Any:
    """``d2`` with its projection on ``d1`` removed (Gram–Schmidt over the flattened pytrees).

    ``d2' = d2 − (⟨d1, d2⟩ / ⟨d1, d1⟩) d1``, then, with ``keep_norm``, rescaled to ``‖d2‖``. Inner
    products run over all leaves at once (:func:`tree_dot`), in at least float32. Leaves where
    both directions are zero (ignored biases) stay zero. After the projection a filter-normalised
    ``d2`` no longer has exactly the filter norms of the parameters, only approximately (in high
    dimension two random directions are nearly orthogonal already, so the change is small).
    If ``d1`` is zero, ``d2`` is returned unchanged; if ``d2`` is parallel to ``d1``, zero.

    Args:
      d1: a pytree.
      d2: a pytree with the tree and leaf shapes of ``d1``.
      keep_norm: rescale the result to the norm of ``d2`` (default ``True``).

    Returns:
      A pytree like ``d2`` (its dtypes) orthogonal to ``d1``.

    Raises:
      ValueError: trees or shapes that differ; NaN/Inf in ``d1`` or ``d2`` (concrete).
      TypeError: a non-floating leaf.

    Example:
      >>> import jax.numpy as jnp
      >>> d = orthogonalize({"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([1.0, 1.0])})
      >>> d["w"]
      Array([0.       , 1.4142135], dtype=float32)
    """
    check_like(d2, d1, "d2", "d1")
    _check_tree(d1, "d1")
    _check_tree(d2, "d2")
    return _orthogonalize(d1, d2, bool(keep_norm))


@functools.partial(jax.jit, static_argnames=("keep_norm",))
def _orthogonalize(d1, d2, keep_norm):
    n11, n12 = _dot(d1, d1), _dot(d1, d2)
    c = jnp.where(n11 > 0, n12 / jnp.where(n11 > 0, n11, 1.0), 0.0)
    r = jax.tree.map(lambda a, b: _acc(b) - c * _acc(a), d1, d2)
    if keep_norm:
        nr = _norm(r)
        s = jnp.where(nr > 0, _norm(d2) / jnp.where(nr > 0, nr, 1.0), 0.0)
        r = jax.tree.map(lambda x: x * s, r)
    return jax.tree.map(lambda x, b: x.astype(jnp.result_type(b)), r, d2)


def random_plane(
    params: Any,
    *,
    key: jax.Array,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
    orthogonal: bool = False,
) -> tuple[Any, Any]:
    """Two random directions ``(d1, d2)`` for a plane through ``params`` (Li et al.'s 2-D plots).

    Each is :func:`random_direction` with its own key split from ``key``. Li et al. draw the two
    directions independently and rely on near-orthogonality in high dimension (their
    ``plot_surface.py`` only prints the cosine). With ``orthogonal=True``, ``d2`` is replaced by
    :func:`orthogonalize` ``(d1, d2)``: its projection on ``d1`` removed, then rescaled to its
    norm before the projection; its filter (or layer) norms then match the parameters only
    approximately, and with ``ignore=None`` its copied 1-D leaves become a multiple of the
    parameters instead of equal to them.

    Args:
      params: a pytree of floating-point arrays.
      key: one PRNG key.
      normalization: ``"filter"``, ``"layer"``, ``"model"`` or ``None`` (static).
      ignore: ``"biasbn"``, ``None`` or a sequence of glob patterns (static).
      orthogonal: make ``d2`` orthogonal to ``d1`` (static).

    Returns:
      A pair of pytrees shaped like ``params``.

    Example:
      >>> import jax
      >>> from visjax.zoo import digits_cnn
      >>> params = digits_cnn("function").params
      >>> d1, d2 = random_plane(params, key=jax.random.key(0), orthogonal=True)
      >>> abs(float(tree_dot(d1, d2))) < 1e-4 * float(tree_norm(d1) * tree_norm(d2))
      True

    References:
      Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
      NeurIPS 2018. https://arxiv.org/abs/1712.09913
    """
    check_key(key)
    normalization = _check_normalization(normalization)
    ignore = check_ignore(ignore)
    k1, k2 = jax.random.split(key)
    d1 = random_direction(params, key=k1, normalization=normalization, ignore=ignore)
    d2 = random_direction(params, key=k2, normalization=normalization, ignore=ignore)
    if orthogonal:
        d2 = orthogonalize(d1, d2)
    return d1, d2
