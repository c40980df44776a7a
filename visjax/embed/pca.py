"""Principal component analysis: centred SVD, explained variance, deterministic signs, whitening.

For data ``X`` (``N x D``) with column means ``mu``, the centred ``Xc = X - mu`` has the thin SVD
``Xc = U S V^T``. The principal axes are the rows of ``V^T``, the variance along axis ``i`` is
``lambda_i = S_i^2 / (N - 1)`` and its share of the total variance is
``lambda_i / sum_j lambda_j``. The embedding is ``Xc V_k`` (``N x k``), divided by
``sqrt(lambda)`` when whitened (unit variance per component).

Tall data (``N >= 4 D``) uses the eigendecomposition of the covariance ``Xc^T Xc / (N - 1)``
(``D x D``) instead: same axes and variances, ``O(N D^2)`` work and ``D x D`` memory. Each axis's
sign is fixed as scikit-learn's ``svd_flip`` (``u_based_decision=False``) fixes it: the entry of
largest magnitude is positive, so results are deterministic and comparable with scikit-learn's.

References: Pearson (1901), "On lines and planes of closest fit to systems of points in space";
Hotelling (1933), "Analysis of a complex of statistical variables into principal components".
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_finite, check_positive_int


class PCA(NamedTuple):
    """The result of :func:`pca`.

    Attributes:
      embedding: ``(N, k)`` the centred data projected on the principal axes (whitened: divided by
        ``sqrt(explained_variance)``).
      components: ``(k, D)`` the principal axes (unit rows, largest-magnitude entry positive).
      explained_variance: ``(k,)`` the variance along each axis, ``S_i^2 / (N - 1)``.
      explained_variance_ratio: ``(k,)`` each variance over the total variance.
      mean: ``(D,)`` the column means subtracted before projecting.
    """

    embedding: jax.Array
    components: jax.Array
    explained_variance: jax.Array
    explained_variance_ratio: jax.Array
    mean: jax.Array


def check_data(x: Any, name: str = "x", minimum: int = 4) -> jax.Array:
    """``x`` as a floating ``(N, D)`` array of finite values with ``N >= minimum`` rows; raises
    ``ValueError``/``TypeError`` naming ``name``."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"`{name}` must be an array, got {type(x).__name__}") from e
    if np.ndim(x) != 2:
        raise ValueError(f"`{name}` must have shape (N, D), got {np.shape(x)}")
    dtype = jnp.result_type(x)
    if jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_):
        x = jnp.asarray(x, jnp.float32)
    elif not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`{name}` must hold numbers, got dtype {dtype}")
    if x.shape[0] < minimum:
        raise ValueError(f"`{name}` must have at least {minimum} rows, got {x.shape[0]}")
    if x.shape[1] < 1:
        raise ValueError(f"`{name}` must have at least one column, got shape {x.shape}")
    check_finite(x, name)
    return jnp.asarray(x)


def _flip(components: jax.Array) -> jax.Array:
    """Rows signed so that each row's entry of largest magnitude is positive (``svd_flip``)."""
    top = jnp.argmax(jnp.abs(components), axis=1)
    signs = jnp.sign(jnp.take_along_axis(components, top[:, None], axis=1))
    return components * jnp.where(signs == 0, 1.0, signs)


def pca_body(x: jax.Array, k: int, whiten: bool, tall: bool) -> PCA:
    n = x.shape[0]
    mean = x.mean(axis=0)
    xc = x - mean
    if tall:
        cov = xc.T @ xc / (n - 1)
        values, vectors = jnp.linalg.eigh(cov)  # ascending
        variance = jnp.maximum(values[::-1], 0.0)
        components = vectors[:, ::-1].T
        total = jnp.trace(cov)
    else:
        _, s, vt = jnp.linalg.svd(xc, full_matrices=False)
        variance = s**2 / (n - 1)
        components = vt
        total = variance.sum()
    components = _flip(components[:k])
    variance = variance[:k]
    embedding = xc @ components.T
    if whiten:
        embedding = embedding / jnp.sqrt(jnp.where(variance > 0, variance, 1.0))
    return PCA(embedding, components, variance, variance / total, mean)


_pca_jit = jax.jit(pca_body, static_argnames=("k", "whiten", "tall"))


def pca(x: Any, k: int = 2, *, whiten: bool = False) -> PCA:
    """The first ``k`` principal components of ``x`` and ``x`` projected on them.

    With ``Xc = X - mean`` and its thin SVD ``Xc = U S V^T``: ``components = V_k^T``,
    ``explained_variance = S_k^2 / (N - 1)``, ``explained_variance_ratio =
    explained_variance / sum(S^2 / (N - 1))`` and ``embedding = Xc V_k`` (divided by
    ``sqrt(explained_variance)`` when ``whiten``). Equal to ``sklearn.decomposition.PCA`` (to
    float32 precision; same signs). Tall data (``N >= 4 D``) goes through the ``D x D`` covariance's
    eigendecomposition, which squares the condition number: the leading components are as accurate,
    variances near ``1e-7`` of the largest are not resolved in float32.

    Args:
      x: ``(N, D)`` data, finite, ``N >= 2``.
      k: the number of components, ``1 <= k <= min(N, D)``.
      whiten: scale the embedding to unit variance per component.

    Returns:
      a :class:`PCA` (``embedding``, ``components``, ``explained_variance``,
      ``explained_variance_ratio``, ``mean``).

    Raises:
      ValueError: ``x`` not 2-D, with fewer than 2 rows or with NaN/Inf; ``k`` out of range.
      TypeError: a non-numeric ``x``.

    Example:
      >>> import numpy as np
      >>> x = np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32)
      >>> result = pca(x, k=2)
      >>> result.embedding.shape, result.components.shape
      ((100, 2), (2, 5))
    """
    x = check_data(x, "x", minimum=2)
    k = check_positive_int(k, "k")
    if k > min(x.shape):
        raise ValueError(f"`k` must be at most min(N, D) = {min(x.shape)}, got {k}")
    if not isinstance(whiten, bool):
        raise TypeError(f"`whiten` must be a bool, got {type(whiten).__name__}")
    n, d = x.shape
    return _pca_jit(x, k, whiten, n >= 4 * d)
