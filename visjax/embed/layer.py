"""A model layer's activations, pooled to one vector per example, then embedded."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.batching import AUTO, resolve_batch_size
from visjax.base.checks import check_batch_size, check_key
from visjax.embed.pca import pca
from visjax.embed.tsne import tsne
from visjax.embed.umap import umap
from visjax.inspect.filters import check_layer_data, checked_layer_shape
from visjax.model import as_model

ALGORITHMS = ("tsne", "pca", "umap")
POOLS = ("auto", "mean", "flatten")


def _pool(a: jax.Array, pool: str) -> jax.Array:
    if a.ndim == 2:
        return a
    if pool == "flatten":
        return a.reshape(a.shape[0], -1)
    return a.mean(axis=tuple(range(1, a.ndim - 1)))  # "auto" and "mean": over the spatial axes


@functools.partial(jax.jit, static_argnames=("layer", "pool"))
def _features(model: Any, x: jax.Array, layer: str, pool: str) -> jax.Array:
    return _pool(model.activations(x, layer)[1][layer], pool).astype(jnp.float32)


def layer_features(
    model: Any, x: Any, *, layer: str, pool: str = "auto", batch_size: int | str | None = AUTO
) -> jax.Array:
    """``layer``'s activations for ``x``, pooled to ``(N, F)`` (see :func:`embed_layer`), computed
    in chunks of ``batch_size`` examples (one compiled program; the last chunk is padded)."""
    model = as_model(model)
    x = check_layer_data(model, x, "x")
    checked_layer_shape(model, x[:1], layer)
    if pool not in POOLS:
        raise ValueError(f"`pool` must be one of {POOLS}, got {pool!r}")
    batch_size = check_batch_size(batch_size)
    n = x.shape[0]
    if batch_size == AUTO:
        batch_size = resolve_batch_size(
            batch_size, lambda xc: model.activations(xc, layer)[1], x, forward=True
        )
    size = n if batch_size is None else min(int(batch_size), n)
    parts = []
    for start in range(0, n, size):
        chunk = x[start : start + size]
        rows = chunk.shape[0]
        if rows < size:  # pad to the compiled shape
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[-1:], size - rows, axis=0)])
        parts.append(_features(model, chunk, layer, pool)[:rows])
    return jnp.concatenate(parts) if len(parts) > 1 else parts[0]


def embed_layer(
    model: Any,
    x: Any,
    *,
    layer: str,
    algorithm: str = "tsne",
    pool: str = "auto",
    key: Any = None,
    batch_size: int | str | None = AUTO,
    **options: Any,
) -> Any:
    """Embed the activations of ``layer`` for the examples ``x`` with t-SNE, PCA or UMAP.

    The activations come from the model interface (``model.activations(x, layer)``: for the zoo
    models a layer's value before its ReLU), in chunks of ``batch_size`` examples, and are pooled
    to one vector per example:

    - ``"auto"``: ``(N, D)`` activations as they are; ``(N, H, W, C)`` feature maps (any rank
      ``>= 3``) averaged over the spatial axes (all but the first and the last), giving ``(N, C)``:
      global average pooling, the translation-invariant summary a classifier head sees;
    - ``"mean"``: the same average, explicitly;
    - ``"flatten"``: every unit, ``(N, H * W * C)`` (position-sensitive, much larger).

    Then ``algorithm`` embeds the ``(N, F)`` features: ``"tsne"`` calls :func:`visjax.embed.tsne`
    (``key`` required; ``batch_size`` passed on), ``"pca"`` :func:`visjax.embed.pca` and
    ``"umap"`` :func:`visjax.embed.umap` (umap-learn). ``options`` go to the algorithm (e.g.
    ``perplexity=``, ``k=``, ``n_neighbors=``).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: ``(N, *input_shape)`` examples, finite, ``N >= 4``.
      layer: the layer path (``model.layers``).
      algorithm: ``"tsne"``, ``"pca"`` or ``"umap"``.
      pool: ``"auto"``, ``"mean"`` or ``"flatten"``.
      key: a PRNG key (t-SNE only).
      batch_size: examples per forward chunk; ``"auto"`` sizes chunks from the forward's memory
        per row, ``None`` one chunk.
      **options: keyword arguments for the algorithm.

    Returns:
      the algorithm's result: a :class:`visjax.embed.TSNE`, a :class:`visjax.embed.PCA` or a NumPy
      array (UMAP).

    Raises:
      ValueError: an unknown ``layer`` (the message lists the known ones), ``algorithm`` or
        ``pool``; ``x`` of the wrong shape, with NaN/Inf or fewer than 4 examples; ``key`` missing
        for t-SNE; a bad ``batch_size``. TypeError: a ``key`` that is not one PRNG key.

    Example:
      >>> from visjax.zoo import digits_cnn, load_digits  # doctest: +SKIP
      >>> data = load_digits()  # doctest: +SKIP
      >>> result = embed_layer(digits_cnn("function"), data.test.x, layer="dense1",
      ...                      algorithm="pca")  # doctest: +SKIP
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"`algorithm` must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "tsne":
        if key is None:
            raise ValueError("`key` is required for algorithm='tsne' (e.g. jax.random.key(0))")
        check_key(key)
    model = as_model(model)
    x = check_layer_data(model, x, "x")
    if x.shape[0] < 4:
        raise ValueError(f"`x` must hold at least 4 examples, got {x.shape[0]}")
    features = layer_features(model, x, layer=layer, pool=pool, batch_size=batch_size)
    if algorithm == "pca":
        return pca(features, **options)
    if algorithm == "umap":
        return umap(np.asarray(features), **options)
    return tsne(features, key=key, batch_size=batch_size, **options)
