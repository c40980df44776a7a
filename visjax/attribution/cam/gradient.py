"""Gradient-weighted class activation maps: Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM.

Each method takes the activation ``A`` of one layer on its spatial grid ``(H', W', C)`` and the
gradient ``G = ∂y/∂A`` of the target ``y``, from one forward and one backward pass, and returns
the raw map ``(N, H', W')``: pytorch-grad-cam's ``get_cam_image``, before the ReLU, scaling and
resizing that :func:`visjax.attribution.cam.process.postprocess` applies. ``i`` runs over grid
positions, ``k`` over channels:

* Grad-CAM: ``Σ_k w_k A^k`` with ``w_k = mean_i G^k_i``;
* Grad-CAM++: ``w_k = Σ_i relu(G^k_i) α^k_i``,
  ``α^k_i = (G^k_i)² / (2 (G^k_i)² + Σ_j A^k_j (G^k_i)³ + 1e-6)``, zero where ``G^k_i = 0``;
* XGrad-CAM: ``w_k = Σ_i G^k_i A^k_i / (Σ_j A^k_j + 1e-7)``;
* HiResCAM: ``Σ_k G^k ⊙ A^k``;
* LayerCAM: ``Σ_k relu(G^k) ⊙ A^k``.

The constants and the higher-order-derivative shortcut of Grad-CAM++ (exponential output
assumed, so second and third derivatives are powers of the gradient) are pytorch-grad-cam's.

Layers and grids: a layer path names the value visjax's model interface gives for it (for the
zoo CNNs the convolution's output *before* its ReLU, like pytorch-grad-cam's ``Conv2d`` target
layer; see :mod:`visjax.attribution.cam._core`). ``layer=None`` takes the last spatial layer in
forward order. A rank-4 activation is NHWC; transformer tokens ``(N, T, D)`` become the
``√T × √T`` patch grid, or when ``T − 1`` is a square the class token (first) is dropped and the
other ``T − 1`` tokens are laid out row by row (pytorch-grad-cam's ViT ``reshape_transform``).
Any other layout needs ``reshape``: a function from the layer's activation ``(N, ...)`` to
``(N, H', W', C)``, applied to activation and gradient alike. For a ViT whose head reads only
the class token, the final norm's patch tokens get no gradient: take a layer inside the last
block (e.g. ``"blocks.1.norm1"``), as pytorch-grad-cam's ViT example does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp

from visjax.attribution._target import Target, empty_batch
from visjax.attribution.cam._core import Reshape, activation_and_grad, prepare_cam
from visjax.attribution.cam.process import postprocess
from visjax.attribution.modified import modified_method
from visjax.model import Model

Rule = Literal["grad_cam", "grad_cam_plus_plus", "xgrad_cam", "hires_cam", "layer_cam"]
_SPACE = (1, 2)  # grid axes of (N, H, W, C)


def _weighted(a: jax.Array, w: jax.Array) -> jax.Array:
    # A contraction, not ``(w * a).sum(-1)``: XLA:CPU runs it as one dot, measured 1.2x faster
    # for Grad-CAM on the digits CNN (256 x 8 x 8 x 32). HIGHEST keeps float32 on TPUs.
    return jnp.einsum("nhwc,nc->nhw", a, w, precision=jax.lax.Precision.HIGHEST)


def grad_cam_map(a: jax.Array, g: jax.Array) -> jax.Array:
    """Grad-CAM from activations and gradients ``(N, H, W, C)``: ``Σ_k mean_i(G^k_i) A^k``."""
    # The mean's division moved to the (N, H, W) map: fewer operations between the layer
    # gradient and the contraction (measured 1.1x faster than dividing the weights first).
    return _weighted(a, g.sum(_SPACE)) / (a.shape[1] * a.shape[2])


def grad_cam_plus_plus_map(a: jax.Array, g: jax.Array) -> jax.Array:
    """Grad-CAM++ from ``(N, H, W, C)`` activations and gradients (pytorch-grad-cam's formula)."""
    g2 = g * g
    alpha = g2 / (2 * g2 + a.sum(_SPACE, keepdims=True) * g2 * g + 1e-6)
    alpha = jnp.where(g != 0, alpha, 0)
    return _weighted(a, (jnp.maximum(g, 0) * alpha).sum(_SPACE))


def xgrad_cam_map(a: jax.Array, g: jax.Array) -> jax.Array:
    """XGrad-CAM: weights ``Σ_i G^k_i A^k_i / (Σ_j A^k_j + 1e-7)``."""
    return _weighted(a, (g * a / (a.sum(_SPACE, keepdims=True) + 1e-7)).sum(_SPACE))


def hires_cam_map(a: jax.Array, g: jax.Array) -> jax.Array:
    """HiResCAM: ``Σ_k G^k ⊙ A^k``."""
    return (g * a).sum(-1)


def layer_cam_map(a: jax.Array, g: jax.Array) -> jax.Array:
    """LayerCAM: ``Σ_k relu(G^k) ⊙ A^k``."""
    return (jnp.maximum(g, 0) * a).sum(-1)


_MAPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "grad_cam": grad_cam_map,
    "grad_cam_plus_plus": grad_cam_plus_plus_map,
    "xgrad_cam": xgrad_cam_map,
    "hires_cam": hires_cam_map,
    "layer_cam": layer_cam_map,
}


