r"""t-SNE in JAX: perplexity-calibrated sparse affinities, exact or FFT-interpolated gradients.

**Affinities.** Each point's ``k = min(N - 1, 3 perplexity)`` nearest neighbours get
``p_{j|i} = exp(-beta_i ||x_i - x_j||^2) / sum_l exp(-beta_i ||x_i - x_l||^2)``, ``beta_i``
bisected so that the entropy of row ``i`` is ``log(perplexity)`` nats;
``P = (P_cond + P_cond^T) / (2 N)`` is kept sparse (``rows, cols, vals``; van der Maaten 2014).

**Kernel.** The embedding ``y`` has similarities ``w_ij = (1 + ||y_i - y_j||^2 / a)^{-a}`` with
``a = dof`` (``a = 1``: the Cauchy kernel of standard t-SNE; smaller ``a``: heavier tails, finer
clusters; Kobak et al. 2019, openTSNE's convention), ``q_ij = w_ij / Z`` with
``Z = sum_{i != j} w_ij``. The loss is ``KL(P || Q) = sum p_ij log(p_ij / q_ij)``.

**Gradient** (openTSNE's scaling, without the factor 4 of the textbook form, which the learning rate
absorbs)::

    g_i = E sum_j p_ij w_ij^{1/a} (y_i - y_j)  -  (1 / Z) sum_j w_ij^{(a+1)/a} (y_i - y_j)

with ``E`` the exaggeration. The attractive term is a row sum over ``P`` laid out ``N x kmax``
(zero-padded; when padding to the longest row would triple it, rows are cut at the 75th
percentile of their lengths and the hubs' remaining entries summed by a ``segment_sum``); the
repulsive term (:func:`repulsion_exact`) is exact, computed in chunks of rows (``O(N^2)`` work, no
``N x N`` matrix held), or approximated by interpolation on a grid and FFT convolution
(``visjax.embed.fft.repulsion_fft``; Linderman et al. 2019), ``O(N)`` per iteration.

**Optimisation** (openTSNE 1.0.4's ``TSNE.fit``): PCA initialisation rescaled so the first
component has standard deviation ``1e-4``, plus jitter of ``1e-6`` from ``key``; gradient descent
with momentum 0.8 and per-coordinate gains (``+0.2`` where the step's sign flips, else
``x 0.8 + 0.01``), steps clipped to norm 5 per point, the embedding recentred after each step;
``early_exaggeration_iter`` steps with ``P`` multiplied by ``early_exaggeration`` (12), then
``n_iter`` steps at 1; learning rate ``"auto"`` is ``N / E`` in each phase (Belkina et al. 2019).
Each phase runs in blocks of 50 iterations, one compiled ``fori_loop`` shared by both phases (for
the FFT, one per grid size: the next compiled in a background thread while a block runs, the
kernel's spectrum computed once per block; see ``_block_repulsion`` and ``_FftPrograms``).

References: van der Maaten & Hinton (2008), "Visualizing data using t-SNE", JMLR; van der Maaten
(2014), "Accelerating t-SNE using tree-based algorithms", JMLR; Linderman et al. (2019), "Fast
interpolation-based t-SNE for improved visualization of single-cell RNA-seq data", Nature Methods;
Poličar, Stražar & Zupan (2024), "openTSNE: a modular Python library for t-SNE dimensionality
reduction and embedding", JSS; Kobak et al. (2019), "Heavy-tailed kernels reveal a finer cluster
structure in t-SNE visualisations", ECML PKDD; Belkina et al. (2019), "Automated optimized
parameters for t-distributed stochastic neighbor embedding", Nature Communications.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.batching import resolve_batch_size
from visjax.base.checks import check_batch_size, check_finite, check_key, check_positive_int
from visjax.base.progress import progress_bar, resolve_progress
from visjax.embed._affinity import Affinities, affinities
from visjax.embed.fft import (
    INTS_IN_INTERVAL,
    N_INTERPOLATION_POINTS,
    fft_n_boxes,
    grid_spectrum,
    repulsion_fft,
    repulsion_on_grid,
)

__all__ = ["TSNE", "Affinities", "repulsion_exact", "tsne"]

# method="auto" uses the exact gradient up to this many points and the FFT approximation above.
# One repulsion on 2 (busy) CPU cores, exact vs FFT: before 2026-12-05 (vmapped exact rows,
# openTSNE's FFT grid, points over +-40) 2,000 points 30 vs 82 ms, 5,000 173 vs 61 ms; since
# (exact one coordinate at a time, FFT grid 2.2x finer), load ~8: 1,797 points 6 vs 14 ms and
# 3,000 12 vs 15 ms with 64 boxes, but on a converged embedding (spread ~140, 160 boxes) the FFT
# took 300-480 ms against 80-100 ms exact at 3,000-8,000 points (load ~10): the crossover moved
# up; kept at 3,000 until timed on a quiet machine.
AUTO_EXACT_MAX = 3_000
# The hub rows' entries past the padded width are summed in rows of this many (zero-padded), so
# the scatter adds one value per chunk: on the 10k benchmark 206k entries in ~8k chunks.
TAIL_CHUNK = 32
BLOCK = 50  # iterations per compiled call (the progress bar advances per block)
# FFT: a block's box width leaves room for its spread to grow by this factor before the kernel's
# spectrum is recomputed (below ``INTS_IN_INTERVAL``; see ``_block_repulsion``).
BLOCK_GROWTH = 1.5
MIN_GAIN = 0.01
MAX_STEP_NORM = 5.0  # openTSNE's TSNE default (max_grad_norm=None)
INIT_STD = 1e-4  # openTSNE's initialization.rescale
JITTER = 0.01  # openTSNE's initialization.jitter: noise of 1% of the first component's std


class TSNE(NamedTuple):
    """The result of :func:`tsne`.

    Attributes:
      embedding: ``(N, n_components)`` the optimised embedding (centred).
      kl_divergence: ``KL(P || Q)`` at the last iteration, as openTSNE reports it: of the
        embedding the last step started from, with that step's ``Z`` (exact for
        ``method="exact"``, from the FFT interpolation for ``"fft"``; the sum over ``P`` is exact
        as ``P`` is sparse). With no iterations, of the initial embedding.
      affinities: the symmetrised sparse ``P`` (:class:`Affinities`: rows, cols, vals).
      method: the repulsion method used, ``"exact"`` or ``"fft"``.
    """

    embedding: jax.Array
    kl_divergence: float
    affinities: Affinities
    method: str


def _kernel(d2: jax.Array, dof: float) -> tuple[jax.Array, jax.Array]:
    """``(w, w^{1/dof})`` for squared distances ``d2``."""
    base = 1.0 / (1.0 + d2 / dof)
    return (base if dof == 1.0 else base**dof), base


def _repulsion_chunk(yc: jax.Array, y: jax.Array, dof: float) -> tuple[jax.Array, jax.Array]:
    """Rows ``yc`` (``c x d``) against all of ``y``: ``(sum_j w_ij^{(a+1)/a} (y_i - y_j)`` (``c x
    d``), ``sum_j w_ij`` (``c``)), ``j = i`` included (it adds 0 and 1)."""
    # One coordinate at a time: ``c x N`` arrays only. A ``c x N x d`` difference tensor (the
    # former vmap over rows) measured 47 ms per digits iteration on 2 CPU cores against 4 ms.
    diffs = [yc[:, k, None] - y[None, :, k] for k in range(y.shape[1])]
    w, base = _kernel(sum(diff * diff for diff in diffs), dof)
    wb = w * base
    forces = jnp.stack([jnp.sum(wb * diff, axis=1) for diff in diffs], axis=1)
    return forces, jnp.sum(w, axis=1)


def _repulsion_rows(y: jax.Array, dof: float):
    return lambda yc: _repulsion_chunk(yc, y, dof)


def _exact_batch_size(y: jax.Array, dof: float, batch_size: int | str | None) -> int | None:
    # Forward-only work: the forward chunk budget (32 MiB on CPU).
    return resolve_batch_size(batch_size, _repulsion_rows(y, dof), y, forward=True)


def repulsion_exact(
    y: jax.Array, *, dof: float = 1.0, batch_size: int | str | None = "auto"
) -> tuple[jax.Array, jax.Array]:
    r"""The exact repulsive term of the t-SNE gradient, in chunks of rows.

    Returns ``(forces, z)``: ``forces_i = sum_{j != i} w_ij^{(a+1)/a} (y_i - y_j)`` (``N x d``)
    and ``z = sum_{i != j} w_ij``, with ``w_ij = (1 + ||y_i - y_j||^2 / a)^{-a}``, ``a = dof``.
    The gradient's repulsive part is ``-forces / z``; ``visjax.embed.fft.repulsion_fft``
    approximates the same two quantities. ``batch_size`` rows at a time (``"auto"``: from the
    backend's chunk budget; ``None``: all rows at once, an ``N x N`` intermediate).
    """
    n = y.shape[0]
    batch_size = _exact_batch_size(y, dof, batch_size)
    if batch_size is None or batch_size >= n:
        forces, z_rows = _repulsion_chunk(y, y, dof)
    else:
        pad = -n % batch_size
        chunks = jnp.pad(y, ((0, pad), (0, 0))).reshape(-1, batch_size, y.shape[1])
        forces, z_rows = jax.lax.map(lambda yc: _repulsion_chunk(yc, y, dof), chunks)
        forces = forces.reshape(-1, y.shape[1])[:n]
        z_rows = z_rows.reshape(-1)[:n]
    return forces, jnp.sum(z_rows) - n  # w_ii = 1 is not a pair


def _attraction(y: jax.Array, p: Affinities, dof: float) -> jax.Array:
    diff = y[p.rows] - y[p.cols]
    _, base = _kernel(jnp.sum(diff * diff, axis=1), dof)
    return jax.ops.segment_sum(
        (p.vals * base)[:, None] * diff, p.rows, y.shape[0], indices_are_sorted=True
    )


def _padded(p: Affinities, n: int) -> tuple[jax.Array, jax.Array, Affinities | None] | None:
    """``P`` as ``N x width`` neighbour columns and values (zero-padded) plus the entries past
    ``width`` as a remainder (``None`` when there are none: else an :class:`Affinities` of
    ``(C,)`` row ids and ``C x TAIL_CHUNK`` columns and values), or ``None`` for no padded
    layout (no entries). ``width`` is the longest row when padding to it at most triples the
    entries; otherwise (hub points with very long rows, e.g. 853 entries against a mean of 137 on
    the benchmark's 10,000-point mixture in 50-D) the 75th percentile of the row lengths, the
    longer rows' tails going to a ``segment_sum`` (there 15 % of the entries: 30-40 ms per
    iteration on 2 busy CPU cores against 76-87 ms for ``segment_sum`` over all of ``P``)."""
    rows = np.asarray(p.rows)
    counts = np.bincount(rows, minlength=n)
    if rows.size == 0:
        return None
    width = int(counts.max())
    if n * width > 3 * rows.size:
        width = max(1, int(np.ceil(np.percentile(counts, 75))))
    pos = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]
    keep = pos < width
    p_cols, p_vals = np.asarray(p.cols), np.asarray(p.vals)
    cols = np.zeros((n, width), np.int32)
    vals = np.zeros((n, width), np.float32)
    cols[rows[keep], pos[keep]] = p_cols[keep]
    vals[rows[keep], pos[keep]] = p_vals[keep]
    rest = None
    if not keep.all():  # the hubs' tails: rows of TAIL_CHUNK entries, one hub row each
        tail = pos[~keep] - width
        key = rows[~keep].astype(np.int64) * n + tail // TAIL_CHUNK
        chunks, inverse = np.unique(key, return_inverse=True)
        rest_cols = np.zeros((chunks.size, TAIL_CHUNK), np.int32)
        rest_vals = np.zeros((chunks.size, TAIL_CHUNK), np.float32)
        rest_cols[inverse, tail % TAIL_CHUNK] = p_cols[~keep]
        rest_vals[inverse, tail % TAIL_CHUNK] = p_vals[~keep]
        rest = Affinities(
            jnp.asarray((chunks // n).astype(np.int32)),
            jnp.asarray(rest_cols),
            jnp.asarray(rest_vals),
        )
    return jnp.asarray(cols), jnp.asarray(vals), rest


def _row_sums(y: jax.Array, yr: jax.Array, cols: jax.Array, vals: jax.Array, dof: float):
    diffs = [yr[:, k, None] - y[cols, k] for k in range(y.shape[1])]
    _, base = _kernel(sum(diff * diff for diff in diffs), dof)
    pw = vals * base
    return jnp.stack([jnp.sum(pw * diff, axis=1) for diff in diffs], axis=1)


def _attraction_padded(
    y: jax.Array, cols: jax.Array, vals: jax.Array, rest: Affinities | None, dof: float
) -> jax.Array:
    # Row sums of an N x kmax layout: no scatter (segment_sum's scatter measured 3.2 ms per digits
    # iteration on 2 CPU cores, this 0.9 ms). The hubs' tails (``rest``: rows of TAIL_CHUNK
    # entries of one hub each) are summed the same way, then scattered one value per chunk.
    out = _row_sums(y, y, cols, vals, dof)
    if rest is None:
        return out
    part = _row_sums(y, y[rest.rows], rest.cols, rest.vals, dof)
    return out + jax.ops.segment_sum(part, rest.rows, y.shape[0], indices_are_sorted=True)


def _repulsion(y: jax.Array, dof: float, method: str, batch_size: int | None, n_boxes: int):
    if method == "fft":
        return repulsion_fft(y, dof=dof, n_boxes=n_boxes)
    return repulsion_exact(y, dof=dof, batch_size=batch_size)


def _block_repulsion(y0: jax.Array, dof: float, method: str, batch_size: int | None, n_boxes: int):
    """The repulsion of a block's iterations. FFT: the box width is fixed for the block at
    ``min(INTS_IN_INTERVAL, BLOCK_GROWTH * spread(y0) / n_boxes)``, so the kernel's spectrum (a
    transform as large as the grid's, ~20 % of an iteration on the grown embedding) is computed
    once per block; an iteration whose spread has outgrown ``n_boxes`` boxes of that width
    recomputes it for its own width (``spread / n_boxes``, as without the cache)."""
    if method != "fft":
        return lambda y: repulsion_exact(y, dof=dof, batch_size=batch_size)
    p, dim = N_INTERPOLATION_POINTS, y0.shape[1]
    spread0 = jnp.maximum(jnp.max(y0) - jnp.min(y0), 1e-6)
    width0 = jnp.minimum(INTS_IN_INTERVAL, BLOCK_GROWTH * spread0 / n_boxes)
    spectrum0 = grid_spectrum(width0, dof, p, n_boxes, dim)

    def repulsion(y):
        y = y - jnp.mean(y, axis=0)
        spread = jnp.maximum(jnp.max(y) - jnp.min(y), 1e-6)
        width, spectrum = jax.lax.cond(
            spread <= width0 * n_boxes,
            lambda: (width0, spectrum0),
            lambda: (spread / n_boxes, grid_spectrum(spread / n_boxes, dof, p, n_boxes, dim)),
        )
        return repulsion_on_grid(y, width, spectrum, dof, p, n_boxes)

    return repulsion


@partial(jax.jit, static_argnames=("dof", "method", "batch_size", "n_boxes"))
def _block(
    state,
    p,
    padded,
    steps,
    exaggeration,
    learning_rate,
    momentum,
    *,
    dof,
    method,
    batch_size,
    n_boxes=0,
):
    """``steps`` iterations of openTSNE's ``gradient_descent`` (momentum, gains, step clipping).

    Returns the new state and the KL divergence of the embedding the last step started from
    (openTSNE's convention: its ``Z`` comes with that step's repulsion, so no extra pass; that
    embedding is ``y - update`` up to the recentring shift, which distances ignore)."""

    repulsion = _block_repulsion(state[0], dof, method, batch_size, n_boxes)

    def step(_, s):
        y, update, gains, _ = s
        forces, z = repulsion(y)
        if padded is None:
            attraction = _attraction(y, p, dof)
        else:
            attraction = _attraction_padded(y, *padded, dof)
        grad = exaggeration * attraction - forces / z
        flipped = jnp.sign(update) != jnp.sign(grad)
        gains = jnp.where(flipped, gains + 0.2, gains * 0.8 + MIN_GAIN)
        update = momentum * update - learning_rate * gains * grad
        norm = jnp.linalg.norm(update, axis=1, keepdims=True)
        update = jnp.where(norm > MAX_STEP_NORM, update / norm * MAX_STEP_NORM, update)
        y = y + update
        return y - jnp.mean(y, axis=0), update, gains, z

    y, update, gains, z = jax.lax.fori_loop(0, steps, step, (*state, jnp.float32(jnp.nan)))
    return (y, update, gains), _kl_given_z(y - update, p, z, dof)


# The compiled FFT blocks of this process, by box count, options and argument shapes (futures).
_COMPILED: dict[tuple, concurrent.futures.Future] = {}


def _n_boxes(spread: float) -> int:
    return fft_n_boxes(np.array([0.0, spread], np.float32))


class _FftPrograms:
    """The FFT iteration block compiled once per box count, the next count compiled ahead.

    The embedding grows through the normal phase and its grid with it (50 to 112 boxes per axis
    at 10,000 points: 5 programs, ~0.5-1 s of XLA compilation each on 2 CPU cores). The count
    the spread's recent growth predicts for the block after next is compiled in a background
    thread while the current block runs, so the main thread rarely waits for a compilation."""

    def __init__(self, options: dict):
        self.options = options
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="visjax-tsne")

    def _key(self, n_boxes: int, args: tuple) -> tuple:
        leaves, tree = jax.tree.flatten(args)
        shapes = tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves)
        return (n_boxes, tuple(sorted(self.options.items())), tree, shapes)

    def _compile(self, n_boxes: int, args: tuple):
        return _block.lower(*args, **self.options, n_boxes=n_boxes).compile()

    def prefetch(self, n_boxes: int, args: tuple) -> None:
        key = self._key(n_boxes, args)
        if key not in _COMPILED:
            _COMPILED[key] = self.pool.submit(self._compile, n_boxes, args)

    def get(self, n_boxes: int, args: tuple):
        key = self._key(n_boxes, args)
        if key not in _COMPILED:
            _COMPILED[key] = _done(self._compile(n_boxes, args))
        return _COMPILED[key].result()

    def close(self) -> None:
        """Drop the compilations not started (a running one finishes and stays cached)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for key in [key for key, future in _COMPILED.items() if future.cancelled()]:
            del _COMPILED[key]


def _done(value: Any) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_result(value)
    return future


def _kl_given_z(y, p, z, dof):
    diff = y[p.rows] - y[p.cols]
    log_w = -dof * jnp.log1p(jnp.sum(diff * diff, axis=1) / dof)
    vals = jnp.maximum(p.vals, jnp.finfo(p.vals.dtype).tiny)
    return jnp.sum(p.vals * (jnp.log(vals) - log_w)) + jnp.sum(p.vals) * jnp.log(z)


@partial(jax.jit, static_argnames=("dof", "method", "batch_size", "n_boxes"))
def _kl(y, p, *, dof, method, batch_size, n_boxes=0):
    _, z = _repulsion(y, dof, method, batch_size, n_boxes)
    return _kl_given_z(y, p, z, dof)


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"`{name}` must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number, got {value!r}")
    return float(value)


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")
    return value


