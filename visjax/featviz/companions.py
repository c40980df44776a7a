"""The companions of feature visualisation: filter weights, feature maps, top-activating examples.

Activation maximisation shows what a unit responds to in the abstract; these show the same unit
from the other sides, as in Olah, Mordvintsev, Schubert, "Feature Visualization" (Distill, 2017):
the layer's kernels themselves (:func:`layer_filters`), its activations for an input
(:func:`feature_maps`), and the dataset examples that excite each channel most
(:func:`top_activating`, Zeiler & Fergus 2014).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.batching import AUTO, resolve_batch_size
from visjax.base.checks import check_batch_size
from visjax.inspect.filters import check_layer_data, checked_layer_shape
from visjax.inspect.filters import feature_maps as feature_maps
from visjax.inspect.filters import layer_filters as layer_filters
from visjax.model import as_model

Reduce = Literal["mean", "max"]
_MAX_UNROLL = 64


class TopActivating(NamedTuple):
    """The ``k`` examples with the largest activation per channel, largest first.

    Attributes:
      values: ``(n_channels, k)`` the (reduced) activations.
      indices: ``(n_channels, k)`` int32 row indices into the dataset.
    """

    values: jax.Array
    indices: jax.Array


# --------------------------------------------------------------------------- top activating


def _merge(run, vals, idx, k):
    """Keep the ``k`` largest of the running set and a new block (ties: lower index first).

    ``lax.top_k`` puts the lower position first among equal values; the running set comes first
    and holds only earlier rows, so ties resolve to the lower dataset index throughout.
    """
    if run is not None:
        vals = jnp.concatenate([run[0], vals], axis=1)
        idx = jnp.concatenate([run[1], idx], axis=1)
    if vals.shape[1] < k:
        return vals, idx
    top, pos = jax.lax.top_k(vals, k)
    return top, jnp.take_along_axis(idx, pos, axis=1)


@functools.partial(jax.jit, static_argnames=("layer", "channels", "k", "batch_size", "reduce"))
def _top_activating(model, data, layer, channels, k, batch_size, reduce):
    n = data.shape[0]
    ch = jnp.asarray(channels, jnp.int32)

    def score(xc, start):
        a = model.activations(xc, layer)[1][layer]
        if a.ndim > 2:
            spatial = tuple(range(1, a.ndim - 1))
            a = a.mean(spatial) if reduce == "mean" else a.max(spatial)
        idx = start + jnp.arange(xc.shape[0], dtype=jnp.int32)
        vals = a[:, ch].T
        return vals, jnp.broadcast_to(idx, vals.shape)

    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    run, i = None, 0
    # Unrolled until the running set holds k entries (its shape is fixed from then on).
    while run is None or run[0].shape[1] < k:
        s, e = bounds[i]
        run = _merge(run, *score(data[s:e], s), k)
        i += 1
    rest = bounds[i:]
    if len(rest) > _MAX_UNROLL:
        # Forward-only work: a scan over the full chunks keeps the program small.
        n_full = sum(1 for s, e in rest if e - s == batch_size)
        s0 = rest[0][0]
        body = data[s0 : s0 + n_full * batch_size]
        body = body.reshape(n_full, batch_size, *data.shape[1:])
        starts = s0 + batch_size * jnp.arange(n_full, dtype=jnp.int32)

        def step(carry, chunk):
            return _merge(carry, *score(*chunk), k), None

        run, _ = jax.lax.scan(step, run, (body, starts))
        rest = rest[n_full:]
    for s, e in rest:
        run = _merge(run, *score(data[s:e], s), k)
    return TopActivating(*run)


def top_activating(
    model: Any,
    x: Any,
    *,
    layer: str,
    channels: int | Sequence[int],
    k: int,
    batch_size: int | str | None = AUTO,
    reduce: Reduce = "mean",
) -> TopActivating:
    """The ``k`` dataset examples that activate each channel of ``layer`` most.

    Each example's activation of channel ``c`` is reduced to one number, the spatial mean
    (``reduce="mean"``, Lucid's ``channel`` objective) or maximum (``"max"``, as Zeiler & Fergus
    pick the strongest position) of its map; a 2-D ``(N, C)`` activation is used as it is. The
    dataset is run in chunks of ``batch_size`` rows inside one ``jit``, each chunk's scores merged
    into a running top-``k`` with ``jax.lax.top_k``, so memory holds one chunk's activations and
    ``k`` entries per channel. Ties go to the lower dataset index, so the result equals a stable
    descending sort of the scores, whatever the chunking.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: the dataset's inputs, a batch ``(N, *input_shape)`` of finite values.
      layer: the layer path (static).
      channels: one channel index or a sequence of them, each in ``[0, C)`` (static).
      k: examples per channel, in ``[1, N]`` (static).
      batch_size: rows per chunk (static); ``None`` runs the dataset as one chunk; ``"auto"``
        (default): rows whose forward intermediates take about 8 MiB on CPU (512 MiB on
        GPU/TPU), :func:`visjax.base.batching.auto_rows` (forward-only work: past 64 chunks a
        ``lax.scan`` drives them, so their number does not grow the program).
      reduce: ``"mean"`` (default) or ``"max"`` over the spatial positions (static).

    Returns:
      :class:`TopActivating` ``(values, indices)``, each ``(n_channels, k)``, largest first; a
      single int ``channels`` still gives one row.

    Raises:
      ValueError: an unknown layer, a channel out of range, ``k`` outside ``[1, N]``, a bad
        ``batch_size`` or ``reduce``, or ``x`` of the wrong shape or with NaN/Inf values.

    Example:
      >>> from visjax.zoo import digits_cnn, load_digits
      >>> x = load_digits().test.x
      >>> top = top_activating(
      ...     digits_cnn("function"), x, layer="conv2", channels=[0, 5], k=3, batch_size=128
      ... )
      >>> top.values.shape, top.indices.shape
      ((2, 3), (2, 3))

    References:
      Zeiler, Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
      https://arxiv.org/abs/1311.2901
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"`reduce` must be 'mean' or 'max', got {reduce!r}")
    model = as_model(model)
    x = check_layer_data(model, x, "x")
    n = x.shape[0]
    shape = checked_layer_shape(model, x, layer)
    if len(shape) < 2:
        raise ValueError(f"`layer` {layer!r} has no channel axis (activation shape {shape})")
    n_ch = shape[-1]
    single = isinstance(channels, int | np.integer) and not isinstance(channels, bool)
    chans = (channels,) if single else tuple(np.asarray(channels).reshape(-1).tolist())
    if not chans:
        raise ValueError("`channels` must name at least one channel")
    for c in chans:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n_ch:
            raise ValueError(
                f"`channels` must be ints in [0, {n_ch}) (layer {layer!r} has {n_ch} channels), "
                f"got {channels!r}"
            )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n:
        raise ValueError(f"`k` must be an int in [1, {n}] (the number of examples), got {k!r}")
    check_batch_size(batch_size)
    size = resolve_batch_size(
        batch_size, lambda xc: model.activations(xc, layer)[1][layer], x, forward=True
    )
    size = n if size is None else min(size, n)
    return _top_activating(model, x, layer, chans, int(k), size, reduce)
