"""Localisation metrics: does a map put its relevance on the object, given the object's mask?

Maps are ``(N, H, W)``, or ``(N, H, W, C)`` summed over channels; masks are boolean ``(N, H, W)``
(or one ``(H, W)`` mask for every example), e.g. the exact object masks of
``visjax.zoo.objects.make_objects``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_finite


def _maps_and_masks(maps: Any, mask: Any) -> tuple[jax.Array, jax.Array]:
    maps = jnp.asarray(maps)
    m = jnp.asarray(mask)
    if m.dtype != jnp.bool_:
        raise TypeError(f"`mask` must be boolean, got dtype {m.dtype}")
    if maps.ndim == 4:
        maps = maps.sum(-1)
    if maps.ndim != 3:
        raise ValueError(f"`maps` must be (N, H, W) or (N, H, W, C), got shape {maps.shape}")
    check_finite(maps, "maps")
    if m.shape not in (maps.shape, maps.shape[1:]):
        raise ValueError(
            f"`mask` must have shape {maps.shape} or {maps.shape[1:]} (the maps' grid), "
            f"got {m.shape}"
        )
    return maps.astype(jnp.float32), jnp.broadcast_to(m, maps.shape)


@jax.jit
def _pointing(maps, mask, tolerance):
    n, h, w = maps.shape
    best = jnp.argmax(maps.reshape(n, math.prod(maps.shape[1:])), axis=1)
    bi, bj = best // w, best % w
    ii, jj = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    d2 = (ii[None] - bi[:, None, None]) ** 2 + (jj[None] - bj[:, None, None]) ** 2
    return jnp.any(mask & (d2 <= tolerance * tolerance), axis=(1, 2))


def pointing_game(maps: Any, mask: Any, *, tolerance: float = 0.0) -> jax.Array:
    """Pointing game: whether each map's maximum falls on the object.

    A hit when the maximum's pixel (the first in row-major order among ties) is within Euclidean
    distance ``tolerance`` pixels of a mask pixel (Zhang et al. use 15 pixels on 224×224 images;
    ``0``: on the mask itself).

    Args:
      maps: ``(N, H, W)`` or ``(N, H, W, C)`` (summed over channels).
      mask: boolean ``(N, H, W)`` or ``(H, W)``.
      tolerance: the distance in pixels (>= 0).

    Returns:
      ``(N,)`` booleans; their mean is the pointing accuracy.

    References:
      Zhang, Bargal, Lin, Brandt, Shen, Sclaroff, "Top-down Neural Attention by Excitation
      Backprop", IJCV 2018 (ECCV 2016). https://arxiv.org/abs/1608.00507
    """
    maps, mask = _maps_and_masks(maps, mask)
    tol = float(tolerance)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"`tolerance` must be a finite number >= 0, got {tolerance!r}")
    return _pointing(maps, mask, jnp.float32(tol))


@jax.jit
def _mass(maps, mask):
    pos = jnp.maximum(maps, 0.0)
    total = pos.sum((1, 2))
    return jnp.where(total > 0, (pos * mask).sum((1, 2)) / jnp.where(total > 0, total, 1.0), 0.0)


def relevance_mass(maps: Any, mask: Any) -> jax.Array:
    """Relevance mass accuracy: the share of positive relevance inside the mask.

    ``R_within / R_total`` with ``R_within = Σ_{k ∈ mask} max(R_k, 0)`` and
    ``R_total = Σ_k max(R_k, 0)`` (Arras et al. consider positive relevance only); a map with no
    positive relevance scores 0.

    Args:
      maps, mask: as :func:`pointing_game`.

    Returns:
      ``(N,)`` values in ``[0, 1]``.

    References:
      Arras, Osman, Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
      neural network explanations", Information Fusion 2022. https://arxiv.org/abs/2003.07258
    """
    return _mass(*_maps_and_masks(maps, mask))


@functools.partial(jax.jit)
def _rank(maps, mask):
    n = maps.shape[0]
    flat, m = maps.reshape(n, math.prod(maps.shape[1:])), mask.reshape(n, math.prod(mask.shape[1:]))
    k = m.sum(1)
    order = jnp.argsort(-flat + 0.0, axis=1, stable=True)
    position = (
        jnp.zeros_like(order)
        .at[jnp.arange(n)[:, None], order]
        .set(jnp.arange(flat.shape[1])[None, :])
    )
    hits = (m & (position < k[:, None])).sum(1)
    return jnp.where(k > 0, hits / jnp.maximum(k, 1), 0.0)


def relevance_rank(maps: Any, mask: Any) -> jax.Array:
    """Relevance rank accuracy: the share of the ``K`` most relevant pixels inside the mask.

    With ``K = |mask|`` and ``P_K`` the ``K`` pixels of highest relevance (descending stable
    order, ties by index): ``|P_K ∩ mask| / K``; an empty mask scores 0.

    Args:
      maps, mask: as :func:`pointing_game`.

    Returns:
      ``(N,)`` values in ``[0, 1]``.

    References:
      Arras, Osman, Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
      neural network explanations", Information Fusion 2022. https://arxiv.org/abs/2003.07258
    """
    maps, mask = _maps_and_masks(maps, mask)
    if maps.shape[0] == 0:
        return jnp.zeros((0,), jnp.float32)
    return _rank(maps, mask)
