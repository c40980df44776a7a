"""Deletion and insertion curves (Petsiuk et al. 2018) and ROAD's MoRF/LeRF (Rong et al. 2022).

Each example's features (the elements of ``attributions``, or the groups of a feature mask) are
ordered by attribution, descending, ties by index (a stable sort). Every perturbed input of every
step of every example is one row; the rows are built inside one jitted program from the per-element
rank (``where(rank < count, ·, ·)``) and evaluated in chunks of ``batch_size`` rows with one batched
forward per chunk (:mod:`visjax.base.batching`), so only the ``(N, steps)`` scores leave a chunk.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from visjax.attribution._target import Target, check_batch_size, select_output
from visjax.attribution.ablation import full_chunks
from visjax.attribution.blur import gaussian_blur
from visjax.attribution.masks import feature_mask
from visjax.attribution.metrics._common import (
    Curves,
    baseline_value,
    check_maps_shape,
    concrete_float,
    maps_of,
    setup,
    trapezoid,
    valid_rows,
)
from visjax.base.batching import FORWARD_UNROLL, chunked_sum
from visjax.base.checks import check_key, check_positive_int

Output = Literal["softmax", "logit"]
BLUR_SIGMA = 5.0  # Petsiuk et al.'s insertion baseline: a Gaussian blur with sigma 5 pixels


def _check_output(output: Any) -> None:
    if output not in ("softmax", "logit"):
        raise ValueError(f"`output` must be 'softmax' or 'logit', got {output!r}")


def feature_ranks(maps: jax.Array, mask: Any = None) -> tuple[jax.Array, jax.Array]:
    """``(rank per element (maps.shape), number of features (N,))``: each element gets the rank
    of its feature in the descending stable order of the feature scores (the attributions, or
    their sums over each group of ``mask``); features absent from an example rank last."""
    n = maps.shape[0]
    if mask is None:
        scores = maps.reshape(n, math.prod(maps.shape[1:]))
        labels = None
        count = jnp.full((n,), scores.shape[1], jnp.int32)
    else:
        fm = feature_mask(mask, maps, name="mask")
        labels = fm.labels.reshape(n, math.prod(fm.labels.shape[1:]))
        flat = maps.reshape(n, math.prod(maps.shape[1:]))
        scores = jax.vmap(lambda lab, a: jnp.zeros(fm.n_features, a.dtype).at[lab].add(a))(
            labels, flat
        )
        scores = jnp.where(fm.present, scores, -jnp.inf)
        count = fm.present.sum(1).astype(jnp.int32)
    # `+ 0.0` turns -0.0 into 0.0: the two must tie, not sort apart.
    order = jnp.argsort(-scores + 0.0, axis=1, stable=True)
    rank = (
        jnp.zeros_like(order)
        .at[jnp.arange(n)[:, None], order]
        .set(jnp.arange(scores.shape[1])[None, :])
    )
    if labels is not None:
        rank = jnp.take_along_axis(rank, labels, axis=1)
    return rank.reshape(maps.shape).astype(jnp.int32), count


def _score(model, target_fn, output, xs, ts):
    out = model(xs)
    if output == "softmax":
        out = jax.nn.softmax(out, axis=-1)
    return jax.vmap(functools.partial(select_output, target_fn))(out, ts)


def _score_rows(model, target_fn, output, t, n, k, batch_size, perturb):
    """``(n, k)`` scores of the ``n · k`` perturbed inputs ``perturb(r, e, s)`` of rows ``r``
    (example ``e = r // k``, step ``s = r % k``), in chunks of ``batch_size`` rows with one batched
    forward each (traced inside the jitted caller)."""

    def chunk(r):
        r, store = valid_rows(r, n * k)
        e = r // k
        y = _score(model, target_fn, output, perturb(r, e, r % k), t[e])
        return jnp.zeros(n * k, y.dtype).at[store].set(y, mode="drop")

    size, rows = full_chunks(batch_size, chunk, n * k)
    return chunked_sum(chunk, rows, batch_size=size, max_unroll=FORWARD_UNROLL).reshape(n, k)


@functools.partial(
    jax.jit, static_argnames=("target_fn", "n_steps", "insert", "output", "batch_size")
)
def _curves(model, x, base, t, rank, count, target_fn, n_steps, insert, output, batch_size):
    base = jnp.broadcast_to(jnp.asarray(base, x.dtype), x.shape)

    def perturb(r, e, s):
        removed = (s * count[e] // n_steps).reshape((-1,) + (1,) * (x.ndim - 1))
        m = rank[e] < removed
        return jnp.where(m, x[e], base[e]) if insert else jnp.where(m, base[e], x[e])

    return _score_rows(model, target_fn, output, t, x.shape[0], n_steps + 1, batch_size, perturb)


def _resolve_baseline(x: jax.Array, baseline: Any) -> Any:
    if isinstance(baseline, str) and baseline == "blur":
        if x.ndim != 4:
            raise ValueError(f"`baseline='blur'` needs NHWC images, got `x` of shape {x.shape}")
        return gaussian_blur(x, BLUR_SIGMA)
    if callable(baseline):
        b = jnp.asarray(baseline(x))
        try:
            jnp.broadcast_to(b, x.shape)
        except ValueError:
            raise ValueError(
                f"`baseline` returned shape {b.shape}, which does not broadcast to `x` {x.shape}"
            ) from None
        if not np.isfinite(np.asarray(b)).all():
            raise ValueError("`baseline` returned NaN or Inf")
        return b
    return baseline_value(x, baseline)


def _deletion_like(insert, model, x, target, attributions, n_steps, baseline, mask, output, bs):
    model, x, target_fn, t = setup(model, x, target)
    n_steps = check_positive_int(n_steps, "n_steps")
    _check_output(output)
    batch_size = check_batch_size(bs)
    maps = maps_of(attributions, model, x, target, "attributions")
    check_maps_shape(maps, x, "attributions")
    if x.shape[0] == 0:  # checked above; nothing to rank or compile
        return Curves(jnp.zeros((0, n_steps + 1)), jnp.zeros((0,)))
    rank, count = feature_ranks(maps, mask)
    rank = jnp.broadcast_to(rank, x.shape)
    base = _resolve_baseline(x, baseline)
    curves = _curves(model, x, base, t, rank, count, target_fn, n_steps, insert, output, batch_size)
    return Curves(curves, trapezoid(curves, jnp.linspace(0.0, 1.0, n_steps + 1)))


def deletion(
    model: Any,
    x: Any,
    target: Target,
    attributions: Any,
    *,
    n_steps: int = 32,
    baseline: Any = 0.0,
    mask: Any = None,
    output: Output = "softmax",
    batch_size: int | str | None = "auto",
) -> Curves:
    """Deletion curve: the target's score as the most relevant features are removed first.

    With ``F`` features ordered by descending attribution (stable sort: ties by index), step
    ``s = 0..S`` replaces the first ``⌊s F / S⌋`` features by the baseline:
    ``c_s = f(x ⊙ (1 − m_s) + b ⊙ m_s)``, and ``AUC = Σ_s (c_s + c_{s+1}) / (2 S)`` (the
    trapezoid rule over ``[0, 1]``). A lower area means a more faithful ordering.

    Args:
      model: anything :func:`visjax.as_model` accepts (outputs ``(N, classes)`` logits).
      x: a batch ``(N, ...)`` (NHWC for images).
      target: an int class, an int array ``(N,)``, or a callable from one example's (softmax or
        logit) output to a scalar (static).
      attributions: maps shaped like ``x`` (or broadcasting to it with the same batch and rank,
        e.g. ``(N, H, W, 1)``: one score per pixel); or a method: any visjax method, a
        ``functools.partial`` of one, or a function ``(model, x, target) -> maps``.
      n_steps: the number of steps (static, >= 1); the curve has ``n_steps + 1`` points.
      baseline: the replacement: a number, an array broadcasting to ``x``, ``"blur"`` (``x``
        blurred by a Gaussian of sigma 5 pixels, Petsiuk et al.'s insertion start) or a function
        ``x -> baseline``.
      mask: integer feature labels ``0..K-1`` checked against ``attributions`` (shared or per
        example, :func:`visjax.attribution.masks.feature_mask`); a feature's score is the sum of
        its attributions. ``None``: every element of ``attributions`` is a feature.
      output: ``"softmax"`` (the target's probability) or ``"logit"``.
      batch_size: perturbed inputs per chunk (static); ``None``: all at once; ``"auto"``: chunks
        of a fixed memory budget (:func:`visjax.base.batching.auto_rows`).

    Returns:
      :class:`Curves`: ``curves (N, n_steps + 1)``, ``auc (N,)``.

    Raises:
      ValueError: attributions of the wrong shape or with NaN/Inf (a method that returned NaN),
        ``n_steps < 1``, a mask that does not fit the attributions, a bad baseline or output.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> r = deletion(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3,
      ...              jnp.ones((2, 8, 8, 1)), n_steps=4)
      >>> r.curves.shape, r.auc.shape
      ((2, 5), (2,))

    References:
      Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
      Models", BMVC 2018. https://arxiv.org/abs/1806.07421
    """
    return _deletion_like(
        False, model, x, target, attributions, n_steps, baseline, mask, output, batch_size
    )


def insertion(
    model: Any,
    x: Any,
    target: Target,
    attributions: Any,
    *,
    n_steps: int = 32,
    baseline: Any = 0.0,
    mask: Any = None,
    output: Output = "softmax",
    batch_size: int | str | None = "auto",
) -> Curves:
    """Insertion curve: the target's score as the most relevant features are restored first.

    As :func:`deletion` (the same arguments, result and errors, and the same code), with step
    ``s`` starting from the baseline and taking the first ``⌊s F / S⌋`` features from ``x``:
    ``c_s = f(b ⊙ (1 − m_s) + x ⊙ m_s)``. A higher area means a more faithful ordering. Petsiuk
    et al. start insertion from a blurred image (``baseline="blur"``) rather than from zeros.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> x = jnp.linspace(0.0, 1.0, 128).reshape(2, 8, 8, 1)
      >>> r = insertion(digits_cnn("function"), x, 3, x, n_steps=4, baseline="blur")
      >>> r.curves.shape, r.auc.shape
      ((2, 5), (2,))

    References:
      Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
      Models", BMVC 2018. https://arxiv.org/abs/1806.07421
    """
    return _deletion_like(
        True, model, x, target, attributions, n_steps, baseline, mask, output, batch_size
    )


# ----------------------------------------------------------------------------------------------
# ROAD: remove and debias, with noisy linear imputation

_DIRECT, _DIAGONAL = 1.0 / 6.0, 1.0 / 12.0
_OFFSETS = tuple(
    (di, dj, _DIAGONAL if di and dj else _DIRECT)
    for di in (-1, 0, 1)
    for dj in (-1, 0, 1)
    if di or dj
)


def _neighbour_sum(v: jax.Array) -> jax.Array:
    """``Σ_j w_ij v_j`` over the 8 neighbours inside the image, for ``v (H, W, C)``."""
    h, w = v.shape[:2]
    p = jnp.pad(v, ((1, 1), (1, 1), (0, 0)))
    return sum(wt * p[1 + di : 1 + di + h, 1 + dj : 1 + dj + w] for di, dj, wt in _OFFSETS)


def noisy_linear_impute(
    x: jax.Array, removed: jax.Array, *, key: jax.Array, noise: float = 0.01, tol: float = 1e-6
) -> jax.Array:
    """ROAD's noisy linear imputation of one image ``x (H, W, C)`` at pixels ``removed (H, W)``.

    Each removed pixel is the weighted mean of its (up to 8) neighbours, weights 1/6 for direct
    and 1/12 for diagonal neighbours; removed neighbours are unknowns too, which gives the linear
    system, per channel, ``(Σ_{j ∈ N(i)} w_ij) z_i − Σ_{j ∈ N(i), removed} w_ij z_j =
    Σ_{j ∈ N(i), kept} w_ij x_j`` over the removed pixels ``i``. Then Gaussian noise of standard
    deviation ``noise`` is added to the imputed pixels.

    Departures from Rong et al.'s code: the system (symmetric, positive definite when every
    connected region of removed pixels touches a kept pixel) is solved matrix-free by conjugate
    gradients to ``tol`` instead of by a sparse direct solve, so it vmaps and scales with the
    image; kept pixels stay exact. Removing every pixel leaves the system singular: the CG
    solution from the zero start is 0 (plus noise) there.
    """
    u = removed.astype(x.dtype)[..., None]
    deg = _neighbour_sum(jnp.ones_like(x))

    def op(z):
        return u * (deg * z - _neighbour_sum(u * z)) + (1 - u) * z

    b = u * _neighbour_sum((1 - u) * x) + (1 - u) * x
    z, _ = jax.scipy.sparse.linalg.cg(op, b, x0=(1 - u) * x, tol=tol, maxiter=4 * x.size)
    return z + u * noise * jax.random.normal(key, x.shape, x.dtype)


@functools.partial(jax.jit, static_argnames=("target_fn", "output", "batch_size"))
def _road(model, x, t, rank, counts, key, noise, target_fn, output, batch_size):
    def perturb(r, e, p):
        removed = rank[e] < counts[p][:, None, None]
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(r)
        return jax.vmap(lambda xi, mi, ki: noisy_linear_impute(xi, mi, key=ki, noise=noise))(
            x[e], removed, keys
        )

    return _score_rows(
        model, target_fn, output, t, x.shape[0], counts.shape[0], batch_size, perturb
    )


def road(
    model: Any,
    x: Any,
    target: Target,
    attributions: Any,
    *,
    key: jax.Array,
    order: Literal["morf", "lerf"] = "morf",
    percentages: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    noise: float = 0.01,
    output: Output = "softmax",
    batch_size: int | str | None = "auto",
) -> Curves:
    """ROAD: the target's score as a fraction of pixels is removed by noisy linear imputation.

    Pixels (attributions summed over channels) are ordered by descending attribution for
    ``"morf"`` (most relevant first) or ascending for ``"lerf"``, ties by index; for each
    fraction ``p`` the first ``⌊p H W⌋`` pixels are imputed by :func:`noisy_linear_impute` and
    the model is evaluated: ``c_p = f(impute(x, m_p))``. The area is the trapezoid rule over the
    given fractions (MoRF: lower is better; LeRF: higher is better).

    Args:
      model, x, target: as :func:`deletion`; ``x`` holds NHWC images.
      attributions: maps ``(N, H, W, C)`` or ``(N, H, W, 1)``, or a method (as :func:`deletion`).
      key: the noise's key; row ``r = example · P + fraction index`` uses ``fold_in(key, r)``.
      order: ``"morf"`` or ``"lerf"``.
      percentages: fractions of pixels removed, in ``[0, 1]`` (ROAD's 10%..90% by default).
      noise: the imputation noise's standard deviation (ROAD's 0.01).
      output, batch_size: as :func:`deletion`.

    Returns:
      :class:`Curves` with ``curves (N, len(percentages))`` and ``auc (N,)``.

    References:
      Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient Evaluation Strategy
      for Attribution Methods", ICML 2022. https://arxiv.org/abs/2202.00449
    """
    model, x, target_fn, t = setup(model, x, target)
    if x.ndim != 4:
        raise ValueError(f"`x` must hold NHWC images for ROAD, got shape {x.shape}")
    check_key(key)
    if order not in ("morf", "lerf"):
        raise ValueError(f"`order` must be 'morf' or 'lerf', got {order!r}")
    _check_output(output)
    batch_size = check_batch_size(batch_size)
    noise = concrete_float(noise, "noise")
    fractions = np.asarray(percentages, np.float64)
    if fractions.ndim != 1 or fractions.size < 1 or ((fractions < 0) | (fractions > 1)).any():
        raise ValueError(f"`percentages` must be fractions in [0, 1], got {percentages!r}")
    maps = maps_of(attributions, model, x, target, "attributions")
    check_maps_shape(maps, x, "attributions")
    if x.shape[0] == 0:  # checked above; nothing to rank or compile
        return Curves(jnp.zeros((0, fractions.size)), jnp.zeros((0,)))
    pixels = maps.sum(-1)
    rank, _ = feature_ranks(pixels if order == "morf" else -pixels)
    h, w = x.shape[1:3]
    counts = jnp.asarray(np.floor(fractions * h * w + 1e-9).astype(np.int32))
    curves = _road(model, x, t, rank, counts, key, noise, target_fn, output, batch_size)
    return Curves(curves, trapezoid(curves, jnp.asarray(fractions, jnp.float32)))
