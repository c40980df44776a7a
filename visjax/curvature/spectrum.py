"""Lanczos, top Hessian eigenvalues (Lanczos or power iteration) and the spectral density.

All three work in the flattened parameter space (``jax.flatten_util.ravel_pytree``) and call one
jitted (batched) Hessian-vector product per step, driven from Python: on XLA:CPU 8 HVPs took 0.9 s
driven from Python against 28 s inside a ``fori_loop`` (docs/design.md). The small
tridiagonal eigenproblems are solved in float64 NumPy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from visjax.base.batching import AUTO
from visjax.base.checks import (
    check_batch_size,
    check_finite,
    check_finite_tree,
    check_key,
    check_non_negative,
    check_positive_int,
    is_concrete,
    scalar_loss,
)
from visjax.base.data import (
    LossFn,
    check_data,
    data_batch_size,
    data_mesh,
    data_sum,
    first_nonfinite_chunk,
)
from visjax.base.progress import progress_bar, resolve_progress
from visjax.curvature.hvp import hvp_chunk, hvp_jit


@functools.partial(jax.jit, static_argnames=("loss_fn", "batch_size", "mesh"))
def flat_hvps(loss_fn, params, data, xs, batch_size, mesh=None):
    """``H x`` for each row of ``xs`` ``(m, dim)`` in the flattened parameter space (vmapped)."""
    _, unravel = ravel_pytree(params)

    def one(x):
        return ravel_pytree(hvp_jit(loss_fn, params, unravel(x), data, batch_size, mesh))[0]

    return _over_rows(one, xs)


def _over_rows(one, xs):
    """``one`` applied to each row of ``xs`` (traced)."""
    if xs.shape[0] == 1:  # Lanczos' one vector: vmap over one row measured ~10% slower
        return one(xs[0])[None]
    return jax.vmap(one)(xs)


# Residual memory (bytes) up to which :class:`Matvec` linearises the gradient once per run.
LINEARIZE_MAX_BYTES = 1 << 30


@functools.partial(jax.jit, static_argnames=("loss_fn", "batch_size"))
def linearized_gradient(loss_fn, params, data, batch_size):
    """The dataset-mean gradient linearised at ``params`` (``jax.linearize``): a
    ``jax.tree_util.Partial`` ``v -> H v`` holding the forward and backward residuals of every
    data chunk, so each later product runs only the tangent pass (PyHessian likewise keeps the
    gradient's graph and differentiates it again per product)."""
    grad = jax.grad(scalar_loss(loss_fn))
    return jax.linearize(lambda p: data_sum(lambda b: grad(p, b), data, batch_size), params)[1]


@jax.jit
def apply_linearized(lin, params, xs):
    """``H x`` for each row of ``xs`` from :func:`linearized_gradient`'s ``lin``."""
    _, unravel = ravel_pytree(params)

    def one(x):
        return ravel_pytree(lin(unravel(x)))[0]

    return _over_rows(one, xs)


@functools.partial(jax.jit, static_argnames=("loss_fn", "batch_size", "mesh"))
def loss_value(loss_fn, params, data, batch_size, mesh=None):
    f = scalar_loss(loss_fn)
    return data_sum(lambda b: jnp.asarray(f(params, b), jnp.float32), data, batch_size, mesh)


def check_problem(
    loss_fn: LossFn, params: Any, data: Any, batch_size: int | str | None, devices: Any = None
) -> int:
    """Check the inputs (``data`` and ``params`` finite, eagerly) and that the loss is a finite
    scalar at ``params``; the parameter count."""
    dim = check_inputs(params, data, batch_size, devices)
    check_loss_finite(loss_fn, params, data, batch_size)
    return dim


def check_inputs(params: Any, data: Any, batch_size: int | str | None, devices: Any = None) -> int:
    """The parameter count, with ``data``, ``batch_size``, ``devices`` and ``params`` checked
    (finite, eagerly): no loss evaluated, nothing compiled. Arguments checked against the
    parameter count (``k``, ``groups``) are checked between this and :func:`check_loss_finite`."""
    check_data(data)
    check_batch_size(batch_size)
    data_mesh(devices)
    return check_finite_tree(params, "params")


def check_loss_finite(loss_fn: LossFn, params: Any, data: Any, batch_size: int | str | None):
    """``ValueError`` naming ``loss_fn`` unless the loss is a finite scalar at ``params``."""
    value = loss_value(loss_fn, params, data, batch_size)
    if not np.isfinite(float(value)):
        raise ValueError(
            f"`loss_fn` is not finite at `params` ({float(value)})"
            + _locate(loss_fn, params, data, batch_size)
        )


def _locate(loss_fn, params, data, batch_size, v=None) -> str:
    """``": <what> on data chunk [a:b]"``: the first chunk whose loss value, gradient or (with
    a tangent ``v``) Hessian-vector product is not finite, found by re-running the chunks
    eagerly; a note when no single chunk gives it. ``"auto"`` is resolved as the failed jitted
    sum resolved it (the loss value's chunks, or the product's with ``v``)."""
    f = scalar_loss(loss_fn)
    if v is None:
        batch_size = data_batch_size(batch_size, lambda c: jnp.asarray(f(params, c)), data)
    else:
        batch_size = data_batch_size(batch_size, hvp_chunk(loss_fn, params, v), data)
    checks = [
        ("the loss value", lambda c: f(params, c)),
        ("its gradient", lambda c: jax.grad(f)(params, c)),
    ]
    if v is not None:
        checks.append(
            (
                "the Hessian-vector product",
                lambda c: jax.jvp(lambda p: jax.grad(f)(p, c), (params,), (v,))[1],
            )
        )
    found = first_nonfinite_chunk(checks, data, batch_size)
    if found is None:
        return (
            "; re-run eagerly, every data chunk gives a finite loss, gradient and product "
            "(the jitted sum over chunks overflowed, or XLA computed it differently)"
        )
    return f": {found} is not finite (found by re-running the chunks eagerly)"


class Matvec:
    """The Hessian (or another symmetric operator) as a function of flat vectors, counting calls.

    Each product is checked for NaN/Inf as it comes back (one reduction, one bool to the host);
    a non-finite one raises ``ValueError`` saying which data chunk first gives a non-finite
    loss value, gradient or product (:func:`_locate`).
    """

    def __init__(self, loss_fn, params, data, batch_size, devices=None, bar=None):
        self.loss_fn, self.params, self.data, self.batch_size = loss_fn, params, data, batch_size
        self.mesh = data_mesh(devices)
        self.calls = 0
        self.bar = bar  # a progress bar counting products (visjax.base.progress), or None
        self._lin: Any = None

    def _linearized(self):
        """The gradient linearised once (on the first product) when its residuals fit in
        :data:`LINEARIZE_MAX_BYTES` and the data is not sharded; else ``False`` (each product
        then runs forward-over-reverse in full). Linearised, a product of the digits CNN over
        1,347 images runs only the tangent pass (README, "Fast by default").

        With ``batch_size="auto"`` the data is linearised as one chunk whenever that fits: the
        residuals of every chunk are kept whatever the chunking, so chunks would not bound the
        memory, while each unrolled chunk is one more copy of the gradient to compile (ResNet-20,
        32 examples at 16 px, top-5 Lanczos: first call 237 s with 16 auto chunks, 83 s as one
        chunk, under load)."""
        if self._lin is None:
            self._lin = False
            if self.mesh is None:
                sizes = (None, self.batch_size) if self.batch_size == AUTO else (self.batch_size,)
                for batch_size in sizes:
                    args = (self.loss_fn, self.params, self.data, batch_size)
                    shapes = jax.eval_shape(
                        lambda p, a=args: linearized_gradient(a[0], p, *a[2:]), args[1]
                    )
                    size = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(shapes))
                    if size <= LINEARIZE_MAX_BYTES:
                        self._lin = linearized_gradient(*args)
                        break
        return self._lin

    def __call__(self, xs: jax.Array) -> jax.Array:
        """``H x`` for each row of ``xs`` ``(m, dim)``."""
        self.calls += xs.shape[0]
        lin = self._linearized()
        if lin is not False:
            out = apply_linearized(lin, self.params, xs)
        else:
            out = flat_hvps(self.loss_fn, self.params, self.data, xs, self.batch_size, self.mesh)
        if not bool(jnp.isfinite(out).all()):
            if not bool(jnp.isfinite(xs).all()):
                raise ValueError("the vector of a Hessian-vector product is not finite")
            row = int(np.argmin(np.isfinite(np.asarray(out)).all(axis=1)))
            _, unravel = ravel_pytree(self.params)
            where = _locate(self.loss_fn, self.params, self.data, self.batch_size, unravel(xs[row]))
            raise ValueError(
                f"the Hessian-vector product of `loss_fn` is not finite at `params`{where}"
            )
        if self.bar is not None:
            self.bar.update(xs.shape[0])
        return out


