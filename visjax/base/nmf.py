"""Non-negative matrix factorisation ``V ≈ W H`` in JAX: multiplicative updates and HALS.

For ``V`` ``(M, P)`` non-negative and a rank ``k``, find ``W ≥ 0`` ``(M, k)`` and ``H ≥ 0``
``(k, P)`` minimising ``‖V − W H‖_F``. Two solvers, each alternating a ``W`` then an ``H`` update
(scikit-learn's order):

- ``"mu"``: Lee and Seung's multiplicative updates, ``W ← W ⊙ (V Hᵀ) / (W H Hᵀ + ε)`` and
  ``H ← H ⊙ (Wᵀ V) / (Wᵀ W H + ε)`` (scikit-learn's ``algorithm="mu"``, Frobenius loss).
- ``"hals"``: hierarchical alternating least squares (Cichocki and Phan 2009): each column of
  ``W`` (then each row of ``H``) in turn set to its exact non-negative least-squares optimum with
  the others fixed. For the Frobenius loss this is scikit-learn's coordinate descent
  (``algorithm="cd"``, its default) sweep for sweep.

Both decrease ``‖V − W H‖_F`` monotonically. Stopping follows scikit-learn's ``mu`` rule: every
10 iterations the error is computed and the loop stops once
``(previous − current) / initial < tol`` (``tol=0`` runs all ``n_iter`` iterations).

A leading batch axis (``V`` ``(B, M, P)``) factorises each matrix independently (``vmap``).
The random initialisation is scikit-learn's ``init="random"`` drawn from a JAX key:
``|N(0, 1)| · sqrt(mean(V) / k)`` for both factors; ``init=(W0, H0)`` starts from given factors
(for example a NumPy initialisation shared with scikit-learn's ``init="custom"``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_finite, check_key, check_positive_int, is_concrete

ALGORITHMS = ("mu", "hals")
EPS = 1e-10  # scikit-learn's MU denominator guard (its EPSILON is float32 eps; this is smaller)
CHECK_EVERY = 10  # iterations between stopping checks (scikit-learn's)


def _rel_error(v: jax.Array, w: jax.Array, h: jax.Array) -> jax.Array:
    """``‖V − W H‖_F / ‖V‖_F`` (the plain error when ``V = 0``), computed directly: the expanded
    trace form loses every digit below ~1e-4 in float32."""
    err = jnp.linalg.norm(v - w @ h)
    norm = jnp.linalg.norm(v)
    return jnp.where(norm > 0, err / jnp.where(norm > 0, norm, 1), err)


def _mu_step(v, w, h, mask):
    w = w * (v @ h.T) / (w @ (h @ h.T) + EPS) * mask
    h = h * (w.T @ v) / ((w.T @ w) @ h + EPS) * mask[:, None]
    return w, h


def _hals_columns(a, b, w, mask):
    """One HALS sweep over the columns of ``w`` for ``min ‖V − W H‖`` with ``a = V Hᵀ``,
    ``b = H Hᵀ``."""

    def col(j, w):
        bjj = b[j, j]
        step = (a[:, j] - w @ b[:, j]) / jnp.where(bjj > 0, bjj, 1)
        new = jnp.maximum(w[:, j] + step, 0) * mask[j]
        return w.at[:, j].set(jnp.where(bjj > 0, new, w[:, j]))

    return jax.lax.fori_loop(0, w.shape[1], col, w)


def _hals_step(v, w, h, mask):
    w = _hals_columns(v @ h.T, h @ h.T, w, mask)
    ht = _hals_columns(v.T @ w, w.T @ w, h.T, mask)
    return w, ht.T


@functools.partial(jax.jit, static_argnames=("algorithm",))
def _nmf_one(v, w, h, mask, n_iter, tol, algorithm):
    """One matrix: ``(W, H, rel_error)`` after at most ``n_iter`` iterations. ``mask`` ``(k,)``
    (1 or 0) switches components off (their factors stay zero): one compiled program serves every
    rank up to ``k``."""
    step = _mu_step if algorithm == "mu" else _hals_step
    w, h = w * mask, h * mask[:, None]
    err0 = _rel_error(v, w, h)

    def cond(state):
        i, _, _, _, done = state
        return (i < n_iter) & ~done

    def body(state):
        i, w, h, prev, _ = state
        w, h = step(v, w, h, mask)
        i = i + 1
        check = (tol > 0) & (i % CHECK_EVERY == 0)
        err = jax.lax.cond(check, lambda: _rel_error(v, w, h), lambda: prev)
        done = check & ((prev - err) < tol * err0)
        return i, w, h, jnp.where(check, err, prev), done

    state = (jnp.asarray(0), w, h, err0, jnp.asarray(False))
    _, w, h, _, _ = jax.lax.while_loop(cond, body, state)
    return w, h, _rel_error(v, w, h)


@functools.partial(jax.jit, static_argnames=("algorithm",))
def _nmf_batch(v, w, h, mask, n_iter, tol, algorithm):
    one = functools.partial(_nmf_one, algorithm=algorithm)
    return jax.vmap(one, in_axes=(0, 0, 0, None, None, None))(v, w, h, mask, n_iter, tol)


@functools.partial(jax.jit, static_argnames=("k",))
def random_init(key: jax.Array, v: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """scikit-learn's ``init="random"`` from a JAX key: ``W`` ``(..., M, k)`` and ``H``
    ``(..., k, P)`` of ``|N(0, 1)| · sqrt(mean(V) / k)`` (the mean per matrix)."""
    *batch, m, p = v.shape
    avg = jnp.sqrt(v.mean(axis=(-2, -1)) / k)[..., None]
    z = avg * jnp.abs(jax.random.normal(key, (*batch, m * k + k * p), v.dtype))  # one draw
    return z[..., : m * k].reshape(*batch, m, k), z[..., m * k :].reshape(*batch, k, p)


def _check_init(init: Any, shape_w: tuple, shape_h: tuple, dtype) -> tuple[jax.Array, jax.Array]:
    if not isinstance(init, tuple | list) or len(init) != 2:
        raise TypeError(f"`init` must be None or a pair (W0, H0), got {type(init).__name__}")
    w, h = (jnp.asarray(a, dtype) for a in init)
    for name, a, shape in (("init[0]", w, shape_w), ("init[1]", h, shape_h)):
        if a.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape}, got {a.shape}")
        check_finite(a, name)
        if is_concrete(a) and (np.asarray(a) < 0).any():
            raise ValueError(f"`{name}` must be non-negative, its minimum is {float(a.min())}")
    return w, h


def nmf(
    v: Any,
    k: int,
    *,
    n_iter: int = 200,
    algorithm: str = "mu",
    key: jax.Array | None = None,
    init: tuple[Any, Any] | None = None,
    tol: float = 1e-4,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Non-negative matrix factorisation ``V ≈ W H`` (see the module docstring).

    Args:
      v: a non-negative matrix ``(M, P)``, or a batch ``(B, M, P)`` factorised one by one.
      k: the rank (number of components), ``>= 1``.
      n_iter: the most iterations (``>= 0``; each updates ``W`` then ``H``).
      algorithm: ``"mu"`` (multiplicative updates) or ``"hals"`` (HALS, scikit-learn's ``cd``).
      key: the PRNG key of the random initialisation (``jax.random.key(0)`` if None); the same
        key gives the same factors.
      init: ``(W0, H0)`` of shapes ``(..., M, k)`` and ``(..., k, P)``, non-negative, instead of
        the random initialisation (``key`` is then not used).
      tol: the stopping tolerance on the relative decrease of the error, checked every 10
        iterations (0 runs all ``n_iter``).

    Returns:
      ``(W, H, rel_error)``: ``W`` ``(..., M, k)``, ``H`` ``(..., k, P)`` and
      ``‖V − W H‖_F / ‖V‖_F`` ``(...)``.

    Raises:
      ValueError: ``v`` not rank 2 or 3, negative or not finite; ``k < 1``; ``n_iter < 0``;
        an unknown ``algorithm``; ``tol < 0``; ``init`` of the wrong shapes or negative.
      TypeError: ``key`` not one PRNG key; ``init`` not a pair.

    Example:
      >>> import jax
      >>> v = jax.random.uniform(jax.random.key(0), (6, 3)) @ jax.random.uniform(
      ...     jax.random.key(1), (3, 8))
      >>> w, h, err = nmf(v, 3, algorithm="hals", n_iter=500, tol=0)
      >>> w.shape, h.shape, bool(err < 1e-2)
      ((6, 3), (3, 8), True)

    References:
      Lee, Seung, "Algorithms for Non-negative Matrix Factorization", NIPS 2001.
      Cichocki, Phan, "Fast Local Algorithms for Large Scale Nonnegative Matrix and Tensor
      Factorizations", IEICE Trans. 2009.
    """
    v = jnp.asarray(v)
    if v.ndim not in (2, 3):
        raise ValueError(f"`v` must be a matrix (M, P) or a batch (B, M, P), got shape {v.shape}")
    if not jnp.issubdtype(v.dtype, jnp.floating):
        v = v.astype(jnp.float32)
    check_finite(v, "v")
    if is_concrete(v) and v.size and float(np.asarray(v).min()) < 0:
        raise ValueError(
            f"`v` must be non-negative, its minimum is {float(np.asarray(v).min())} (shift each "
            "row by its minimum first, as deep_feature_factorization does)"
        )
    k = check_positive_int(k, "k")
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"`algorithm` must be one of {ALGORITHMS}, got {algorithm!r}")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol >= 0:
        raise ValueError(f"`tol` must be a number >= 0, got {tol!r}")
    *batch, m, p = v.shape
    if init is None:
        if key is None:
            key = jax.random.key(0)
        check_key(key)
        w, h = random_init(key, v, k)
    else:
        w, h = _check_init(init, (*batch, m, k), (*batch, k, p), v.dtype)
    return factorise(v, w, h, jnp.ones(k, v.dtype), n_iter, tol, algorithm)


def factorise(v, w, h, mask, n_iter, tol, algorithm):
    """The unchecked solver: ``(W, H, rel_error)`` from ``(W0, H0)``, batched when ``v`` is rank 3;
    ``mask`` ``(k,)`` of ones and zeros keeps the zeroed components at zero (for a rank search)."""
    args = (v, w, h, mask, jnp.asarray(n_iter), jnp.asarray(tol, v.dtype))
    if v.ndim == 3:
        return _nmf_batch(*args, algorithm=algorithm)
    return _nmf_one(*args, algorithm=algorithm)