def _initial(x, initialization, n_components, key):
    n = x.shape[0]
    if isinstance(initialization, str):
        init = _check_choice(initialization, "initialization", ("pca", "random"))
        if init == "pca" and n_components > min(x.shape):
            raise ValueError(
                f"`initialization` 'pca' needs n_components <= min(N, D) = {min(x.shape)}, got "
                f"{n_components}: use 'random'"
            )
        return _initial_jit(x, key, init, n_components)
    y = jnp.asarray(initialization, jnp.float32)
    if y.shape != (n, n_components):
        raise ValueError(
            f"`initialization` must be 'pca', 'random' or an array of shape "
            f"{(n, n_components)}, got shape {y.shape}"
        )
    check_finite(y, "initialization")
    return y


@partial(jax.jit, static_argnames=("init", "n_components"))
def _initial_jit(x, key, init, n_components):
    # One program (the eager PCA, std, scaling and jitter compiled ~10 small ones: ~2 s of a
    # first digits call on 2 busy cores).
    if init == "random":
        return INIT_STD * jax.random.normal(key, (x.shape[0], n_components), jnp.float32)
    from visjax.embed.pca import pca_body  # noqa: PLC0415 - sibling module

    y = pca_body(x, n_components, False, x.shape[0] >= 4 * x.shape[1]).embedding.astype(jnp.float32)
    y = y / jnp.maximum(jnp.std(y[:, 0]), jnp.finfo(jnp.float32).tiny) * INIT_STD
    return y + JITTER * INIT_STD * jax.random.normal(key, y.shape, jnp.float32)