@functools.partial(jax.jit, static_argnames=("rule", "target_fn", "layer", "reshape"))
def _gradient_cam(model: Model, x, t, rule: Rule, target_fn, layer: str, reshape: Reshape):
    a, g, _ = activation_and_grad(model, x, t, target_fn, layer, reshape)
    return _MAPS[rule](a, g)


def _method(rule: Rule, model, x, target, layer, reshape) -> jax.Array:
    model, x, t, target_fn, layer = prepare_cam(model, x, target, layer, reshape)
    return _gradient_cam(model, x, t, rule, target_fn, layer, reshape)


_ARGS = """Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (static: pass the same function object to avoid recompiling).
      layer: a layer path (static); None takes the last spatial layer.
      reshape: None, or a function (static) from the layer's activation to ``(N, H', W', C)``.

    Returns:
      The raw map ``(N, H', W')`` on the layer's grid, before ReLU and scaling
      (:func:`~visjax.attribution.cam.process.postprocess` makes the picture).

    Raises:
      ValueError: an unknown layer (listing the known ones), a layer that is not spatial (naming
        its shape), a target out of range, NaN/Inf in ``x`` (values checked when concrete).
      TypeError: a ``layer`` or ``reshape`` of the wrong type, a non-integer target."""


@empty_batch
def grad_cam(
    model: Any, x: Any, target: Target, *, layer: str | None = None, reshape: Reshape = None
) -> jax.Array:
    """Grad-CAM: channels weighted by their mean gradient, ``Σ_k mean_i(∂y/∂A^k_i) A^k``.

    {args}

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> grad_cam(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3, layer="conv2").shape
      (2, 8, 8)

    References:
      Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra, "Grad-CAM: Visual Explanations from
      Deep Networks via Gradient-based Localization", ICCV 2017.
      https://arxiv.org/abs/1610.02391 (pytorch-grad-cam's ``GradCAM``; the paper's final ReLU is
      left to ``postprocess``.)
    """
    return _method("grad_cam", model, x, target, layer, reshape)


@empty_batch
def grad_cam_plus_plus(
    model: Any, x: Any, target: Target, *, layer: str | None = None, reshape: Reshape = None
) -> jax.Array:
    """Grad-CAM++: channel weights from positive gradients weighted by ``α``.

    ``w_k = Σ_i relu(G^k_i) α^k_i`` with
    ``α^k_i = (G^k_i)² / (2 (G^k_i)² + Σ_j A^k_j (G^k_i)³ + 1e-6)`` (zero where ``G^k_i = 0``),
    map ``Σ_k w_k A^k``: the paper's closed form for an exponential of the score, with
    pytorch-grad-cam's ``1e-6`` in the denominator.

    {args}

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> grad_cam_plus_plus(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8)

    References:
      Chattopadhay, Sarkar, Howlader, Balasubramanian, "Grad-CAM++: Improved Visual Explanations
      for Deep Convolutional Networks", WACV 2018. https://arxiv.org/abs/1710.11063
      (pytorch-grad-cam's ``GradCAMPlusPlus``, eq. 19 with the gradients' powers.)
    """
    return _method("grad_cam_plus_plus", model, x, target, layer, reshape)