class LanczosResult(NamedTuple):
    """``alpha (m,)``, ``beta (m-1,)`` of the tridiagonal ``T``, and the basis ``Q (m, dim)``."""

    alpha: np.ndarray
    beta: np.ndarray
    basis: jax.Array


@jax.jit
def _reorthogonalize(basis: jax.Array, w: jax.Array) -> jax.Array:
    # Rows of `basis` not yet filled are zero and drop out; twice is enough (Parlett).
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


@functools.partial(jax.jit, donate_argnums=0)
def _set_row(basis: jax.Array, j: jax.Array, q: jax.Array) -> jax.Array:
    return basis.at[j].set(q)


STOP_RULES = ("residual", "relative_change")
LANCZOS_FIRST_ROWS = 8  # rows of the Lanczos basis allocated first (it doubles when full)


def check_tol(tol: Any) -> float:
    """``tol`` as a float; ``ValueError`` naming it unless a finite real number ``>= 0``."""
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.integer | np.floating):
        raise ValueError(f"`tol` must be a finite number >= 0, got {tol!r}")
    check_non_negative(tol, "tol")
    return float(tol)


def check_stop(stop: str) -> str:
    """``stop`` if it names a stopping rule, else ``ValueError`` naming it and the rules."""
    if not isinstance(stop, str) or stop not in STOP_RULES:
        raise ValueError(f"`stop` must be one of {STOP_RULES}, got {stop!r}")
    return stop