def tsne(
    x: Any,
    *,
    key: jax.Array,
    n_components: int = 2,
    perplexity: float = 30.0,
    dof: float = 1.0,
    early_exaggeration: float = 12.0,
    early_exaggeration_iter: int = 250,
    n_iter: int = 500,
    learning_rate: float | str = "auto",
    momentum: float = 0.8,
    initialization: str | Any = "pca",
    method: str = "auto",
    neighbors: str = "auto",
    batch_size: int | str | None = "auto",
    progress: bool | str = "auto",
) -> TSNE:
    """t-SNE of the rows of ``x`` (openTSNE 1.0.4's defaults and schedule; see the module text).

    Args:
      x: ``(N, D)`` data, ``N >= 4``, finite.
      key: the PRNG key of the initial jitter (and of ``"random"`` initialisation or an
        approximate neighbour search): the same key gives the same embedding, bit for bit
        with ``"exact"``. With ``"fft"`` on XLA:CPU the multithreaded FFT's last bits vary
        from call to call (about 1e-6 relative on one transform), which t-SNE's dynamics grow to
        about 1e-3 of the embedding's spread over a full run; set
        ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` before JAX starts for bit-identical
        FFT runs (slower).
      n_components: the embedding's dimension (``"fft"`` needs 1 or 2).
      perplexity: the effective number of neighbours, ``0 < perplexity < N - 1``.
      dof: the kernel's degrees of freedom ``a`` in ``(1 + d^2 / a)^{-a}`` (1: standard t-SNE).
      early_exaggeration: ``P``'s multiplier in the first phase.
      early_exaggeration_iter: iterations of the first phase (``>= 0``).
      n_iter: iterations of the second phase (``>= 0``).
      learning_rate: ``"auto"`` (``N / exaggeration`` in each phase) or a positive number.
      momentum: the momentum of both phases, in ``[0, 1)``.
      initialization: ``"pca"``, ``"random"`` (both standard deviation ``1e-4``) or an
        ``(N, n_components)`` array used as given.
      method: ``"exact"`` (repulsion in chunks of rows, ``O(N^2)``), ``"fft"`` (interpolation,
        ``O(N)``) or ``"auto"``: exact up to ``AUTO_EXACT_MAX`` points, FFT above.
      neighbors: the neighbour search, ``"auto"``, ``"exact"`` or ``"approx"``.
      batch_size: rows per chunk of the exact repulsion and neighbour search (``"auto"``,
        an int, or ``None`` for one chunk).
      progress: show a progress bar (``"auto"``: when standard error is a terminal).

    Returns:
      A :class:`TSNE`: embedding, KL divergence, the sparse affinities and the method used.

    Raises:
      ValueError: naming the argument: ``x`` not 2-D, with fewer than 4 rows or NaN/Inf;
        ``perplexity`` not in ``(0, N - 1)``; any other argument out of its range.
      TypeError: ``key`` not one PRNG key.
    """
    check_key(key)
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"`x` must be a 2-D array (N, D), got shape {x.shape}")
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"`x` must have at least 4 rows, got {n}")
    check_finite(x, "x")
    x = x.astype(jnp.float32)
    n_components = check_positive_int(n_components, "n_components")
    perplexity = _positive_float(perplexity, "perplexity")
    if perplexity >= n - 1:
        raise ValueError(f"`perplexity` must be < N - 1 = {n - 1}, got {perplexity!r}")
    dof = _positive_float(dof, "dof")
    early_exaggeration = _positive_float(early_exaggeration, "early_exaggeration")
    early_exaggeration_iter = check_positive_int(
        early_exaggeration_iter, "early_exaggeration_iter", minimum=0
    )
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    if not (isinstance(learning_rate, str) and learning_rate == "auto"):
        learning_rate = _positive_float(learning_rate, "learning_rate")
    if isinstance(momentum, bool) or not isinstance(momentum, int | float | np.number):
        raise ValueError(f"`momentum` must be a number in [0, 1), got {momentum!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"`momentum` must be a number in [0, 1), got {momentum!r}")
    method = _check_choice(method, "method", ("auto", "exact", "fft"))
    neighbors = _check_choice(neighbors, "neighbors", ("auto", "exact", "approx"))
    batch_size = check_batch_size(batch_size)
    show = resolve_progress(progress)
    if method == "fft" and n_components > 2:
        raise ValueError(f"`method` 'fft' needs n_components 1 or 2, got {n_components}")
    if method == "auto":
        fft = n > AUTO_EXACT_MAX and n_components <= 2
        method = "fft" if fft else "exact"

    init_key, knn_key = jax.random.split(key)
    # The initialisation (PCA: mostly compilation) in a thread while the neighbours are searched.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="visjax-tsne") as pool:
        initial = pool.submit(_initial, x, initialization, n_components, init_key)
        p = affinities(x, perplexity, neighbors=neighbors, key=knn_key, batch_size=batch_size)
        y = initial.result()
    if method == "exact" and batch_size == "auto":
        batch_size = _exact_batch_size(y, dof, batch_size)
    options = {"dof": dof, "method": method, "batch_size": batch_size}
    state = (y, jnp.zeros_like(y), jnp.ones_like(y))
    padded = _padded(p, n)
    blocks = []  # (steps, scalars) of every block of both phases
    for exaggeration, iters in [(early_exaggeration, early_exaggeration_iter), (1.0, n_iter)]:
        lr = n / exaggeration if learning_rate == "auto" else learning_rate
        scalars = (jnp.float32(exaggeration), jnp.float32(lr), jnp.float32(momentum))
        blocks += [(min(BLOCK, iters - s), scalars) for s in range(0, iters, BLOCK)]
    n_early = -(-early_exaggeration_iter // BLOCK)
    spreads = []
    with (
        progress_bar(early_exaggeration_iter + n_iter, desc="t-SNE", enabled=show) as bar,
        contextlib.closing(_FftPrograms(options)) as programs,
    ):
        for b, (steps, scalars) in enumerate(blocks):
            # The step count is traced: blocks of any length share one compiled program.
            args = (state, p, padded, jnp.int32(steps), *scalars)
            if method != "fft":
                state, kl = _block(*args, **options)
            else:  # the grid's size is static: from the current spread
                spreads.append(float(jnp.max(state[0]) - jnp.min(state[0])))
                n_boxes = _n_boxes(spreads[-1])
                state, kl = programs.get(n_boxes, args)(*args)
                # Dispatched: compile meanwhile the grid the spread's growth predicts for the
                # block after next and, in the early phase, the next larger one (the embedding
                # expands once the exaggeration ends).
                if b + 1 < len(blocks):
                    growth = spreads[-1] - spreads[-2] if b else 0.0
                    programs.prefetch(_n_boxes(spreads[-1] + 2 * max(growth, 0.0)), args)
                if b < n_early and len(blocks) - n_early >= 2:
                    programs.prefetch(_n_boxes(n_boxes * INTS_IN_INTERVAL * 1.001), args)
            bar.update(steps)
    y = state[0]
    if early_exaggeration_iter + n_iter == 0:
        kl = _kl(y, p, **options, n_boxes=fft_n_boxes(y) if method == "fft" else 0)
    kl = float(kl)
    return TSNE(embedding=y, kl_divergence=kl, affinities=p, method=method)
