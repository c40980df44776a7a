"""Deep feature factorisation (Collins, Achanta, Süsstrunk 2018), as pytorch-grad-cam's DFF.

For one image the layer's activation on its grid, ``(H', W', C)``, is the matrix ``A`` ``C × P``
(``P = H' W'`` positions; NaNs set to zero). As pytorch-grad-cam's ``dff``, each channel is shifted
by its minimum over the positions (``o_c = min_p A_cp``; zero after a ReLU) so the matrix is
non-negative, and factorised by NMF (:func:`visjax.base.nmf.nmf`): ``A − o ≈ W H`` with ``W``
``C × k`` and ``H`` ``k × P``. Row ``j`` of ``H`` is concept ``j``'s map over the grid (upsampled
to the input here; pytorch-grad-cam then min-max scales each map, which
:func:`visjax.attribution.cam.process.normalize` does); column ``j`` of ``W`` plus the offset,
``W_j + o``, is concept ``j``'s embedding, a ``C``-vector that the classifier head scores
(pytorch-grad-cam's ``computation_on_concepts``).

NMF fixes ``W_j`` and ``H_j`` only up to a factor (``W_j s``, ``H_j / s``), and the head's scores
depend on it; pytorch-grad-cam scores whatever scale its solver returns. Here each pair is scaled
so that ``max_p H_jp = 1``: ``W_j + o`` is then the activation at the position where the concept
is strongest, an activation the network has seen. (Unscaled, the embeddings came out 10-50x
larger than any activation on the objects CNN, and every concept scored the same class.)

Each image is factorised on its own (pytorch-grad-cam's ``run_dff_on_image`` use; its
``__call__`` on a batch factorises all the images jointly), batched with ``vmap``.

The number of concepts, when not given, is the smallest ``k <= max_components`` for which the
relative reconstruction error ``‖A − o − W H‖_F / ‖A − o‖_F`` of every image is at most
``threshold`` (:data:`THRESHOLD`, 0.2: the concepts explain at least 96 % of the shifted
activations' energy); ``max_components`` when none is. Every candidate rank runs in one program
(components beyond a rank masked to zero).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from visjax.attribution._target import prepare
from visjax.attribution.cam._core import Reshape, resolve_layer, to_grid
from visjax.attribution.cam.process import upsample
from visjax.base.batching import auto_rows
from visjax.base.checks import check_batch_size, check_key, check_positive_int
from visjax.base.nmf import ALGORITHMS, factorise, random_init

THRESHOLD = 0.2  # default relative reconstruction error that picks the number of concepts
MAX_COMPONENTS = 16  # default largest number of concepts tried (pytorch-grad-cam's default k)


class DFFResult(NamedTuple):
    """What :func:`deep_feature_factorization` returns (``k`` concepts per image)."""

    concepts: jax.Array  # (N, k, H, W) concept maps upsampled to the input (the grid's if not 2-D)
    weights: jax.Array  # (N, k, C) concept embeddings W_j + offset
    scores: jax.Array | None  # (N, k, n_classes): each embedding through the head; None without
    rel_error: jax.Array  # (N,) relative reconstruction error of each image's factorisation


@jax.jit
def _matrices(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(A − o, o)``: activations ``(N, H, W, C)`` as shifted ``(N, C, P)`` matrices and the
    per-channel offsets ``(N, C)``."""
    n, h, w, c = a.shape
    m = jnp.where(jnp.isnan(a), 0, a).reshape(n, h * w, c).transpose(0, 2, 1)
    offset = m.min(axis=-1)
    return jnp.maximum(m - offset[..., None], 0), offset


_grid_activations = jax.jit(
    lambda model, x, layer, reshape: to_grid(model.activations(x, layer)[1][layer], reshape),
    static_argnames=("layer", "reshape"),
)


@functools.partial(jax.jit, static_argnames=("ranks", "algorithm"))
def _factorise_ranks(m, w0, h0, ranks: int, n_iter, tol, algorithm):
    """``(W, H, err)`` for every rank ``1..ranks`` of each matrix: ``(R, B, ...)``."""
    masks = jnp.tril(jnp.ones((ranks, ranks), m.dtype))  # row r keeps components 0..r
    return jax.vmap(lambda mask: factorise(m, w0, h0, mask, n_iter, tol, algorithm))(masks)


