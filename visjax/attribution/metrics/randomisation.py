"""Sanity checks (Adebayo et al. 2018): model-parameter and data randomisation.

:func:`model_randomisation` re-initialises parameter groups (layers) of the model, from the top
(output) layer down, cumulatively (``order="cascading"``) or one at a time (``"independent"``),
and compares each randomised model's maps with the original ones. All the randomised models run
in one compiled program: the parameter point ``k`` is built inside it from a per-leaf mask
(``where(mask[k], random, trained)``), and the points run under ``lax.map`` on CPU (vmapping
over parameters turns convolutions into batched-weight ones, slower there: 1.2-1.4x for the
gradient of the BatchNorm digits ResNet over 64 images, 20 models) or in vmapped chunks on
accelerators, as the landscape sweep evaluates its points.

:func:`data_randomisation` compares the maps of the model with those of the same architecture
trained on permuted labels by a user ``train_fn(params, x, y) -> params`` (the metrics never
train anything themselves).

Maps are compared per example, after one reduction: maps shaped like NHWC images ``(N, H, W, C)``
are summed over channels to one value per pixel (other shapes are used as they are).
``"spearman"`` is the rank correlation of those maps, ``"spearman_abs"`` of their absolute
values; ``"ssim"`` and ``"hog"`` compare the absolute maps scaled to ``[0, 1]`` by their maximum
(SSIM with ``data_range=1``), as the paper compares normalised visualisations.

References:
  Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity Checks for Saliency Maps",
  NeurIPS 2018. https://arxiv.org/abs/1810.03292
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Literal

from visjax.attribution._target import Target
from visjax.attribution.metrics._common import setup
from visjax.attribution.metrics.similarity import hog_similarity, spearman, ssim
from visjax.base.checks import check_finite, check_key, check_positive_int, is_concrete
from visjax.base.trees import flat_paths, layer_groups
from visjax.model import Model

SIMILARITIES = ("spearman_abs", "spearman", "ssim", "hog")
ORDERS = ("cascading", "independent")
INITS = ("truncated_normal", "normal")
AUTO_CHUNK = 8  # randomised models vmapped at once on accelerators


class ModelRandomisation(NamedTuple):
    """What :func:`model_randomisation` returns.

    Attributes:
      layers: the randomised groups, in the order randomised (top first by default).
      scores: similarity name to ``(K, N)``: row ``k`` compares the maps of randomised model
        ``k`` (cascading: groups ``0..k`` randomised; independent: group ``k`` only) with the
        original maps.
      maps: ``(K, N, ...)`` the randomised models' maps.
      original: ``(N, ...)`` the original model's maps.
    """

    layers: tuple[str, ...]
    scores: dict[str, jax.Array]
    maps: jax.Array
    original: jax.Array


class DataRandomisation(NamedTuple):
    """What :func:`data_randomisation` returns.

    Attributes:
      scores: similarity name to ``(N,)``: the maps of the model trained on permuted labels
        compared with the original maps.
      maps: ``(N, ...)`` maps of the model trained on permuted labels.
      original: ``(N, ...)`` the original model's maps.
      params: the parameters ``train_fn`` returned.
    """

    scores: dict[str, jax.Array]
    maps: jax.Array
    original: jax.Array
    params: Any


# --------------------------------------------------------------------------- checks


def _check_similarity(similarity: Any) -> tuple[str, ...]:
    names = (similarity,) if isinstance(similarity, str) else similarity
    if not isinstance(names, tuple | list) or not names:
        raise TypeError(
            f"`similarity` must be a name or a non-empty sequence of names among {SIMILARITIES}, "
            f"got {similarity!r}"
        )
    for s in names:
        if s not in SIMILARITIES:
            raise ValueError(f"`similarity` entries must be among {SIMILARITIES}, got {s!r}")
    return tuple(dict.fromkeys(names))


def _check_kw(kw: Any, name: str) -> dict[str, Any]:
    if kw is None:
        return {}
    if not isinstance(kw, Mapping):
        raise TypeError(f"`{name}` must be a dict of keyword arguments or None, got {kw!r}")
    # lists as tuples: the keyword arguments are static arguments of a jit (hashed)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}


def _check_method(method: Any) -> None:
    if not callable(method):
        raise TypeError(
            "`method` must be a visjax attribution method, a functools.partial of one or a "
            f"function (model, x, target) -> maps, got {type(method).__name__}"
        )


def _check_train_data(x: Any, y: Any) -> jax.Array:
    """``y`` as an array, after checking that ``x`` (arrays, a pytree of them) and ``y`` hold one
    finite row per training example."""
    leaves = jax.tree.leaves(x)
    if not leaves or not all(hasattr(v, "shape") and np.ndim(v) >= 1 for v in leaves):
        raise TypeError(
            f"`x` must be an array (N, ...) or a pytree of them, got {type(x).__name__}"
        )
    n_train = np.shape(leaves[0])[0]
    for v in leaves:
        if np.shape(v)[0] != n_train:
            raise ValueError(f"`x` leaves must share their leading axis, got {np.shape(v)}")
        check_finite(v, "x")
    y = jnp.asarray(y)
    if y.ndim < 1 or y.shape[0] != n_train:
        raise ValueError(f"`y` must have one label per example of `x` ({n_train}), got {y.shape}")
    check_finite(y, "y")
    return y


def _target_arg(target_fn: Any, t: jax.Array) -> Any:
    return target_fn if target_fn is not None else t


# --------------------------------------------------------------------------- layers


def parameter_groups(model: Model, x: jax.Array) -> dict[str, list[int]]:
    """Parameter groups (one per module, :func:`visjax.base.trees.layer_groups`) from the top
    (output) layer down: ordered by the last forward step that first reads one of their leaves
    (the groups no step reads come last). Values: leaf indices in ``jax.tree.leaves`` order."""
    paths, leaves, _ = flat_paths(model.params)
    index = {p: i for i, p in enumerate(paths)}
    jaxpr = model.trace(x).jaxpr.jaxpr
    param_vars = {v: i for i, v in enumerate(jaxpr.invars[: len(leaves)])}
    first: dict[int, int] = {}
    for step, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if not isinstance(v, Literal) and v in param_vars:
                first.setdefault(param_vars[v], step)
    groups = {
        g: [index[p] for p in ps]
        for g, ps in layer_groups(model.params).items()
        if any(jnp.issubdtype(jnp.result_type(leaves[index[p]]), jnp.floating) for p in ps)
    }
    use = {g: min((first[i] for i in ids if i in first), default=-1) for g, ids in groups.items()}
    names = list(groups)
    ranked = sorted(range(len(names)), key=lambda k: (use[names[k]], k), reverse=True)
    return {names[k]: groups[names[k]] for k in ranked}


def _resolve_layers(model: Model, x: jax.Array, layers: Any) -> dict[str, list[int]]:
    known = parameter_groups(model, x)
    if layers is None:
        if not known:
            raise ValueError("the model has no floating-point parameters to randomise")
        return known
    if isinstance(layers, str):
        layers = (layers,)
    if (
        not isinstance(layers, Sequence)
        or not layers
        or not all(isinstance(s, str) for s in layers)
    ):
        raise TypeError(
            f"`layers` must be a non-empty sequence of parameter-group names or glob patterns, "
            f"got {layers!r}"
        )
    paths = flat_paths(model.params)[0]
    out: dict[str, list[int]] = {}
    for entry in layers:
        if entry in known:
            ids = known[entry]
        else:
            ids = [i for i, p in enumerate(paths) if fnmatchcase(p, entry)]
        if not ids:
            raise ValueError(
                f"`layers` entry {entry!r} matches no parameter group or leaf path; the groups "
                f"(top first) are {list(known)}"
            )
        if entry in out:
            raise ValueError(f"`layers` names {entry!r} twice")
        out[entry] = ids
    return out


# --------------------------------------------------------------------------- re-initialisation


def _scale(leaf: jax.Array) -> jax.Array:
    """The leaf's std, else its root mean square (a constant leaf), else 1 (all zero)."""
    leaf = leaf.astype(jnp.float32)
    sd = jnp.std(leaf)
    rms = jnp.sqrt(jnp.mean(leaf * leaf))
    return jnp.where(sd > 0, sd, jnp.where(rms > 0, rms, 1.0))


