"""Eigen-CAM and Eigen-Grad-CAM: the first principal component of a layer's activations.

For one example the grid's ``P = H' W'`` positions are the rows of a ``P × C`` matrix ``M``
(activations for Eigen-CAM, gradients times activations for Eigen-Grad-CAM), NaNs set to zero.
Its columns are centred (``M − mean over positions``, as pytorch-grad-cam's
``get_2d_projection``), and the map is the projection of each centred row on the first right
singular vector ``v₁``: ``cam_i = (M_i − M̄) · v₁``, reshaped to ``(H', W')``.

Sign: an SVD determines ``v₁`` only up to sign, and pytorch-grad-cam keeps whatever LAPACK
returns. Here the sign is fixed so that the map correlates non-negatively with the channel sum
``Σ_k M^k`` (for Eigen-CAM the summed activation, for Eigen-Grad-CAM the HiResCAM map): where the
channels are jointly large the map is high. The result is therefore pytorch-grad-cam's or its
negative, per example.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from visjax.attribution._target import Target, empty_batch
from visjax.attribution.cam._core import Reshape, activation_and_grad, prepare_cam, to_grid
from visjax.model import Model


def principal_projection(m: jax.Array) -> jax.Array:
    """Maps ``(N, H, W)``: the first principal component of ``m`` ``(N, H, W, C)``, signed.

    Positions are the samples and channels the features; see the module docstring for the
    centring and the sign convention.
    """
    n, h, w, c = m.shape
    m = jnp.where(jnp.isnan(m), 0, m).reshape(n, h * w, c)
    centred = m - m.mean(1, keepdims=True)
    _, _, vt = jnp.linalg.svd(centred, full_matrices=False)
    proj = jnp.einsum("npc,nc->np", centred, vt[:, 0])
    total = m.sum(-1)
    corr = jnp.einsum("np,np->n", proj, total - total.mean(1, keepdims=True))
    sign = jnp.where(corr < 0, -1.0, 1.0).astype(proj.dtype)
    return (sign[:, None] * proj).reshape(n, h, w)


@functools.partial(jax.jit, static_argnames=("grad", "target_fn", "layer", "reshape"))
def _eigen(model: Model, x, t, grad: bool, target_fn, layer: str, reshape: Reshape):
    if not grad:
        return principal_projection(to_grid(model.activations(x, layer)[1][layer], reshape))
    a, g, _ = activation_and_grad(model, x, t, target_fn, layer, reshape)
    return principal_projection(g * a)


def _no_target(out: Any) -> jax.Array:
    return jnp.zeros(())


@empty_batch
def eigen_cam(
    model: Any,
    x: Any,
    target: Target | None = None,
    *,
    layer: str | None = None,
    reshape: Reshape = None,
) -> jax.Array:
    """Eigen-CAM: the layer's activations projected on their first principal component.

    ``cam_i = (A_i − Ā) · v₁`` with ``v₁`` the first right singular vector of the centred
    ``(H' W') × C`` activation matrix, per example; signed to correlate with ``Σ_k A^k`` (see the
    module docstring). Class-agnostic: ``target`` is not used (None is accepted; an int, array or
    callable is checked and ignored, so Eigen-CAM fits the signature of the other methods).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: not used (None by default; a given target is checked, then ignored).
      layer: a layer path (static); None takes the last spatial layer.
      reshape: None, or a function (static) from the layer's activation to ``(N, H', W', C)``
        (see :mod:`visjax.attribution.cam.gradient` for the automatic token grid).

    Returns:
      The raw map ``(N, H', W')`` (before ReLU and scaling).

    Raises:
      ValueError: an unknown or non-spatial layer, NaN/Inf in ``x``.

    Example:
      >>> import jax
      >>> from visjax.zoo import digits_cnn
      >>> x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
      >>> eigen_cam(digits_cnn("function"), x, layer="conv2").shape
      (2, 8, 8)

    References:
      Muhammad, Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020.
      https://arxiv.org/abs/2008.00299 (pytorch-grad-cam's ``EigenCAM``, which centres the
      matrix; its sign is LAPACK's, here it is fixed.)
    """
    target = _no_target if target is None else target
    model, x, t, target_fn, layer = prepare_cam(model, x, target, layer, reshape)
    return _eigen(model, x, t, False, target_fn, layer, reshape)


@empty_batch
def eigen_grad_cam(
    model: Any, x: Any, target: Target, *, layer: str | None = None, reshape: Reshape = None
) -> jax.Array:
    """Eigen-Grad-CAM: the first principal component of gradients times activations.

    As :func:`eigen_cam` on ``G ⊙ A`` (``G`` the target's gradient at the layer), signed to
    correlate with the HiResCAM map ``Σ_k G^k ⊙ A^k``.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable (static).
      layer: a layer path (static); None takes the last spatial layer.
      reshape: as :func:`eigen_cam`.

    Returns:
      The raw map ``(N, H', W')``.

    Raises:
      ValueError: an unknown or non-spatial layer, a target out of range, NaN/Inf in ``x``.

    Example:
      >>> import jax
      >>> from visjax.zoo import digits_cnn
      >>> x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
      >>> eigen_grad_cam(digits_cnn("function"), x, 3, layer="conv2").shape
      (2, 8, 8)

    References:
      Muhammad, Yeasin, "Eigen-CAM", IJCNN 2020. https://arxiv.org/abs/2008.00299
      (pytorch-grad-cam's ``EigenGradCAM``; sign fixed here.)
    """
    model, x, t, target_fn, layer = prepare_cam(model, x, target, layer, reshape)
    return _eigen(model, x, t, True, target_fn, layer, reshape)
