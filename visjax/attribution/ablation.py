"""Perturbation attribution: occlusion (sliding windows) and feature ablation (masks).

Both replace part of the input by a baseline and attribute the drop of the target,
``f(x) − f(x with the part set to the baseline)``, to the elements of that part.

All ``N × P`` perturbed inputs (examples × windows or features) are evaluated in chunks of
``batch_size`` rows inside one jitted program (:mod:`visjax.base.batching`): each chunk's inputs are
built from ``x`` with a vmapped ``where`` over the part's index (windows are generated from their
offsets, never stored), ``f(x)`` is evaluated once per example, and only the ``(N, P)`` output
differences leave a chunk. Spreading them back over the elements is a small contraction at the
end (separable per axis for windows, a gather through the labels for masks), so peak memory is
bounded by ``batch_size`` however many windows there are.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.attribution._target import (
    Target,
    check_batch_size,
    empty_batch,
    prepare,
    resolve,
    select_output,
)
from visjax.attribution.baselines import make_baseline
from visjax.attribution.layer import no_layer
from visjax.attribution.masks import FeatureMask, feature_mask
from visjax.base.batching import AUTO, FORWARD_UNROLL, chunked_sum, resolve_batch_size
from visjax.base.checks import is_concrete
from visjax.base.sharding import device_mesh, over_devices


def _batched_fn(model, target_fn):
    """``f(xs, ts)`` for a batch of inputs: one batched forward, then the target per row.

    Forward-only work, so the model runs on the whole chunk at once (measured a few percent
    faster here than vmapping the per-example function).
    """
    return lambda xs, ts: jax.vmap(functools.partial(select_output, target_fn))(model(xs), ts)


def full_chunks(batch_size: int | str | None, fn: Any, n_rows: int) -> tuple[int | None, jax.Array]:
    """``(batch_size, rows)`` for forward-only work over rows ``0..n_rows-1`` (inside the trace).

    With ``"auto"`` the size comes from :func:`visjax.base.batching.resolve_batch_size` (``fn``
    is the chunk function, traced on 1 and 2 rows) and the rows are padded, by fewer rows than
    there are chunks, to fill every chunk: the scan then compiles its body once and no remainder
    chunk (measured 0.5-0.9 s of first-call time for occlusion and feature ablation of 256
    digits). Padded rows are ``n_rows`` and above: ``fn`` must drop them (:func:`_valid`).
    Explicit sizes keep their last, shorter chunk.
    """
    if batch_size != AUTO:
        return batch_size, jnp.arange(n_rows)
    size = resolve_batch_size(batch_size, fn, jnp.arange(n_rows), forward=True)
    if size is None:
        return None, jnp.arange(n_rows)
    return size, jnp.arange(-(-n_rows // size) * size)


def _valid(r: jax.Array, n_rows: int) -> tuple[jax.Array, jax.Array]:
    """``(row to compute, index to store)``: padding rows compute row 0 and store out of range
    (dropped by ``.at[...].set(..., mode="drop")``)."""
    valid = r < n_rows
    return jnp.where(valid, r, 0), jnp.where(valid, r, n_rows)


def _baseline(x: jax.Array, baseline: Any) -> Any:
    """A number as a float (broadcast inside the jitted program: no per-call device work), else
    :func:`~visjax.attribution.baselines.make_baseline`'s array; NaN/Inf raise ``ValueError``."""
    if isinstance(baseline, int | float | np.integer | np.floating) and not isinstance(
        baseline, bool | np.bool_
    ):
        try:
            value = float(baseline)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise ValueError("`baseline` contains NaN or Inf")
        return value
    return make_baseline(x, baseline, named=False)


