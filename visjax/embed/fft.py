r"""The t-SNE repulsion by FFT-accelerated interpolation (FIt-SNE, Linderman et al. 2019).

:func:`repulsion_fft` approximates the two quantities of ``visjax.embed.tsne.repulsion_exact``:

.. math::

    F_i = \sum_{j \ne i} w_{ij}^{(a+1)/a} (y_i - y_j), \qquad
    Z = \sum_{i \ne j} w_{ij}, \qquad w_{ij} = (1 + \|y_i - y_j\|^2 / a)^{-a},

``a = dof`` (openTSNE's convention; ``a = 1``: ``w = 1/(1 + d^2)``,
``F_i = sum_j w_ij^2 (y_i - y_j)``). The gradient's repulsive part is ``-F / Z``. With
``K = w^{(a+1)/a} = (1 + d^2/a)^{-(a+1)}`` both are sums of ``K`` against the charges
``q_j = (1, y_j)``:
``phi_i = sum_j K_ij q_j`` gives ``F_i = y_i phi_i^(1) - phi_i^(y)`` and, as ``w = K (1 + d^2/a)``
and ``sum_ij K_ij d_ij^2 = 2 sum_i y_i . F_i`` (``K`` is symmetric),
``Z = sum_i phi_i^(1) + (2 / a) sum_i y_i . F_i - N`` (the ``j = i`` terms contribute 1 each to
the sum and nothing to ``F``). openTSNE spreads a fourth charge, ``||y_j||^2``, for ``Z``: one
more transform each way, a quarter of the 2-D work.

The sums are evaluated as openTSNE's ``estimate_negative_gradient_fft_{1,2}d`` do: the bounding
square of ``y`` is cut into ``n_boxes`` boxes per axis, each with ``n_interpolation_points``
equispaced Lagrange nodes (at ``(j + 1/2) / p`` of the box), so the nodes form one equispaced grid;
the charges are spread onto the grid with the Lagrange weights, the kernel on the grid (a Toeplitz
matrix) is applied by a zero-padded FFT convolution (``jnp.fft``), and the potentials are
interpolated back to the points. Cost ``O(N p^d + (2 p n_boxes)^d log)``. openTSNE's defaults:
``n_interpolation_points=3``, ``min_num_intervals=50``, ``ints_in_interval=1`` (boxes of width at
most 1, at least 50 per axis); visjax's: 4 nodes in boxes of at most 0.9, which bring the error
from 3.6e-2 to 6e-3 on an optimised t-SNE embedding (see :data:`N_INTERPOLATION_POINTS`).

Static grid: the number of boxes sets the array shapes, so under ``jit`` it must be static. It is
``max(min_num_intervals, ceil(spread / ints_in_interval))`` (``spread``: the largest coordinate
minus the smallest) rounded up to a multiple of :data:`BOX_MULTIPLE`, so an optimisation whose
embedding grows recompiles once per 16 more boxes. Called on concrete ``y`` it is computed here;
inside a caller's ``jit`` pass ``n_boxes=fft_n_boxes(y_concrete)`` (computed outside, e.g. once per
block of iterations: more boxes than needed only costs time, and the box width is ``spread /
n_boxes`` whatever ``n_boxes`` is, so a slightly stale count stays accurate).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base import checks

BOX_MULTIPLE = 16
# Defaults finer than openTSNE's (3 nodes per box of width <= 1: node spacing 1/3): on the digits'
# optimised t-SNE embedding (spread 139), the repulsion's relative L2 error against the exact sums
# is 3.6e-2 with openTSNE's grid, 1.0e-2 with 4 nodes in boxes of 1, 6.2e-3 with 4 nodes in boxes
# of 0.9 (spacing 0.225; 5 in 1.1: 5.5e-3; 4 in 0.8: 4.4e-3). The error follows the node spacing,
# the cost the grid's area: 2.2x openTSNE's FFT for the 1e-2.
N_INTERPOLATION_POINTS = 4
INTS_IN_INTERVAL = 0.9
MIN_NUM_INTERVALS = 50


def fft_n_boxes(
    y: Any,
    *,
    min_num_intervals: int = MIN_NUM_INTERVALS,
    ints_in_interval: float = INTS_IN_INTERVAL,
) -> int:
    """Boxes per axis for a concrete embedding ``y``: ``max(min_num_intervals, ceil(spread /
    ints_in_interval))`` rounded up to a multiple of :data:`BOX_MULTIPLE` (above the minimum)."""
    y = np.asarray(y)
    spread = float(y.max() - y.min()) if y.size else 0.0
    n = max(int(min_num_intervals), math.ceil(spread / float(ints_in_interval)))
    if n > min_num_intervals:
        n = -(-n // BOX_MULTIPLE) * BOX_MULTIPLE
    return n


def repulsion_fft(
    y: Any,
    *,
    dof: float = 1.0,
    n_interpolation_points: int = N_INTERPOLATION_POINTS,
    min_num_intervals: int = MIN_NUM_INTERVALS,
    ints_in_interval: float = INTS_IN_INTERVAL,
    n_boxes: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """``(forces (N, d), z)`` of the t-SNE repulsion by FFT interpolation, for ``d`` = 1 or 2.

    Same meaning as ``visjax.embed.tsne.repulsion_exact`` (module docstring has the formula):
    ``forces_i = sum_{j != i} w_ij^{(a+1)/a} (y_i - y_j)``, ``z = sum_{i != j} w_ij``,
    ``w = (1 + d^2/a)^{-a}``, ``a = dof``.

    Args:
      y: ``(N, d)`` embedding, ``d`` in (1, 2).
      dof: the Student-t degrees of freedom ``a > 0``.
      n_interpolation_points: Lagrange nodes per box and axis (default 4; openTSNE: 3).
      min_num_intervals: at least this many boxes per axis (openTSNE: 50).
      ints_in_interval: boxes no wider than this (default 0.9; openTSNE: 1).
      n_boxes: boxes per axis (static); ``None``: :func:`fft_n_boxes` of ``y``, which needs a
        concrete ``y`` (inside a ``jit`` pass it).
    """
    dim = np.ndim(y) and np.shape(y)[-1]
    if np.ndim(y) != 2 or dim not in (1, 2):
        raise ValueError(
            f"`y` must be an (N, 1) or (N, 2) embedding (FFT interpolation is for 1-D and 2-D), "
            f"got shape {np.shape(y)}"
        )
    if not isinstance(dof, int | float) or isinstance(dof, bool) or not dof > 0:
        raise ValueError(f"`dof` must be a number > 0, got {dof!r}")
    p = checks.check_positive_int(n_interpolation_points, "n_interpolation_points")
    checks.check_positive_int(min_num_intervals, "min_num_intervals")
    if not float(ints_in_interval) > 0:
        raise ValueError(f"`ints_in_interval` must be > 0, got {ints_in_interval!r}")
    if n_boxes is None:
        if not checks.is_concrete(y):
            raise ValueError(
                "`n_boxes` must be given when `y` is traced (inside jit): pass "
                "n_boxes=fft_n_boxes(y) computed on a concrete embedding"
            )
        checks.check_finite(y, "y")
        n_boxes = fft_n_boxes(
            y, min_num_intervals=min_num_intervals, ints_in_interval=ints_in_interval
        )
    n_boxes = checks.check_positive_int(n_boxes, "n_boxes")
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.float32)
    return _repulsion_fft(y, float(dof), p, n_boxes)


def _fft_size(n: int) -> int:
    """The smallest ``m >= n`` whose prime factors are 2, 3 and 5."""
    m = n
    while True:
        k = m
        for f in (2, 3, 5):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += 1


def _lagrange(u: jax.Array, p: int) -> jax.Array:
    """Lagrange basis at nodes ``(j + 1/2) / p`` evaluated at ``u`` (any shape) -> ``(..., p)``."""
    nodes = (np.arange(p) + 0.5) / p
    out = []
    for j in range(p):
        term = jnp.ones_like(u)
        for m in range(p):
            if m != j:
                term = term * (u - nodes[m]) / (nodes[j] - nodes[m])
        out.append(term)
    return jnp.stack(out, axis=-1)


@functools.partial(jax.jit, static_argnames=("dof", "p", "n_boxes"))
def _repulsion_fft(y: jax.Array, dof: float, p: int, n_boxes: int) -> tuple[jax.Array, jax.Array]:
    y = y - jnp.mean(y, axis=0)  # translation invariant; smaller charges, less cancellation
    width = jnp.maximum(jnp.max(y) - jnp.min(y), 1e-6) / n_boxes
    spectrum = grid_spectrum(width, dof, p, n_boxes, y.shape[1])
    return repulsion_on_grid(y, width, spectrum, dof, p, n_boxes)


def grid_spectrum(width: jax.Array, dof: float, p: int, n_boxes: int, dim: int) -> jax.Array:
    """The kernel's spectrum on the grid of ``n_boxes`` boxes of ``width`` (``p`` nodes each):
    what :func:`repulsion_on_grid` convolves with. It depends on ``width`` only (not on where the
    points are), so a caller that keeps ``width`` fixed over iterations computes it once."""
    # Kernel at every grid offset -(g-1)..(g-1), laid out circulantly in L >= 2g points per axis
    # (L the next 2^a 3^b 5^c: FFT lengths with large prime factors are several times slower;
    # the offsets between g and L - g are never read by the outputs 0..g-1).
    size = _fft_size(2 * n_boxes * p)
    idx = jnp.arange(size)
    width = jnp.asarray(width)
    off = jnp.where(idx < size // 2, idx, idx - size).astype(width.dtype) * (width / p)
    sq = off * off if dim == 1 else off[:, None] ** 2 + off[None, :] ** 2
    if dof == 1.0:  # products, not pow: pow over the 900 x 900 grid cost ~8 ms on 2 CPU cores
        base = 1.0 / (1.0 + sq)
        kern = base * base
    else:
        kern = (1.0 + sq / dof) ** (-(dof + 1.0))
    # The kernel is even on the circulant layout: its spectrum is real (the imaginary part is
    # rounding), so the product with the grid's spectrum is real times complex.
    return jnp.fft.rfftn(kern, axes=tuple(range(dim))).real


def repulsion_on_grid(
    y: jax.Array, width: jax.Array, spectrum: jax.Array, dof: float, p: int, n_boxes: int
) -> tuple[jax.Array, jax.Array]:
    """The interpolation and convolution with ``spectrum`` (:func:`grid_spectrum` of the same
    ``width``, ``dof``, ``p``, ``n_boxes``) on the grid whose corner is ``min(y)``; ``y`` centred,
    ``n_boxes * width`` at least its spread (points beyond are clipped into the last box)."""
    n, dim = y.shape
    lo = jnp.min(y)
    rel = (y - lo) / width  # (n, dim) in box units
    box = jnp.clip(jnp.floor(rel), 0, n_boxes - 1)
    weights = _lagrange(rel - box, p)  # (n, dim, p)
    g = n_boxes * p  # grid nodes per axis, spacing width / p
    node = box.astype(jnp.int32)[:, :, None] * p + jnp.arange(p)  # (n, dim, p)
    charges = jnp.concatenate([jnp.ones((n, 1), y.dtype), y], 1)  # (1, y): Z needs no |y|^2

    if dim == 1:
        flat = node[:, 0, :]  # (n, p)
        wts = weights[:, 0, :]
    else:
        flat = (node[:, 0, :, None] * g + node[:, 1, None, :]).reshape(n, p * p)
        wts = (weights[:, 0, :, None] * weights[:, 1, None, :]).reshape(n, p * p)
    grid = jnp.zeros((g**dim, dim + 1), y.dtype)
    spread = (wts[:, :, None] * charges[:, None, :]).reshape(-1, dim + 1)
    grid = grid.at[flat.reshape(-1)].add(spread)
    grid = grid.reshape(*(g,) * dim, dim + 1)

    size = _fft_size(2 * g)
    if dim == 1:
        padded = jnp.fft.rfft(grid, n=size, axis=0)
        pot = jnp.fft.irfft(padded * spectrum[..., None], n=size, axis=0)[:g]
    else:
        # Axis by axis, skipping what is zero (the padding's rows going in) or discarded (the
        # rows past g coming out): ~30 % fewer transforms than rfftn / irfftn on the padded grid.
        padded = jnp.fft.fft(jnp.fft.rfft(grid, n=size, axis=1), n=size, axis=0)
        pot = jnp.fft.ifft(padded * spectrum[..., None], axis=0)[:g]
        pot = jnp.fft.irfft(pot, n=size, axis=1)[:, :g]
    pot = pot.reshape(g**dim, dim + 1)

    phi = jnp.sum(wts[:, :, None] * pot[flat], axis=1)  # (n, dim + 1)
    phi1, phiy = phi[:, 0], phi[:, 1:]
    forces = y * phi1[:, None] - phiy
    # sum_ij K_ij d_ij^2 = 2 sum_i y_i . F_i (K symmetric): no |y|^2 channel (a quarter of the
    # 2-D transforms), and no cancellation of |y|^2-sized terms.
    z = jnp.sum(phi1) + 2.0 * jnp.sum(y * forces) / dof - n
    return forces, z