def random_leaves(params: Any, key: jax.Array, init: Any) -> list[jax.Array]:
    """One re-initialised copy of every leaf (leaf ``i`` from ``split(key, n_leaves)[i]``, so a
    leaf's draw does not depend on which groups are randomised); non-floating leaves kept."""
    leaves = jax.tree.leaves(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for k, leaf in zip(keys, leaves, strict=False):
        leaf = jnp.asarray(leaf)
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            out.append(leaf)
        elif callable(init):
            new = jnp.asarray(init(k, leaf))
            if new.shape != leaf.shape:
                raise ValueError(
                    f"`init` must return an array of the leaf's shape {leaf.shape}, got {new.shape}"
                )
            out.append(new.astype(leaf.dtype))
        else:
            z = (
                jax.random.truncated_normal(k, -2.0, 2.0, leaf.shape, jnp.float32)
                if init == "truncated_normal"
                else jax.random.normal(k, leaf.shape, jnp.float32)
            )
            out.append((z * _scale(leaf)).astype(leaf.dtype))
    return out


_random_leaves = jax.jit(random_leaves, static_argnames=("init",))


# --------------------------------------------------------------------------- comparison


def _pixel_maps(maps: jax.Array) -> jax.Array:
    return maps.sum(-1) if maps.ndim == 4 else maps


def _unit_abs(m: jax.Array) -> jax.Array:
    a = jnp.abs(m)
    top = a.max(axis=tuple(range(1, a.ndim)), keepdims=True)  # (an empty batch too)
    return a / jnp.where(top > 0, top, 1.0)


def compare(
    a: jax.Array,
    b: jax.Array,
    names: tuple[str, ...],
    ssim_kw: dict[str, Any],
    hog_kw: dict[str, Any],
) -> dict[str, jax.Array]:
    """The named similarities of two batches of maps, ``(N,)`` each (see the module docstring)."""
    pa, pb = _pixel_maps(a), _pixel_maps(b)
    if any(s in ("ssim", "hog") for s in names) and pa.ndim != 3:
        raise ValueError(
            "`ssim` and `hog` compare 2-D maps: the method's maps must be (N, H, W) or NHWC "
            f"(N, H, W, C), got {tuple(a.shape)}; drop them from `similarity`"
        )
    out = {}
    for s in names:
        if s == "spearman":
            out[s] = spearman(pa, pb)
        elif s == "spearman_abs":
            out[s] = spearman(pa, pb, absolute=True)
        elif s == "ssim":
            out[s] = ssim(_unit_abs(pa), _unit_abs(pb), data_range=1.0, **ssim_kw)
        else:
            out[s] = hog_similarity(_unit_abs(pa), _unit_abs(pb), **hog_kw)
    return out


def _check_comparable(shape: tuple[int, ...], names, ssim_kw, hog_kw) -> None:
    """Trace :func:`compare` on maps of ``shape`` so bad similarity arguments raise before the
    randomised models run."""
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    try:
        jax.eval_shape(lambda a, b: compare(a, b, names, ssim_kw, hog_kw), spec, spec)
    except TypeError as e:
        raise TypeError(f"bad `ssim_kw` or `hog_kw`: {e}") from e
    except ValueError as e:
        msg = str(e)
        if "too small" in msg:
            msg += " (pass smaller `pixels_per_cell`/`cells_per_block` in `hog_kw`)"
        if "win_size" in msg:
            msg += " (pass a smaller `win_size` in `ssim_kw`)"
        raise ValueError(msg) from e


def _check_maps(maps: jax.Array, rows: Sequence[str]) -> None:
    if not is_concrete(maps):
        return
    bad = ~np.isfinite(np.asarray(maps)).reshape(maps.shape[0], -1).all(1)
    if bad.any():
        which = [rows[i] for i in np.flatnonzero(bad)]
        raise ValueError(f"`method` returned maps with NaN or Inf for: {', '.join(which)}")


# --------------------------------------------------------------------------- model randomisation


@functools.partial(jax.jit, static_argnames=("method", "chunk"))
def _randomised_maps(model, x, target, rand, masks, method, chunk):
    trained, treedef = jax.tree.flatten(model.params)

    def one(mask):
        leaves = [
            jnp.where(mask[i], r, w) for i, (r, w) in enumerate(zip(rand, trained, strict=True))
        ]
        m = model.replace(params=jax.tree.unflatten(treedef, leaves))
        return jnp.asarray(method(m, x, target))

    maps = jax.lax.map(one, masks, batch_size=None if chunk == 1 else chunk)
    return maps.astype(jnp.result_type(maps.dtype, jnp.float32))


# A jit of its own: compiled once per map shape, whichever method made the maps.
@functools.partial(jax.jit, static_argnames=("names", "ssim_kw", "hog_kw"))
def _compare_all(maps, original, names, ssim_kw, hog_kw):
    return jax.vmap(lambda m: compare(m, original, names, dict(ssim_kw), dict(hog_kw)))(maps)


def _chunk(chunk: Any, n_points: int) -> int:
    if chunk == "auto":
        return 1 if jax.default_backend() == "cpu" else min(AUTO_CHUNK, n_points)
    return min(check_positive_int(chunk, "chunk"), n_points)


def model_randomisation(
    model: Any,
    x: Any,
    target: Target,
    method: Callable[..., Any],
    *,
    order: str = "cascading",
    layers: Sequence[str] | None = None,
    key: jax.Array,
    similarity: Sequence[str] = SIMILARITIES,
    init: str | Callable[[jax.Array, jax.Array], jax.Array] = "truncated_normal",
    chunk: int | str = "auto",
    ssim_kw: Mapping[str, Any] | None = None,
    hog_kw: Mapping[str, Any] | None = None,
) -> ModelRandomisation:
    """Model-parameter randomisation test (Adebayo et al. 2018): how much do the maps change
    when layers are re-initialised?

    A method that explains the model should give maps that change (low similarity) as its
    learned parameters are destroyed; one whose maps stay similar is insensitive to them.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: the inputs explained, ``(N, ...)``.
      target: as the attribution methods (an int, ``(N,)`` ints or a callable); resolved once on
        the original model, so every randomised model explains the same class.
      method: any visjax method, a ``functools.partial`` of one, or a function
        ``(model, x, target) -> maps``; it runs on traced parameters inside one compiled program.
      order: ``"cascading"`` (default): model ``k`` has groups ``0..k`` randomised (from the top
        down, cumulatively); ``"independent"``: model ``k`` has group ``k`` only.
      layers: the parameter groups, in the order randomised: group names (one per module, e.g.
        ``"head"``, ``"stages.0.blocks.1.conv1"``) or glob patterns over leaf paths
        (``"*.bn*"``). ``None`` (default): every group with floating parameters, from the top
        (output) layer down, by the order the forward first reads them (see
        :func:`parameter_groups`). Non-trainable state (batch statistics) is kept.
      key: PRNG key of the re-initialisation (leaf ``i`` draws from ``split(key, n_leaves)[i]``,
        so the cascade's models share their random values).
      similarity: names among ``"spearman_abs"``, ``"spearman"``, ``"ssim"``, ``"hog"`` (see the
        module docstring for how maps are reduced).
      init: how a leaf is re-initialised: ``"truncated_normal"`` (default; mean 0, truncated at
        two standard deviations, as the paper's truncated-normal re-initialisation) or
        ``"normal"``, both scaled by the leaf's own standard deviation (its root mean square
        for a constant leaf, 1 for an all-zero one), or a function ``(key, leaf) -> leaf``.
      chunk: randomised models evaluated at once (vmapped); ``"auto"`` (default): one at a time
        (``lax.map``) on CPU, 8 at once on accelerators.
      ssim_kw: keyword arguments of :func:`~visjax.attribution.metrics.similarity.ssim` (e.g.
        ``{"win_size": 3}`` for small maps).
      hog_kw: keyword arguments of :func:`~visjax.attribution.metrics.similarity.hog_similarity`
        (e.g. ``{"pixels_per_cell": (2, 2), "cells_per_block": (2, 2)}`` for 8x8 maps).

    Returns:
      A :class:`ModelRandomisation`: ``layers``, ``scores`` (name to ``(K, N)``), ``maps``
      ``(K, N, ...)`` and ``original`` ``(N, ...)``. A constant map (e.g. a Grad-CAM that the
      ReLU zeroes) has no rank correlation: NaN there, as SciPy.

    Raises:
      ValueError: an unknown ``order``, ``layers`` entry (the message lists the groups) or
        similarity; maps with NaN or Inf (the message names the randomised groups).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from visjax import as_model
      >>> from visjax.attribution import saliency
      >>> def apply(p, x):
      ...     return jnp.tanh(x @ p["fc1"]["w"]) @ p["fc2"]["w"]
      >>> p = {"fc1": {"w": jnp.ones((4, 3))}, "fc2": {"w": jnp.eye(3)}}
      >>> r = model_randomisation(as_model(apply, p, input_shape=(4,)), jnp.ones((2, 4)), 0,
      ...                         saliency, key=jax.random.key(0), similarity=("spearman",))
      >>> r.layers, r.scores["spearman"].shape
      (('fc2', 'fc1'), (2, 2))
    """
    _check_method(method)
    if order not in ORDERS:
        raise ValueError(f"`order` must be one of {ORDERS}, got {order!r}")
    check_key(key)
    if not (callable(init) or init in INITS):
        raise ValueError(f"`init` must be one of {INITS} or a function (key, leaf), got {init!r}")
    names = _check_similarity(similarity)
    ssim_kw, hog_kw = _check_kw(ssim_kw, "ssim_kw"), _check_kw(hog_kw, "hog_kw")
    model, x, target_fn, t = setup(model, x, target)
    groups = _resolve_layers(model, x, layers)
    tgt = _target_arg(target_fn, t)
    shape = jax.eval_shape(method, model, x, tgt).shape
    _check_comparable(shape, names, ssim_kw, hog_kw)
    chunk = _chunk(chunk, len(groups) + 1)
    layer_names = tuple(groups)
    if len(shape) and shape[0] == 0:  # an empty batch: nothing to compile
        scores = {s: jnp.zeros((len(groups), 0), jnp.float32) for s in names}
        maps = jnp.zeros((len(groups), *shape), jnp.float32)
        return ModelRandomisation(layer_names, scores, maps, jnp.zeros(shape, jnp.float32))

    n_leaves = len(jax.tree.leaves(model.params))
    unit = np.zeros((len(groups), n_leaves), bool)
    for k, ids in enumerate(groups.values()):
        unit[k, ids] = True
    masks = np.cumsum(unit, 0) > 0 if order == "cascading" else unit
    masks = np.concatenate([np.zeros((1, n_leaves), bool), masks])  # point 0: the trained model
    rand = _random_leaves(model.params, key, init)
    maps = _randomised_maps(model, x, tgt, rand, jnp.asarray(masks), method, chunk)
    rows = ["the original model"] + [
        ("randomised " + ", ".join(layer_names[: k + 1]) if order == "cascading" else
         "randomised " + layer_names[k])
        for k in range(len(layer_names))
    ]  # fmt: skip
    _check_maps(maps, rows)
    kw = tuple(sorted(ssim_kw.items())), tuple(sorted(hog_kw.items()))
    scores = _compare_all(maps[1:], maps[0], names, *kw)
    return ModelRandomisation(layer_names, scores, maps[1:], maps[0])


# --------------------------------------------------------------------------- data randomisation


def data_randomisation(
    model: Any,
    x: Any,
    y: Any,
    target: Target,
    method: Callable[..., Any],
    *,
    train_fn: Callable[[Any, Any, Any], Any],
    key: jax.Array,
    explain: Any = None,
    similarity: Sequence[str] = SIMILARITIES,
    ssim_kw: Mapping[str, Any] | None = None,
    hog_kw: Mapping[str, Any] | None = None,
) -> DataRandomisation:
    """Data randomisation test (Adebayo et al. 2018): the maps of the trained model against
    those of the same architecture trained on randomly permuted labels.

    Args:
      model: the model trained on the true labels (anything :func:`visjax.as_model` accepts).
      x, y: the training data: ``train_fn(model.params, x, permuted y)`` gives the parameters
        trained on permuted labels (the labels are permuted among the examples with ``key``).
      target: as the attribution methods, for the explained inputs.
      method: as :func:`model_randomisation`.
      train_fn: ``(params, x, y) -> params``: trains from (or re-initialises like) ``params``;
        the metrics never import a trainer.
      key: PRNG key of the label permutation.
      explain: the inputs explained; ``None`` (default): ``x``.
      similarity, ssim_kw, hog_kw: as :func:`model_randomisation`.

    Returns:
      A :class:`DataRandomisation` (``scores`` name to ``(N,)``, ``maps``, ``original``,
      ``params``).
    """
    _check_method(method)
    if not callable(train_fn):
        raise TypeError(f"`train_fn` must be a function (params, x, y) -> params, got {train_fn!r}")
    check_key(key)
    names = _check_similarity(similarity)
    ssim_kw, hog_kw = _check_kw(ssim_kw, "ssim_kw"), _check_kw(hog_kw, "hog_kw")
    try:
        model, xe, target_fn, t = setup(model, x if explain is None else explain, target)
    except (TypeError, ValueError) as e:
        if explain is None:
            raise
        raise type(e)(str(e).replace("`x`", "`explain`")) from e
    y = _check_train_data(x, y)
    tgt = _target_arg(target_fn, t)
    shape = jax.eval_shape(method, model, xe, tgt).shape
    _check_comparable(shape, names, ssim_kw, hog_kw)
    # (0 or 1 labels: nothing to permute, and nothing compiles)
    params = train_fn(model.params, x, jax.random.permutation(key, y) if len(y) > 1 else y)
    if len(shape) and shape[0] == 0:  # an empty batch explained: no maps, nothing to compile
        empty = jnp.zeros(shape, jnp.float32)
        scores = {s: jnp.zeros((0,), jnp.float32) for s in names}
        return DataRandomisation(scores, empty, empty, params)
    other = model.replace(params=params)
    original = jnp.asarray(method(model, xe, tgt))
    maps = jnp.asarray(method(other, xe, tgt))
    _check_maps(jnp.stack([original, maps]), ["the original model", "the model from `train_fn`"])
    original = original.astype(jnp.result_type(original.dtype, jnp.float32))
    maps = maps.astype(original.dtype)
    scores = compare(maps, original, names, ssim_kw, hog_kw)
    return DataRandomisation(scores, maps, original, params)