def lanczos(
    matvec: Callable[[jax.Array], jax.Array],
    v0: jax.Array,
    n_iter: int,
    *,
    tol: float = 0.0,
    k: int = 0,
    stop: Literal["residual", "relative_change"] = "residual",
    progress: bool | str = "auto",
) -> LanczosResult:
    """Lanczos with full reorthogonalisation from ``v0``, at most ``n_iter`` steps.

    Stops early on an invariant subspace (``beta`` ~ 0), or, when ``tol > 0``, once each of the
    top ``k`` Ritz values has converged to ``tol`` (relative) by the rule ``stop``:

    - ``"residual"`` (default): the error bound of the Ritz value is below ``tol``. For a Ritz
      pair ``(θ, s)`` of ``T_m`` the residual is ``r = β_m |s_m|`` (no extra product needed) and
      the nearest eigenvalue lies within ``min(r, r² / gap)`` of ``θ``, ``gap`` the distance to
      the other Ritz values (Parlett, "The Symmetric Eigenvalue Problem", ch. 11; the gap is
      estimated from the Ritz values, as ARPACK-style codes do).
    - ``"relative_change"`` (PyHessian's rule): the value moved by at most ``tol`` (relative)
      in the last step. No bound, and it needs one step more to see the change: Lanczos' values
      converge superlinearly, so by then the error is far below ``tol`` (README).

    The basis is a preallocated ``(n_iter, dim)`` array, so every step runs the same compiled
    programs.

    Args:
      matvec: the symmetric operator on a batch of flat vectors: ``(m, dim) -> (m, dim)``.
      v0: the start vector ``(dim,)`` (normalised here).
      n_iter: most steps (one product each).
      tol: relative tolerance of the top ``k`` Ritz values (0: run all ``n_iter`` steps).
      k: how many top Ritz values must converge.
      stop: the stopping rule (above).
      progress: a bar over the steps: ``"auto"`` (default) when standard error is a terminal,
        ``True``/``False`` force it.

    Returns:
      A :class:`LanczosResult`.
    """
    check_stop(stop)
    n_iter = check_positive_int(n_iter, "n_iter")
    k = check_positive_int(k, "k", 0)
    tol = check_tol(tol)
    check_finite(v0, "v0")
    if is_concrete(v0) and not np.any(np.asarray(v0)):
        raise ValueError("`v0` must be a non-zero vector")
    with progress_bar(
        n_iter, desc="lanczos", unit="step", enabled=resolve_progress(progress)
    ) as bar:
        return _lanczos(matvec, v0, n_iter, tol, k, stop, bar)