@functools.partial(jax.jit, static_argnames=("head", "shape"))
def _layer_head(model, x, head: str, shape: tuple, emb):
    """``(N, k, n_classes)``: each embedding ``emb`` ``(N, k, C)`` in place of layer ``head``'s
    activation (of ``shape``), broadcast over its grid, and the model run on from there."""

    def one(e):  # e (N, C)
        value = e.reshape(e.shape[0], *([1] * (len(shape) - 2)), e.shape[1])
        return model.run(x, replace={head: jnp.broadcast_to(value, shape)})[0]

    return jax.vmap(one, in_axes=1, out_axes=1)(emb)


def deep_feature_factorization(
    model: Any,
    x: Any,
    *,
    layer: str | None = None,
    n_components: int | None = None,
    head: Callable[[jax.Array], jax.Array] | str | None = None,
    algorithm: str = "hals",
    n_iter: int = 200,
    tol: float = 1e-4,
    key: jax.Array | None = None,
    threshold: float = THRESHOLD,
    max_components: int = MAX_COMPONENTS,
    reshape: Reshape = None,
    batch_size: int | str | None = "auto",
) -> DFFResult:
    """Deep feature factorisation: NMF of each image's layer activations into concepts.

    See the module docstring for the factorisation, the offsets and the choice of ``k``.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      layer: a layer path with a spatial activation (as the CAM methods'); None takes the last.
      n_components: the number of concepts ``k >= 1``; None picks it by reconstruction error.
      head: None (no scores); a function from one ``C``-vector to logits (the classifier head,
        pytorch-grad-cam's ``computation_on_concepts``); or a layer path of the model whose
        activation has ``C`` channels last, replaced by each embedding (broadcast over its grid)
        before the rest of the model runs. ``head=layer`` scores a concept as a spatially uniform
        activation: for a model ending in global pooling and a linear classifier that is the
        classifier applied to the embedding (through any pointwise activation in between).
      algorithm: the NMF solver, ``"hals"`` (scikit-learn's default ``cd``) or ``"mu"``.
      n_iter: the most NMF iterations per image.
      tol: the NMF stopping tolerance (:func:`visjax.base.nmf.nmf`).
      key: the PRNG key of the NMF initialisation (``jax.random.key(0)`` if None).
      threshold: the relative error below which a ``k`` is accepted when ``n_components`` is None.
      max_components: the largest ``k`` tried when ``n_components`` is None (capped at ``C``).
      reshape: as the CAM methods' (token activations to a grid).
      batch_size: images per NMF chunk: an int, ``"auto"`` or None (one chunk).

    Returns:
      :class:`DFFResult` ``(concepts (N, k, H, W), weights (N, k, C), scores (N, k, n_classes) or
      None, rel_error (N,))``. The maps are non-negative, upsampled (bilinear) to ``x``'s
      ``(H, W)`` when ``x`` is an image batch ``(N, H, W, C)``, else on the layer's grid.

    Raises:
      ValueError: an unknown or non-spatial layer (listing the known ones), ``n_components < 1``,
        a ``threshold`` outside ``(0, 1]``, an unknown ``algorithm``, a head layer whose channels
        differ from the layer's, NaN/Inf in ``x``.
      TypeError: ``head`` neither None, a callable nor a str; ``key`` not a PRNG key.

    Example:
      >>> import jax
      >>> from visjax.zoo import digits_cnn
      >>> x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
      >>> r = deep_feature_factorization(digits_cnn("function"), x, layer="conv2",
      ...                                n_components=3, head="conv2")
      >>> r.concepts.shape, r.weights.shape, r.scores.shape
      ((2, 3, 8, 8), (2, 3, 32), (2, 3, 10))

    References:
      Collins, Achanta, Süsstrunk, "Deep Feature Factorization for Concept Discovery", ECCV 2018.
      https://arxiv.org/abs/1806.10206 (pytorch-grad-cam's ``DeepFeatureFactorization``.)
    """
    model, x = prepare(model, x)
    if reshape is not None and not callable(reshape):
        raise TypeError(f"`reshape` must be a callable or None, got {reshape!r}")
    layer = resolve_layer(model, x, layer, reshape)
    if n_components is not None:
        n_components = check_positive_int(n_components, "n_components")
    max_components = check_positive_int(max_components, "max_components")
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"`algorithm` must be one of {ALGORITHMS}, got {algorithm!r}")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol >= 0:
        raise ValueError(f"`tol` must be a number >= 0, got {tol!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError(f"`threshold` must be a number in (0, 1], got {threshold!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"`threshold` must be a number in (0, 1], got {threshold!r}")
    batch_size = check_batch_size(batch_size)
    key = jax.random.key(0) if key is None else key
    check_key(key)
    a = _grid_activations(model, x, layer, reshape)
    n, gh, gw, c = a.shape
    head_spec = None
    if isinstance(head, str):
        shapes = model.layer_shapes(x)
        if head not in shapes:
            raise ValueError(f"`head` {head!r} is not a layer of the model; known: {list(shapes)}")
        head_spec = shapes[head]
        if head_spec.shape[-1] != c or len(head_spec.shape) < 2:
            raise ValueError(
                f"`head` layer {head!r} has activation shape {tuple(head_spec.shape)}: its last "
                f"axis must be the {c} channels of `layer` {layer!r}"
            )
    elif head is not None and not callable(head):
        raise TypeError(f"`head` must be None, a callable or a layer path, got {head!r}")

    if n == 0:  # an empty batch: empty results (k = n_components, or 0 when it was to be chosen)
        k = n_components or 0
        size = x.shape[1:3] if x.ndim == 4 else (gh, gw)
        empty = jnp.zeros((0, k, *size), a.dtype)
        scores = None if head is None else jnp.zeros((0, k, 0), a.dtype)
        return DFFResult(empty, jnp.zeros((0, k, c), a.dtype), scores, jnp.zeros((0,), a.dtype))
    m, offset = _matrices(a)
    ranks = n_components or min(max_components, c)
    w0, h0 = random_init(key, m, ranks)
    n_cand = 1 if n_components else ranks
    if batch_size == "auto":
        row = n_cand * (c * gh * gw * 3 + (c + gh * gw) * ranks * 4) * m.dtype.itemsize
        batch_size = auto_rows(n, row)
    step = batch_size or max(n, 1)
    parts = []
    for s in range(0, n, step):
        sl = slice(s, s + step)
        if n_components:
            mask = jnp.ones(ranks, m.dtype)
            w, h, err = factorise(m[sl], w0[sl], h0[sl], mask, n_iter, tol, algorithm)
            parts.append((w[None], h[None], err[None]))
        else:
            parts.append(_factorise_ranks(m[sl], w0[sl], h0[sl], ranks, n_iter, tol, algorithm))
    w, h, err = (jnp.concatenate(p, axis=1) for p in zip(*parts, strict=True))
    if n_components:
        k, pick = n_components, 0
    else:
        worst = err.max(axis=1)  # (R,): each rank's largest error over the images
        ok = [i for i, e in enumerate(worst.tolist()) if e <= threshold]
        pick = ok[0] if ok else ranks - 1
        k = pick + 1
    w, h, err = w[pick, ..., :k], h[pick, :, :k], err[pick]  # masked components are zero
    peak = h.max(axis=-1, keepdims=True)  # (N, k, 1): each concept's map peaks at 1 after this
    peak = jnp.where(peak > 0, peak, 1)
    w, h = w * jnp.swapaxes(peak, 1, 2), h / peak
    weights = jnp.swapaxes(w, 1, 2) + offset[:, None, :]  # (N, k, C)
    maps = h.reshape(n, k, gh, gw)
    if x.ndim == 4 and math.prod(maps.shape):
        maps = upsample(maps.reshape(n * k, gh, gw), x.shape[1:3]).reshape(n, k, *x.shape[1:3])
    maps = jnp.maximum(maps, 0)
    if head is None:
        scores = None
    elif callable(head):
        scores = jax.vmap(jax.vmap(head))(weights)
    else:
        scores = _layer_head(
            model, x, head, tuple(head_spec.shape), weights.astype(head_spec.dtype)
        )
    return DFFResult(maps, weights, scores, err)
