"""Shapley values of feature groups: permutation sampling and exact enumeration.

A *feature* is a group of input elements sharing a label in ``mask``
(:mod:`visjax.attribution.masks`); a coalition ``S`` of features is evaluated as the input with the
features in ``S`` taken from ``x`` and the others from the baseline, ``v(S) = f(x_S ⊕ b_{¬S})``.
The Shapley value of feature ``k`` among ``K`` is

``φ_k = Σ_{S ⊆ F∖{k}} |S|! (K − |S| − 1)! / K! · (v(S ∪ {k}) − v(S))``,

and every element of a feature gets the feature's value (as Captum). Every perturbed input is
built with ``vmap`` and evaluated inside one jitted program in chunks of ``batch_size`` perturbed
inputs (an unrolled loop, :mod:`visjax.base.batching`), batched over the examples.

Features absent from an example (per-example masks, ``present`` False) are null players: they
get exactly 0 and the other features' values are those of the game without them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.attribution._target import (
    Target,
    check_batch_size,
    check_positive_int,
    empty_batch,
    example_fn,
    prepare,
    require_key,
    resolve,
)
from visjax.attribution.baselines import make_baseline
from visjax.attribution.layer import no_layer
from visjax.attribution.masks import FeatureMask, feature_mask
from visjax.base.batching import FORWARD_UNROLL, chunked_sum
from visjax.base.sharding import device_mesh, over_devices

MAX_EXACT_FEATURES = 16


def checked_mask(mask: Any, x: jax.Array) -> FeatureMask:
    """``mask`` checked against ``x``; ``None``: every element of an example is its own feature."""
    if mask is None:
        mask = np.arange(math.prod(x.shape[1:]), dtype=np.int32).reshape(x.shape[1:])
    return feature_mask(mask, x)


def perturb(x, b, labels, e, coalitions):
    """Rows ``x[e]`` with the features outside ``coalitions`` (``(rows, K)`` bool) from ``b[e]``."""
    keep = jax.vmap(lambda c, lab: c[lab])(coalitions, labels[e])
    return jnp.where(keep, x[e], b[e])


def evaluate_rows(fn: Callable, n_rows: int, batch_size: int | str | None) -> Any:
    """``fn(idx)`` for ``idx = 0..n_rows-1`` in chunks of ``batch_size``, as arrays ``(n_rows,)``.

    ``fn`` maps a chunk of row indices ``(c,)`` to a pytree of ``(c,)`` arrays; each chunk's values
    are scattered into the full result, so the chunks can be summed by :func:`chunked_sum`.
    """

    def chunk(idx):
        return jax.tree.map(lambda v: jnp.zeros(n_rows, v.dtype).at[idx].set(v), fn(idx))

    return chunked_sum(chunk, jnp.arange(n_rows), batch_size=batch_size, max_unroll=FORWARD_UNROLL)


def run_perturbation(fn, devices, model, x, b, t, fm, *shared, **static):
    """``fn(model, x, b, t, labels, present, *shared, n_features=K, **static)`` with the examples
    split over ``devices`` (:mod:`visjax.base.sharding`; the ``shared`` draws replicated, so
    every device uses the same coalitions as one device would)."""
    mesh = device_mesh(devices)
    if mesh is not None:
        b = jnp.broadcast_to(jnp.asarray(b, x.dtype), x.shape)
    return over_devices(
        fn,
        (model, x, b, t, fm.labels, fm.present, *shared),
        batched=(False, True, True, True, True, True) + (False,) * len(shared),
        mesh=mesh,
        n_features=fm.n_features,
        **static,
    )


def spread(phi: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-feature values ``(N, K)`` spread to the elements of each feature (``labels``' shape)."""
    n = labels.shape[0]
    return jnp.take_along_axis(phi, labels.reshape(n, -1), axis=1).reshape(labels.shape)


def setup_perturbation(model, x, target, mask, baseline, batch_size, key=None):
    """The checks and set-up shared by the perturbation methods (Shapley sampling, KernelSHAP,
    LIME): ``(model, x, baseline, target_fn, t, feature_mask, batch_size)``."""
    model, x = prepare(model, x)
    batch_size = check_batch_size(batch_size)
    target_fn, t = resolve(model, x, target)
    fm = checked_mask(mask, x)
    b = make_baseline(x, baseline, key=key)
    return model, x, b, target_fn, t, fm, batch_size