def _per_dim(value: Any, name: str, shape: tuple[int, ...], fill_last: int) -> tuple[int, ...]:
    """``value`` as one int per non-batch dim: an int, a full tuple, or a spatial shorthand.

    The shorthand (one entry fewer than ``shape``, for ``(..., C)`` layouts) gets ``fill_last``
    for the channel axis; an int means the same value on every axis but the channel axis.
    """
    d = len(shape)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (int(value),) * d if d == 1 else (int(value),) * (d - 1)
    try:
        value = tuple(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an int or a tuple of ints, got {value!r}") from None
    if len(value) == d - 1 and d > 1:
        value = (*value, fill_last)
    if len(value) != d:
        allowed = f"{d}" if d == 1 else f"{d} (every non-batch axis) or {d - 1} (all but the last)"
        raise ValueError(
            f"`{name}` must have length {allowed} for `x` of shape (N, {shape}), got {value!r}"
        )
    for v in value:
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{name}` entries must be ints >= 1, got {value!r}")
    return tuple(int(v) for v in value)


def window_counts(
    shape: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...]
) -> tuple[int, ...]:
    """Windows per axis, Captum's count ``ceil((d − w) / s) + 1``, after checking the settings.

    The last window on an axis may run past the edge (when ``s`` does not divide ``d − w``); it is
    cut there, as Captum cuts it.
    """
    for axis, (d, w, s) in enumerate(zip(shape, window, strides, strict=True)):
        if w > d:
            raise ValueError(
                f"`window` {window} is larger than one example {shape} on axis {axis + 1}"
            )
        if w < d and s > w:
            raise ValueError(
                f"`strides` {strides} is larger than `window` {window} on axis {axis + 1}: "
                "elements would be left uncovered (Captum forbids it too)"
            )
    return tuple(-(-(d - w) // s) + 1 for d, w, s in zip(shape, window, strides, strict=True))


def _indicators(shape, window, strides, counts, dtype):
    """Per axis, ``(count, d)``: whether window position ``j`` on that axis covers element ``i``."""
    out = []
    for d, w, s, c in zip(shape, window, strides, counts, strict=True):
        start = np.arange(c)[:, None] * s
        i = np.arange(d)[None, :]
        out.append(jnp.asarray((i >= start) & (i < start + w), dtype))
    return out


@functools.partial(
    jax.jit, static_argnames=("target_fn", "window", "strides", "counts", "batch_size")
)
def _occlusion(model, x, baseline, t, target_fn, window, strides, counts, batch_size):
    n, shape = x.shape[0], x.shape[1:]
    baseline = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    n_windows = int(np.prod(counts))
    f = _batched_fn(model, target_fn)
    f0 = f(x, t)
    ind = _indicators(shape, window, strides, counts, jnp.bool_)

    def window_mask(w):
        idx = jnp.unravel_index(w, counts)
        m = None
        for axis, (a, j) in enumerate(zip(ind, idx, strict=True)):
            v = a[j].reshape((-1,) + (1,) * (len(shape) - axis - 1))
            m = v if m is None else m & v
        return m

    def chunk(r):
        r, store = _valid(r, n * n_windows)
        e, w = r // n_windows, r % n_windows
        masks = jax.vmap(window_mask)(w)
        xp = jnp.where(masks, baseline[e], x[e])
        diff = f0[e] - f(xp, t[e])
        return jnp.zeros(n * n_windows, diff.dtype).at[store].set(diff, mode="drop")

    size, rows = full_chunks(batch_size, chunk, n * n_windows)
    diffs = chunked_sum(chunk, rows, batch_size=size, max_unroll=FORWARD_UNROLL)
    diffs = diffs.reshape(n, *counts)
    # Σ over windows covering each element, and their number: separable over the axes.
    # Each step contracts the first window axis and appends that axis's element axis.
    total, cover = diffs, jnp.ones(counts, x.dtype)
    for a in _indicators(shape, window, strides, counts, x.dtype):
        total = jnp.tensordot(total, a, axes=([1], [0]))
        cover = jnp.tensordot(cover, a, axes=([0], [0]))
    return total / cover


@empty_batch
def occlusion(
    model: Any,
    x: Any,
    target: Target,
    *,
    window: int | tuple[int, ...],
    strides: int | tuple[int, ...] = 1,
    baseline: Any = 0.0,
    batch_size: int | str | None = "auto",
    devices: Any = None,
) -> jax.Array:
    """Occlusion: the average drop of the target when a sliding window covering ``x_i`` is occluded.

    ``φ_i = (1/|W_i|) Σ_{w ∈ W_i} [f(x) − f(x ⊙ (1 − m_w) + b ⊙ m_w)]`` where ``m_w`` is the
    indicator of window ``w`` and ``W_i`` the windows covering element ``i``. Windows are placed
    at offsets ``0, s, 2s, …`` on each axis, ``ceil((d − w) / s) + 1`` of them, the last one cut
    at the edge when ``s`` does not divide ``d − w`` (Captum's ``Occlusion``: same windows, same
    averaging, same numbers).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)`` (NHWC for images).
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (static: pass the same function object to avoid recompiling).
      window: the window shape over the non-batch axes (static), e.g. ``(3, 3, 1)`` for NHWC; a
        tuple one shorter (``(3, 3)``) or an int (``3``) covers the whole last (channel) axis.
      strides: the step between windows (static): an int (every axis), or a tuple like
        ``window``; a stride must not exceed the window on an axis it does not cover whole.
      baseline: the occluding value: a number or an array broadcastable to ``x``.
      batch_size: perturbed inputs per chunk (examples × windows, static); ``None`` evaluates
        all at once; ``"auto"`` (default) picks chunks of about 8 MiB of forward intermediates on
        CPU (512 MiB on accelerators), uncapped in number (a scan drives them:
        :func:`visjax.base.batching.auto_rows`). Peak memory grows with ``batch_size``, not with
        the number of windows.
      devices: where the batch runs: ``None`` (default: all of ``jax.local_devices()``; one
        device runs the single-device program), a sequence of devices or a
        :class:`jax.sharding.Mesh`: the examples are split evenly over them, each device
        perturbing its share (:mod:`visjax.base.sharding`); the result equals the
        single-device one.

    Returns:
      Attributions shaped like ``x``.

    Raises:
      ValueError: a window larger than ``x`` or below 1, strides below 1 or above the window, a
        wrong length, a baseline that does not broadcast, NaN/Inf in ``x`` (checked eagerly).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> phi = occlusion(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3, window=(3, 3))
      >>> phi.shape
      (2, 8, 8, 1)

    References:
      Zeiler, Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
      https://arxiv.org/abs/1311.2901 (the averaging over overlapping windows is Captum's.)
    """
    model, x = prepare(model, x)
    shape = tuple(x.shape[1:])
    window = _per_dim(window, "window", shape, shape[-1] if shape else 1)
    strides = _per_dim(strides, "strides", shape, 1)
    counts = window_counts(shape, window, strides)
    batch_size = check_batch_size(batch_size)
    b = _baseline(x, baseline)
    target_fn, t = resolve(model, x, target)
    mesh = device_mesh(devices)
    b = jnp.broadcast_to(jnp.asarray(b, x.dtype), x.shape) if mesh is not None else b
    return over_devices(
        _occlusion,
        (model, x, b, t),
        batched=(False, True, mesh is not None, True),
        mesh=mesh,
        target_fn=target_fn,
        window=window,
        strides=strides,
        counts=counts,
        batch_size=batch_size,
    )


# Checked small masks by content and batch shape: the checks (NumPy ``unique``, a broadcast, two
# transfers) took ~0.9 ms of a ~10 ms call on 256 digits with the same mask every call.
_MASK_CACHE: dict[tuple, FeatureMask] = {}
_MASK_CACHE_ELEMENTS = 2**16
_MASK_CACHE_ENTRIES = 16


def _checked_mask(mask: Any, x: jax.Array) -> FeatureMask:
    """:func:`feature_mask` of ``mask`` (named ``mask``), remembered for small concrete masks."""
    if not is_concrete(mask) or np.size(mask) > _MASK_CACHE_ELEMENTS:
        return feature_mask(mask, x, name="mask")
    m = np.asarray(mask)
    key = (m.dtype.str, m.shape, m.tobytes(), tuple(x.shape))
    fm = _MASK_CACHE.get(key)
    if fm is None:
        fm = feature_mask(m, x, name="mask")
        if not is_concrete(fm.labels):  # made inside a caller's trace: must not outlive it
            return fm
        if len(_MASK_CACHE) >= _MASK_CACHE_ENTRIES:
            _MASK_CACHE.pop(next(iter(_MASK_CACHE)))
        _MASK_CACHE[key] = fm
    return fm


@functools.partial(jax.jit, static_argnames=("target_fn", "n_features", "batch_size"))
def _ablation(model, x, baseline, t, labels, target_fn, n_features, batch_size):
    n = x.shape[0]
    baseline = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    f = _batched_fn(model, target_fn)
    f0 = f(x, t)

    def chunk(r):
        r, store = _valid(r, n * n_features)
        e, k = r // n_features, r % n_features
        shape = (-1,) + (1,) * (x.ndim - 1)
        xp = jnp.where(labels[e] == k.reshape(shape), baseline[e], x[e])
        diff = f0[e] - f(xp, t[e])
        return jnp.zeros(n * n_features, diff.dtype).at[store].set(diff, mode="drop")

    size, rows = full_chunks(batch_size, chunk, n * n_features)
    diffs = chunked_sum(chunk, rows, batch_size=size, max_unroll=FORWARD_UNROLL)
    diffs = diffs.reshape(n, n_features)
    flat = labels.reshape(n, -1)
    return jnp.take_along_axis(diffs, flat, axis=1).reshape(x.shape).astype(x.dtype)


@empty_batch
def feature_ablation(
    model: Any,
    x: Any,
    target: Target,
    *,
    mask: Any = None,
    baseline: Any = 0.0,
    batch_size: int | str | None = "auto",
    devices: Any = None,
) -> jax.Array:
    """Feature ablation: the drop of the target when ``x_i``'s feature is set to the baseline.

    ``φ_i = f(x) − f(x ⊙ (1 − m_k) + b ⊙ m_k)`` for the feature ``k`` holding element ``i``,
    ``m_k`` its indicator (Captum's ``FeatureAblation`` with a ``feature_mask``: same numbers;
    its ``perturbations_per_eval`` is ``batch_size`` here).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (static).
      mask: integer feature labels ``0..K-1``, shared (broadcasting to ``x.shape[1:]``, e.g.
        ``(H, W, 1)`` so a pixel's channels move together) or per example (``(N, ...)``); see
        :func:`visjax.attribution.masks.feature_mask` and helpers such as
        :func:`~visjax.attribution.masks.square_patches`. ``None``: every element is its own
        feature (as Captum). Must be concrete: ``K`` sets the shapes.
      baseline: the replacement value: a number or an array broadcastable to ``x``.
      batch_size: perturbed inputs per chunk (examples × features, static); ``None``: all at
        once; ``"auto"`` (default): chunks as :func:`occlusion`'s.
      devices: where the batch runs: ``None`` (default: all of ``jax.local_devices()``; one
        device runs the single-device program), a sequence of devices or a
        :class:`jax.sharding.Mesh`: the examples are split evenly over them, each device
        perturbing its share (:mod:`visjax.base.sharding`); the result equals the
        single-device one.

    Returns:
      Attributions shaped like ``x``; every element of a feature gets the feature's value.

    Raises:
      ValueError: a mask that fits neither one example nor the batch or whose labels are not
        ``0..K-1``, a baseline that does not broadcast, NaN/Inf in ``x``.
      TypeError: a non-integer mask.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> from visjax.attribution.masks import square_patches
      >>> m = square_patches((8, 8, 1), 4)
      >>> phi = feature_ablation(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3, mask=m)
      >>> phi.shape
      (2, 8, 8, 1)

    References:
      Zeiler, Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
      https://arxiv.org/abs/1311.2901 ; Captum's ``FeatureAblation``.
    """
    model, x = prepare(model, x)
    batch_size = check_batch_size(batch_size)
    if mask is None:
        mask = np.arange(int(np.prod(x.shape[1:])), dtype=np.int32).reshape(x.shape[1:])
    fm = _checked_mask(mask, x)
    b = _baseline(x, baseline)
    target_fn, t = resolve(model, x, target)
    mesh = device_mesh(devices)
    b = jnp.broadcast_to(jnp.asarray(b, x.dtype), x.shape) if mesh is not None else b
    return over_devices(
        _ablation,
        (model, x, b, t, fm.labels),
        batched=(False, True, mesh is not None, True, True),
        mesh=mesh,
        target_fn=target_fn,
        n_features=fm.n_features,
        batch_size=batch_size,
    )


for _method in (occlusion, feature_ablation):
    no_layer(_method, "it perturbs input features and reads the output; no layer version")
