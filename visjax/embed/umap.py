"""UMAP through umap-learn, the reference implementation (the optional extra ``visjax[umap]``).

umap-learn compiles its kernels with numba on first use (tens of seconds); later calls in the same
process are fast.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from visjax.base.checks import check_non_negative, check_positive_int
from visjax.embed.pca import check_data


def umap(
    x: Any, *, n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0
) -> np.ndarray:
    """The UMAP embedding of ``x`` computed by umap-learn (McInnes, Healy & Melville 2018).

    UMAP builds a fuzzy k-nearest-neighbour graph (``n_neighbors``) whose edge weights
    ``exp(-(d_ij - rho_i) / sigma_i)`` are calibrated per point so that they sum to
    ``log2(n_neighbors)``, symmetrised by the fuzzy union ``a + b - a b``, and lays it out in
    ``n_components`` dimensions by minimising the fuzzy-set cross-entropy with low-dimensional
    similarities ``1 / (1 + a |y_i - y_j|^(2 b))`` (``a``, ``b`` fitted to ``min_dist``) by
    stochastic gradient descent with negative sampling. With a ``seed`` umap-learn runs
    single-threaded and is reproducible.

    Args:
      x: ``(N, D)`` data, finite, ``N >= 4``.
      n_components: the embedding's dimension.
      n_neighbors: the neighbourhood size, ``2 <= n_neighbors < N``.
      min_dist: the minimum distance between embedded points, ``>= 0``.
      seed: the random seed (``random_state``).

    Returns:
      ``(N, n_components)`` float32 NumPy array.

    Raises:
      ImportError: umap-learn is not installed (``pip install visjax[umap]``).
      ValueError: bad ``x`` (not 2-D, NaN/Inf, fewer than 4 rows) or parameters.

    References: McInnes, L., Healy, J. and Melville, J. (2018), "UMAP: Uniform Manifold
    Approximation and Projection for Dimension Reduction", arXiv:1802.03426.
    """
    x = check_data(x, "x")
    n_components = check_positive_int(n_components, "n_components")
    n_neighbors = check_positive_int(n_neighbors, "n_neighbors", minimum=2)
    if n_neighbors >= x.shape[0]:
        raise ValueError(f"`n_neighbors` must be below N = {x.shape[0]}, got {n_neighbors}")
    check_non_negative(min_dist, "min_dist")
    seed = check_positive_int(seed, "seed", minimum=0)
    try:
        import umap as umap_learn  # noqa: PLC0415 - optional extra, numba imports slowly
    except ImportError as e:
        raise ImportError("visjax.embed.umap needs umap-learn: `pip install visjax[umap]`") from e
    reducer = umap_learn.UMAP(
        n_components=n_components,
        n_neighbors=n_neighbors,
        min_dist=float(min_dist),
        random_state=seed,
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(np.asarray(x, np.float32)), np.float32)