@functools.partial(jax.jit, static_argnames=("target_fn", "n_features", "n_samples", "batch_size"))
def _sampling(model, x, b, t, labels, present, key, target_fn, n_features, n_samples, batch_size):
    k, s_count, n = n_features, n_samples, x.shape[0]
    perms = jax.vmap(lambda kk: jax.random.permutation(kk, k))(jax.random.split(key, s_count))
    rank = jnp.argsort(perms, axis=1)  # rank[s, j]: the step at which feature j is added
    f = jax.vmap(example_fn(model, target_fn))
    per_example = s_count * k

    def rows(idx):
        e, r = idx // per_example, idx % per_example
        s, step = r // k, r % k
        z = perturb(x, b, labels, e, rank[s] <= step[:, None])
        return f(z, t[e])

    y = evaluate_rows(rows, n * per_example, batch_size).reshape(n, s_count, k)
    fb = f(b, t)
    prev = jnp.concatenate([jnp.broadcast_to(fb[:, None, None], (n, s_count, 1)), y[..., :-1]], 2)
    phi = jnp.zeros((n, k), y.dtype).at[:, perms.reshape(-1)].add((y - prev).reshape(n, -1))
    return spread(jnp.where(present, phi / s_count, 0.0), labels)


@empty_batch
def shapley_value_sampling(
    model: Any,
    x: Any,
    target: Target,
    *,
    mask: Any = None,
    baseline: Any = 0.0,
    n_samples: int = 25,
    key: jax.Array,
    batch_size: int | str | None = "auto",
    devices: Any = None,
) -> jax.Array:
    """Shapley value sampling: marginal contributions averaged over random feature orderings.

    For ``n_samples`` random permutations ``π`` of the ``K`` features, the features are added one
    by one to the baseline in the order ``π``; feature ``π_j`` gets the difference
    ``v({π_1..π_j}) − v({π_1..π_{j−1}})``. Averaged over permutations this is an unbiased
    estimate of ``φ_k = E_π[v(Pre_π(k) ∪ {k}) − v(Pre_π(k))]``, the Shapley value; each
    permutation's contributions sum to ``f(x) − f(b)`` exactly (up to float rounding), so the
    estimate is efficient for any ``n_samples``. Cost: ``n_samples · K`` forward passes per example
    plus one for the baseline (as Captum).

    The permutations are drawn from ``key`` and shared by every example in the batch (as Captum,
    which draws one permutation per sample for the whole batch), so a batch gives the same values
    as its examples one at a time with the same key.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (static).
      mask: integer feature labels ``0..K−1``, shared (broadcasting to ``x.shape[1:]``) or per
        example (see :func:`visjax.attribution.masks.feature_mask`); ``None``: every element is
        its own feature. Must be concrete (``K`` sets shapes).
      baseline: an array broadcastable to ``x``, a scalar (default 0), or a name accepted by
        :func:`visjax.attribution.make_baseline`.
      n_samples: number of permutations (static), Captum's default 25.
      key: a PRNG key (required).
      batch_size: perturbed inputs per chunk (static). ``"auto"`` (default) sizes the chunks from
        the backend and the per-row cost of the intermediates: about 8 MiB per chunk on CPU, 512
        MiB on GPU/TPU (a scan drives the chunks, so their number is not capped;
        :mod:`visjax.base.batching`); an int fixes the chunk; ``None``: all ``N · n_samples · K``
        at once.
      devices: where the batch runs: ``None`` (default: all of ``jax.local_devices()``; one
        device runs the single-device program), a sequence of devices or a
        :class:`jax.sharding.Mesh`: the examples are split evenly over them, every device
        walking the same permutations (:mod:`visjax.base.sharding`); the result equals the
        single-device one.

    Returns:
      Attributions shaped like ``x``; every element carries its feature's value, absent features 0.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> mask = jnp.arange(4).reshape(2, 2).repeat(4, 0).repeat(4, 1)[..., None]
      >>> phi = shapley_value_sampling(
      ...     digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3, mask=mask, key=jax.random.key(0)
      ... )
      >>> phi.shape
      (2, 8, 8, 1)

    References:
      Castro, Gómez, Tejada, "Polynomial calculation of the Shapley value based on sampling",
      Computers & Operations Research 2009. https://doi.org/10.1016/j.cor.2008.04.004 (Captum's
      ``ShapleyValueSampling``, same walk and averaging; Captum draws permutations with torch's
      global RNG, visjax from ``key``.)
    """
    key = require_key(key, "shapley_value_sampling")
    n_samples = check_positive_int(n_samples, "n_samples")
    model, x, b, target_fn, t, fm, batch_size = setup_perturbation(
        model, x, target, mask, baseline, batch_size, key=jax.random.fold_in(key, 1)
    )
    return run_perturbation(
        _sampling,
        devices,
        model,
        x,
        b,
        t,
        fm,
        key,
        target_fn=target_fn,
        n_samples=n_samples,
        batch_size=batch_size,
    )