def _lanczos(matvec, v0, n_iter, tol, k, stop, bar=None):
    q = v0 / jnp.linalg.norm(v0)
    # The basis grows by doubling (8, 16, ... rows, at most n_iter): each step reorthogonalises
    # against every stored row, zero rows included, so a 100-row basis made a 6-step top-1 run
    # of the digits CNN about 1.3x slower than its products (a few shapes compile, once each).
    basis = _set_row(jnp.zeros((min(n_iter, LANCZOS_FIRST_ROWS), q.size), q.dtype), 0, q)
    alpha, beta = [], []
    q_prev, previous = None, None
    for j in range(n_iter):
        w = matvec(q[None])[0]
        if bar is not None:
            bar.update(1)
        a = float(jnp.vdot(q, w))
        alpha.append(a)
        w = w - a * q - (beta[-1] * q_prev if j > 0 else 0.0)
        w = _reorthogonalize(basis, w)
        b = float(jnp.linalg.norm(w))
        if tol > 0 and j + 1 >= k:
            if stop == "residual":
                if j + 1 > k and _converged(alpha, beta, b, k, tol):
                    break
            else:
                top = np.sort(tridiagonal_eigh(np.array(alpha), np.array(beta))[0])[::-1][:k]
                if previous is not None and np.all(
                    np.abs(top - previous) <= tol * np.maximum(np.abs(top), 1e-12)
                ):
                    break
                previous = top
        if j == n_iter - 1 or b <= 1e-10 * max(abs(a), 1.0):
            break
        beta.append(b)
        q_prev, q = q, w / b
        if j + 1 == basis.shape[0]:
            grow = min(n_iter, 2 * basis.shape[0]) - basis.shape[0]
            basis = jnp.concatenate([basis, jnp.zeros((grow, q.size), q.dtype)])
        basis = _set_row(basis, j + 1, q)
    m = len(alpha)
    return LanczosResult(np.array(alpha), np.array(beta[: m - 1]), basis[:m])


def _converged(alpha: list, beta: list, b: float, k: int, tol: float) -> bool:
    """Whether the error bounds of the top ``k`` Ritz values are all below ``tol`` (relative)."""
    theta, s = tridiagonal_eigh(np.array(alpha), np.array(beta))
    order = np.argsort(-theta)
    for i in order[:k]:
        r = b * abs(s[-1, i])
        gap = np.min(np.abs(np.delete(theta, i) - theta[i]))
        if min(r, r * r / max(gap, 1e-300)) > tol * max(abs(theta[i]), 1e-12):
            return False
    return True