@empty_batch
def xgrad_cam(
    model: Any, x: Any, target: Target, *, layer: str | None = None, reshape: Reshape = None
) -> jax.Array:
    """XGrad-CAM: ``w_k = Σ_i G^k_i A^k_i / (Σ_j A^k_j + 1e-7)``, map ``Σ_k w_k A^k``.

    {args}

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> xgrad_cam(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8)

    References:
      Fu, Hu, Chen, Xu, Yu, "Axiom-based Grad-CAM: Towards Accurate Visualization and
      Explanation of CNNs", BMVC 2020. https://arxiv.org/abs/2008.02312 (pytorch-grad-cam's
      ``XGradCAM``, with its ``1e-7``.)
    """
    return _method("xgrad_cam", model, x, target, layer, reshape)


@empty_batch
def hires_cam(
    model: Any, x: Any, target: Target, *, layer: str | None = None, reshape: Reshape = None
) -> jax.Array:
    """HiResCAM: the element-wise product summed over channels, ``Σ_k G^k ⊙ A^k``.

    When the layer is followed only by a global average pool and a linear head, the map sums
    over positions to the score minus the head's bias: each position's share of the score.

    {args}

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> hires_cam(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8)

    References:
      Draelos, Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of
      convolutional neural networks", 2020. https://arxiv.org/abs/2011.08891
      (pytorch-grad-cam's ``HiResCAM``.)
    """
    return _method("hires_cam", model, x, target, layer, reshape)


@empty_batch
def layer_cam(
    model: Any, x: Any, target: Target, *, layer: str | None = None, reshape: Reshape = None
) -> jax.Array:
    """LayerCAM: positive gradients as position-wise weights, ``Σ_k relu(G^k) ⊙ A^k``.

    {args}

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> layer_cam(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3, layer="conv1").shape
      (2, 8, 8)

    References:
      Jiang, Zhang, Hou, Cheng, Wei, "LayerCAM: Exploring Hierarchical Class Activation Maps for
      Localization", IEEE TIP 2021. https://doi.org/10.1109/TIP.2021.3089943
      (pytorch-grad-cam's ``LayerCAM``.)
    """
    return _method("layer_cam", model, x, target, layer, reshape)


@functools.partial(jax.jit, static_argnames=("target_fn", "layer", "reshape"))
def _guided_grad_cam(model: Model, x, t, target_fn, layer: str, reshape: Reshape):
    a, g, _ = activation_and_grad(model, x, t, target_fn, layer, reshape)
    cam = postprocess(grad_cam_map(a, g), x.shape[1:3])
    return modified_method(model, x, t, target_fn, "guided") * cam[..., None]


@empty_batch
def guided_grad_cam(
    model: Any, x: Any, target: Target, *, layer: str | None = None, reshape: Reshape = None
) -> jax.Array:
    """Guided Grad-CAM: guided backprop times the upsampled Grad-CAM map, shaped like ``x``.

    ``guided_backprop(x) ⊙ postprocess(grad_cam(x), (H, W))``, the Grad-CAM map after ReLU,
    min–max scaling and bilinear upsampling to the input's size, broadcast over channels. This is
    what pytorch-grad-cam's example script multiplies (``cam_mask * gb``) before its
    ``deprocess_image`` display step (not applied here); the paper multiplies by the ReLU'd,
    upsampled map without the scaling, which changes each example by a positive factor (and an
    offset only where the map is positive everywhere).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: NHWC images ``(N, H, W, C)``.
      target: as :func:`grad_cam`.
      layer: as :func:`grad_cam`.
      reshape: as :func:`grad_cam`.

    Returns:
      Attributions shaped like ``x``.

    Raises:
      ValueError: as :func:`grad_cam` and :func:`visjax.attribution.guided_backprop`, or ``x``
        not of rank 4.

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> guided_grad_cam(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3).shape
      (2, 8, 8, 1)

    References:
      Selvaraju et al., "Grad-CAM", ICCV 2017, section 3.1. https://arxiv.org/abs/1610.02391 ;
      Springenberg et al., "Striving for Simplicity", 2015. https://arxiv.org/abs/1412.6806
    """
    model, x, t, target_fn, layer = prepare_cam(model, x, target, layer, reshape)
    if x.ndim != 4:
        raise ValueError(f"`x` must be NHWC images (N, H, W, C), got shape {x.shape}")
    return _guided_grad_cam(model, x, t, target_fn, layer, reshape)


for _f in (grad_cam, grad_cam_plus_plus, xgrad_cam, hires_cam, layer_cam):
    _f.__doc__ = _f.__doc__.replace("{args}", _ARGS)
del _f