def shapley_weights(n_features: int) -> np.ndarray:
    """``A`` ``(2^K, K)`` with ``φ = v @ A`` for the values ``v`` of all coalitions (bit ``k`` of
    the coalition's index says whether feature ``k`` is in it)."""
    k = n_features
    bits = (np.arange(2**k)[:, None] >> np.arange(k)) & 1
    size = bits.sum(1, keepdims=True)
    fact = np.array([math.factorial(i) for i in range(k + 1)], np.float64)

    def w(s):
        return fact[s] * fact[np.clip(k - s - 1, 0, None)] / fact[k]

    return np.where(bits == 1, w(size - 1), -w(size))


@functools.partial(jax.jit, static_argnames=("target_fn", "n_features", "batch_size"))
def _exact(model, x, b, t, labels, present, target_fn, n_features, batch_size):
    k, n = n_features, x.shape[0]
    c = 2**k
    f = jax.vmap(example_fn(model, target_fn))

    def rows(idx):
        e, coal = idx // c, idx % c
        z = perturb(x, b, labels, e, ((coal[:, None] >> jnp.arange(k)) & 1).astype(bool))
        return f(z, t[e])

    v = evaluate_rows(rows, n * c, batch_size).reshape(n, c)
    # The columns of A sum to 0: subtracting v(∅) changes nothing but the rounding.
    phi = (v - v[:, :1]) @ jnp.asarray(shapley_weights(k), v.dtype)
    return spread(jnp.where(present, phi, 0.0), labels)


@empty_batch
def exact_shapley(
    model: Any,
    x: Any,
    target: Target,
    *,
    mask: Any = None,
    baseline: Any = 0.0,
    batch_size: int | str | None = "auto",
    devices: Any = None,
) -> jax.Array:
    """Exact Shapley values of at most 16 features, by evaluating all ``2^K`` coalitions.

    ``φ_k = Σ_{S ⊆ F∖{k}} |S|! (K − |S| − 1)! / K! · (v(S ∪ {k}) − v(S))`` with
    ``v(S) = f(x_S ⊕ b_{¬S})``. Satisfies efficiency (``Σ_k φ_k = f(x) − f(b)``), symmetry,
    the null-player and linearity axioms exactly (up to float rounding). Cost: ``2^K`` forward
    passes per example; the reference for the sampling methods on small problems.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable (static).
      mask: integer feature labels ``0..K−1`` (shared or per example); ``None``: every element is
        its own feature. ``K`` must be at most 16.
      baseline: an array broadcastable to ``x``, a scalar (default 0), or a name accepted by
        :func:`visjax.attribution.make_baseline` (``"uniform"`` is refused: no key).
      batch_size: perturbed inputs per chunk (static). ``"auto"`` (default) sizes the chunks from
        the backend and the per-row cost of the intermediates: about 8 MiB per chunk on CPU, 512
        MiB on GPU/TPU (a scan drives the chunks, so their number is not capped;
        :mod:`visjax.base.batching`); an int fixes the chunk; ``None``: all ``N · 2^K`` at once.
      devices: as in :func:`shapley_value_sampling` (the examples split over the devices).

    Returns:
      Attributions shaped like ``x``; every element carries its feature's value, absent features 0.

    Raises:
      ValueError: more than 16 features.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> mask = jnp.arange(4).reshape(2, 2).repeat(4, 0).repeat(4, 1)[..., None]
      >>> exact_shapley(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3, mask=mask).shape
      (2, 8, 8, 1)

    References:
      Shapley, "A Value for n-Person Games", Contributions to the Theory of Games II, 1953.
      https://doi.org/10.1515/9781400881970-018 ; Štrumbelj and Kononenko, "Explaining prediction
      models and individual predictions with feature contributions", KAIS 2014.
      https://doi.org/10.1007/s10115-013-0679-x (Captum's ``ShapleyValues`` enumerates all ``K!``
      permutations instead; the values are the same.)
    """
    model, x, b, target_fn, t, fm, batch_size = setup_perturbation(
        model, x, target, mask, baseline, batch_size
    )
    if fm.n_features > MAX_EXACT_FEATURES:
        raise ValueError(
            f"exact_shapley enumerates 2^K coalitions and accepts at most "
            f"{MAX_EXACT_FEATURES} features, got K = {fm.n_features}: group elements with `mask` "
            "or use shapley_value_sampling / kernel_shap"
        )
    return run_perturbation(
        _exact, devices, model, x, b, t, fm, target_fn=target_fn, batch_size=batch_size
    )


for _method in (shapley_value_sampling, exact_shapley):
    no_layer(_method, "it perturbs input features and reads the output; no layer version")