def tridiagonal_eigh(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of the symmetric tridiagonal matrix (float64)."""
    t = np.diag(alpha.astype(np.float64))
    if beta.size:
        t += np.diag(beta.astype(np.float64), 1) + np.diag(beta.astype(np.float64), -1)
    return np.linalg.eigh(t)


class Eigen(NamedTuple):
    """Top eigenvalues ``(k,)``, eigenvectors (a pytree with leading axis ``k``), HVPs used."""

    eigenvalues: np.ndarray
    eigenvectors: Any
    n_hvp: int
    converged: bool


def top_eigenvalues(
    loss_fn: LossFn,
    params: Any,
    *,
    data: Any,
    k: int = 1,
    algorithm: Literal["lanczos", "power"] = "lanczos",
    which: Literal["largest", "magnitude"] = "largest",
    n_iter: int = 100,
    tol: float = 1e-6,
    stop: Literal["residual", "relative_change"] = "residual",
    key: jax.Array,
    batch_size: int | str | None = "auto",
    devices: Any = None,
    progress: bool | str = "auto",
) -> Eigen:
    """The ``k`` largest eigenvalues of the dataset-mean loss's Hessian and their eigenvectors.

    ``"lanczos"``: Lanczos with full reorthogonalisation from a random start, stopped when the
    top ``k`` Ritz values have converged to ``tol`` by the rule ``stop`` (see :func:`lanczos`)
    or after ``n_iter`` steps.
    ``"power"``: power iteration with deflation, PyHessian's method (each eigenvector in turn,
    orthogonalised against the ones found, at most ``n_iter`` HVPs each, stopped by ``stop``:
    ``"relative_change"`` of the Rayleigh quotient ``λ`` at most ``tol`` (PyHessian's rule), or
    ``"residual"`` ``‖Hv − λv‖ ≤ tol·|λ|``). ``which="largest"`` is algebraic order;
    ``"magnitude"`` orders by ``|λ|`` (power iteration always finds the largest magnitude).

    Args:
      loss_fn: ``(params, batch) -> scalar`` (batch mean).
      params: the parameters.
      data: one batch, summed in chunks of ``batch_size``.
      k: number of eigenpairs.
      algorithm: ``"lanczos"`` or ``"power"``.
      which: ``"largest"`` or ``"magnitude"``.
      n_iter: Lanczos steps (at least ``k``), or power iterations per eigenvalue.
      tol: relative convergence tolerance.
      stop: ``"residual"`` (default: Lanczos' error bound, or for power iteration the
        eigen-residual, below ``tol``) or ``"relative_change"`` (the value moved by at most
        ``tol`` in the last step, PyHessian's rule). Top-1 Lanczos at ``tol=1e-3`` reached a
        relative error below 1e-3 against the exact ``λ₁`` by both rules on the digits CNN and
        ResNet, the default in one HVP fewer (README); for power iteration the relative change
        stops sooner.
      key: PRNG key for the start vectors.
      batch_size: examples per data chunk; ``"auto"`` (default) picks it from the
        per-example cost, ``None``: all at once (as :func:`visjax.curvature.hvp`).
      devices: the data axis is sharded over these (as :func:`visjax.curvature.hvp`).
      progress: a bar over the Hessian-vector products (at most ``n_iter``, ``k * n_iter`` for
        power iteration; it stops short when converged): ``"auto"`` (default) when standard
        error is a terminal, ``True``/``False`` force it.

    Returns:
      An :class:`Eigen`: ``eigenvalues`` in decreasing order, ``eigenvectors`` with unit norm.

    References:
      Lanczos 1950; Ghorbani, Krishnan, Xiao, "An Investigation into Neural Net Optimization via
      Hessian Eigenvalue Density", ICML 2019; Yao, Gholami, Keutzer, Mahoney, "PyHessian: Neural
      Networks Through the Lens of the Hessian", 2020 (power iteration).
    """
    if algorithm not in ("lanczos", "power"):
        raise ValueError(f"`algorithm` must be 'lanczos' or 'power', got {algorithm!r}")
    if which not in ("largest", "magnitude"):
        raise ValueError(f"`which` must be 'largest' or 'magnitude', got {which!r}")
    check_stop(stop)
    tol = check_tol(tol)
    check_key(key)
    dim = check_inputs(params, data, batch_size, devices)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= dim:
        raise ValueError(f"`k` must be an int in [1, {dim}] (the number of parameters), got {k!r}")
    k = int(k)
    n_iter = check_positive_int(n_iter, "n_iter", k)
    check_loss_finite(loss_fn, params, data, batch_size)
    show = resolve_progress(progress)
    flat, unravel = ravel_pytree(params)
    total = k * n_iter if algorithm == "power" else min(n_iter, dim)
    with progress_bar(
        total, desc=f"top eigenvalues ({algorithm})", unit="HVP", enabled=show
    ) as bar:
        mv = Matvec(loss_fn, params, data, batch_size, devices, bar=bar)
        if algorithm == "power":
            values, vectors, converged = _power(mv, flat, k, n_iter, tol, key, stop)
        else:
            v0 = jax.random.normal(key, flat.shape, flat.dtype)
            res = _lanczos(mv, v0, min(n_iter, dim), tol, k, stop)
    if algorithm == "lanczos":
        theta, s = tridiagonal_eigh(res.alpha, res.beta)
        order = np.argsort(-np.abs(theta) if which == "magnitude" else -theta)[:k]
        values = theta[order]
        vectors = jnp.asarray(s[:, order].T, res.basis.dtype) @ res.basis
        converged = len(res.alpha) < min(n_iter, dim) or len(res.alpha) == dim
    eigvecs = jax.vmap(unravel)(vectors)
    return Eigen(np.asarray(values), eigvecs, mv.calls, bool(converged))


def _power(mv, flat, k, n_iter, tol, key, stop):
    values, vectors, converged = [], [], True
    for i in range(k):
        v = jax.random.normal(jax.random.fold_in(key, i), flat.shape, flat.dtype)
        lam, ok = None, False
        for _ in range(n_iter):
            for u in vectors:  # deflation by orthogonalisation, as PyHessian
                v = v - jnp.vdot(u, v) * u
            v = v / jnp.linalg.norm(v)
            hv = mv(v[None])[0]
            new = float(jnp.vdot(v, hv))
            if stop == "residual":
                done = float(jnp.linalg.norm(hv - new * v)) <= tol * abs(new)
            else:
                done = lam is not None and abs(new - lam) <= tol * (abs(lam) + 1e-6)
            v = hv
            if done:
                lam, ok = new, True
                break
            lam = new
        converged &= ok
        for u in vectors:
            v = v - jnp.vdot(u, v) * u
        vectors.append(v / jnp.linalg.norm(v))
        values.append(lam)
    return np.array(values), jnp.stack(vectors), converged


class SpectralDensity(NamedTuple):
    """The smoothed eigenvalue density on ``grid``, and the raw quadrature per probe."""

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray


def spectral_density(
    loss_fn: LossFn,
    params: Any,
    *,
    data: Any,
    n_probes: int = 1,
    n_iter: int = 100,
    key: jax.Array,
    grid: Any = None,
    sigma: float = 1e-5,
    batch_size: int | str | None = "auto",
    devices: Any = None,
    progress: bool | str = "auto",
) -> SpectralDensity:
    """Stochastic Lanczos quadrature of the Hessian's eigenvalue density (Ghorbani et al. 2019).

    For each Rademacher probe ``v`` (normalised), ``n_iter`` Lanczos steps give nodes ``θ_i``
    (the eigenvalues of ``T``) and weights ``τ_i²`` (squared first components of its
    eigenvectors); the density is ``(1/P) Σ_p Σ_i τ_{p,i}² N(t; θ_{p,i}, s²)`` with PyHessian's
    convention ``s² = sigma · max(1, λ_max − λ_min)``, on ``grid`` (default: 10,000 points from
    ``λ_min − 0.01`` to ``λ_max + 0.01``, as PyHessian), normalised to integrate to 1 on the grid.

    Args:
      loss_fn: ``(params, batch) -> scalar`` (batch mean).
      params: the parameters.
      data: one batch, summed in chunks of ``batch_size``.
      n_probes: random probes (PyHessian's default: 1).
      n_iter: Lanczos steps per probe (PyHessian's default: 100).
      key: PRNG key for the probes.
      grid: points to evaluate the density at.
      sigma: PyHessian's ``sigma_squared`` (> 0).
      batch_size: examples per data chunk; ``"auto"`` (default) picks it from the
        per-example cost, ``None``: all at once (as :func:`visjax.curvature.hvp`).
      devices: the data axis is sharded over these (as :func:`visjax.curvature.hvp`).
      progress: a bar over the Hessian-vector products (``n_probes * n_iter``): ``"auto"``
        (default) when standard error is a terminal, ``True``/``False`` force it.

    Returns:
      A :class:`SpectralDensity`; ``nodes``/``weights`` have shape ``(n_probes, m)``.
    """
    check_key(key)
    if grid is not None:
        check_finite(np.asarray(grid, float), "grid")
    n_probes = check_positive_int(n_probes, "n_probes")
    n_iter = check_positive_int(n_iter, "n_iter")
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, int | float | np.integer | np.floating)
        or not np.isfinite(sigma)
        or sigma <= 0
    ):
        raise ValueError(f"`sigma` must be a finite number > 0, got {sigma!r}")
    dim = check_problem(loss_fn, params, data, batch_size, devices)
    show = resolve_progress(progress)
    flat, _ = ravel_pytree(params)
    m = min(n_iter, dim)
    nodes = np.full((n_probes, m), np.nan)
    weights = np.zeros((n_probes, m))
    with progress_bar(n_probes * m, desc="spectral density", unit="HVP", enabled=show) as bar:
        mv = Matvec(loss_fn, params, data, batch_size, devices, bar=bar)
        for p in range(n_probes):
            z = jax.random.rademacher(jax.random.fold_in(key, p), flat.shape, flat.dtype)
            res = _lanczos(mv, z, m, 0.0, 0, "residual")
            theta, s = tridiagonal_eigh(res.alpha, res.beta)
            nodes[p, : theta.size] = theta
            weights[p, : theta.size] = s[0] ** 2
    lo, hi = np.nanmin(nodes), np.nanmax(nodes)
    g = np.linspace(lo - 0.01, hi + 0.01, 10_000) if grid is None else np.asarray(grid, float)
    var = sigma * max(1.0, hi - lo)
    ok = np.isfinite(nodes)
    diffs = g[None, :] - np.where(ok, nodes, 0.0).reshape(-1, 1)
    kernel = np.exp(-(diffs**2) / (2 * var)) / np.sqrt(2 * np.pi * var)
    density = (np.where(ok, weights, 0.0).reshape(-1, 1) * kernel).sum(0) / n_probes
    step = np.diff(g).mean() if g.size > 1 else 1.0
    density = density / (density.sum() * step)
    return SpectralDensity(g, density, nodes, weights)
