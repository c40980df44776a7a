"""Gradient-free CAMs: Score-CAM and Ablation-CAM, as pytorch-grad-cam computes them.

Both weight the channels ``A_c`` of a layer's activation and return the raw map
``M = Σ_c w_c A_c`` of shape ``(N, H', W')`` (pytorch-grad-cam's ``get_cam_image``: no ReLU, no
scaling, no resize). Each needs one forward per (example, channel) row: Score-CAM over the input
masked by the channel, Ablation-CAM from the layer on with the channel ablated. The ``N × C``
rows run in chunks of ``batch_size`` rows (``"auto"`` by default), a scan over the chunks inside
one jitted program (:mod:`visjax.base.batching` explains why), so peak memory is bounded by
``batch_size``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from visjax.attribution._target import Target, check_batch_size, empty_batch, select_output
from visjax.attribution.ablation import full_chunks
from visjax.attribution.cam._core import (
    Reshape,
    prepare_cam,
    scores_from_layer,
    to_grid,
)
from visjax.attribution.cam.process import bilinear_resize
from visjax.base.batching import FORWARD_UNROLL, chunked_sum
from visjax.base.sharding import device_mesh, over_devices
from visjax.model import Model

# pytorch-grad-cam's constants: Score-CAM's min-max normalisation, Ablation-CAM's offset below
# the activation's minimum when that minimum is not 0.
SCORE_EPS = 1e-8
ABLATION_OFFSET = 1e7


def _row_scores(score_fn, n: int, c: int, batch_size: int | str | None) -> jax.Array:
    """``(N, C)`` scores ``score_fn(e, ch)`` for every (example, channel) row, in chunks
    (``"auto"``: full chunks, :func:`visjax.attribution.ablation.full_chunks`)."""

    def chunk(r):
        valid = r < n * c
        rr = jnp.where(valid, r, 0)
        scores = score_fn(rr // c, rr % c).astype(jnp.float32)
        return (
            jnp.zeros((n * c,), jnp.float32).at[jnp.where(valid, r, n * c)].set(scores, mode="drop")
        )

    size, rows = full_chunks(batch_size, chunk, n * c)
    return chunked_sum(chunk, rows, batch_size=size, max_unroll=FORWARD_UNROLL).reshape(n, c)


@functools.partial(jax.jit, static_argnames=("target_fn", "layer", "reshape", "batch_size"))
def _score_cam(model: Model, x, t, target_fn, layer, reshape, batch_size):
    act = to_grid(model.activations(x, layer)[1][layer], reshape)
    n, c = act.shape[0], act.shape[-1]
    up = bilinear_resize(act, x.shape[1:3], align_corners=True)
    lo, hi = up.min((1, 2), keepdims=True), up.max((1, 2), keepdims=True)
    masks = (up - lo) / (hi - lo + SCORE_EPS)

    def score(e, ch):
        m = jnp.take_along_axis(masks[e], ch[:, None, None, None], axis=-1)
        out = model(x[e] * m)
        return jax.vmap(lambda o, ti: select_output(target_fn, o, ti))(out, t[e])

    weights = jax.nn.softmax(_row_scores(score, n, c, batch_size), axis=-1)
    return jnp.einsum("nhwc,nc->nhw", act, weights.astype(act.dtype))


def _checked(model, x, target, layer, reshape, batch_size, *, image: bool):
    model, x, t, target_fn, layer = prepare_cam(model, x, target, layer, reshape)
    if image and x.ndim != 4:
        raise ValueError(f"`x` must be images (N, H, W, C) for Score-CAM, got shape {x.shape}")
    return model, x, t, target_fn, layer, check_batch_size(batch_size)


@empty_batch
def score_cam(
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: str | None = None,
    reshape: Reshape = None,
    batch_size: int | str | None = "auto",
    devices: Any = None,
) -> jax.Array:
    """Score-CAM: channels weighted by the score of the input masked with each channel.

    With ``U_c`` the channel upsampled to the input size (bilinear, aligned corners) and min-max
    normalised, ``Ū_c = (U_c − min U_c)/(max U_c − min U_c + 10⁻⁸)``, the score
    ``s_c = f(x ⊙ Ū_c)`` and ``w = softmax_c(s)``, the map is ``M = Σ_c w_c A_c``.

    As pytorch-grad-cam's ``ScoreCAM``: ``f`` is the target's raw value (the logit for an int
    target, as its ``ClassifierOutputTarget``; a callable ``target(output)`` as given) and the
    softmax runs over the channels. The mask multiplies every input channel.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: images ``(N, H, W, C_in)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (static).
      layer: the layer path (static); ``None`` picks the last spatial layer.
      reshape: maps the layer's activation to ``(N, h, w, C)`` (static; for token layers).
      batch_size: masked inputs per forward chunk (rows are examples × channels, static);
        ``None`` runs all ``N·C`` at once; ``"auto"`` (default) picks chunks of about 8 MiB of
        forward intermediates on CPU (512 MiB on accelerators), a scan over them
        (:func:`visjax.base.batching.auto_rows`). pytorch-grad-cam's default is 16.
      devices: where the batch runs: ``None`` (default: all of ``jax.local_devices()``; one
        device runs the single-device program), a sequence of devices or a
        :class:`jax.sharding.Mesh`: the examples are split evenly over them, each device
        scoring its share's channels (:mod:`visjax.base.sharding`); the result equals the
        single-device one.

    Returns:
      The raw map ``(N, h, w)`` on the layer's grid (pytorch-grad-cam's ``get_cam_image``: no
      ReLU, scaling or resize).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> score_cam(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3, layer="conv2").shape
      (2, 8, 8)

    References:
      Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
      Networks", CVPR Workshops 2020. https://arxiv.org/abs/1910.01279 (pytorch-grad-cam's
      ``ScoreCAM``: the paper's baseline-subtracted score is the raw target score there and here.)
    """
    model, x, t, target_fn, layer, batch_size = _checked(
        model, x, target, layer, reshape, batch_size, image=True
    )
    return over_devices(
        _score_cam,
        (model, x, t),
        batched=(False, True, True),
        mesh=device_mesh(devices),
        target_fn=target_fn,
        layer=layer,
        reshape=reshape,
        batch_size=batch_size,
    )


def ablation_value(act: jax.Array) -> jax.Array:
    """Per-example ablation value ``(N,)``: 0 when the example's activation has minimum 0
    (post-ReLU), else ``min − 10⁷`` (pytorch-grad-cam's ``AblationLayer``)."""
    lo = act.reshape(act.shape[0], -1).min(1)
    return jnp.where(lo == 0, jnp.zeros_like(lo), lo - ABLATION_OFFSET)


@functools.partial(jax.jit, static_argnames=("target_fn", "layer", "reshape", "batch_size"))
def _ablation_cam(model: Model, x, t, target_fn, layer, reshape, batch_size):
    out, acts = model.run(x, capture=(layer,))
    raw = acts[layer]
    original = jax.vmap(lambda o, ti: select_output(target_fn, o, ti))(out, t)
    value = ablation_value(raw)
    n, c = raw.shape[0], raw.shape[-1]
    ones = (1,) * (raw.ndim - 2)

    def score(e, ch):
        hit = (jnp.arange(c) == ch[:, None]).reshape(-1, *ones, c)
        a = jnp.where(hit, value[e].reshape(-1, *ones, 1), raw[e])
        return scores_from_layer(model, x[e], t[e], target_fn, layer, a)

    ablated = _row_scores(score, n, c, batch_size)
    # A zero score leaves the relative drop undefined: its weights are 0 (pytorch-grad-cam: NaN).
    s = original[:, None]
    weights = jnp.where(s == 0, 0.0, (s - ablated) / jnp.where(s == 0, 1.0, s))
    return jnp.einsum("nhwc,nc->nhw", to_grid(raw, reshape), weights.astype(raw.dtype))


@empty_batch
def ablation_cam(
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: str | None = None,
    reshape: Reshape = None,
    batch_size: int | str | None = "auto",
    devices: Any = None,
) -> jax.Array:
    """Ablation-CAM: channels weighted by the relative drop of the score when each is ablated.

    With ``s`` the target score and ``s_c`` the score with channel ``c`` of the layer set to the
    ablation value (the rest of the network run from the layer on), ``w_c = (s − s_c)/s`` and the
    map is ``M = Σ_c w_c A_c``.

    As pytorch-grad-cam's ``AblationCAM`` with its default ``AblationLayer``: the ablation value
    is 0 when the example's activation has minimum 0, else ``min − 10⁷`` (and there is no
    epsilon in ``/s``; a score ``s = 0`` gives weights 0, where it gives NaN). pytorch-grad-cam
    recomputes that minimum after each row of a batch, so its k-th row of a batch gets
    ``min − k·10⁷``; here every row gets ``min − 10⁷``: identical
    whenever a ReLU follows the layer. The channel is the activation's last axis, also for token
    layers (``reshape`` only arranges the map).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: a batch ``(N, ...)``.
      target: an int class, an int array ``(N,)``, or a callable from one example's output to a
        scalar (static).
      layer: the layer path (static); ``None`` picks the last spatial layer.
      reshape: maps the layer's activation to ``(N, h, w, C)`` (static; for token layers).
      batch_size: ablated activations per forward chunk (rows are examples × channels, static);
        ``None`` runs all ``N·C`` at once; ``"auto"`` (default): chunks as :func:`score_cam`'s.
        pytorch-grad-cam's default is 32.
      devices: where the batch runs: ``None`` (default: all of ``jax.local_devices()``; one
        device runs the single-device program), a sequence of devices or a
        :class:`jax.sharding.Mesh`: the examples are split evenly over them, each device
        scoring its share's channels (:mod:`visjax.base.sharding`); the result equals the
        single-device one.

    Returns:
      The raw map ``(N, h, w)`` on the layer's grid (pytorch-grad-cam's ``get_cam_image``).

    Example:
      >>> import jax.numpy as jnp
      >>> from visjax.zoo import digits_cnn
      >>> ablation_cam(digits_cnn("function"), jnp.ones((2, 8, 8, 1)), 3, layer="conv2").shape
      (2, 8, 8)

    References:
      Desai, Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional Network via
      Gradient-free Localization", WACV 2020.
      https://openaccess.thecvf.com/content_WACV_2020/papers/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.pdf
      (not on arXiv). The network runs on the input with the layer's value replaced; under
      ``jit`` XLA drops the layers before it when nothing else needs them.
    """
    model, x, t, target_fn, layer, batch_size = _checked(
        model, x, target, layer, reshape, batch_size, image=False
    )
    return over_devices(
        _ablation_cam,
        (model, x, t),
        batched=(False, True, True),
        mesh=device_mesh(devices),
        target_fn=target_fn,
        layer=layer,
        reshape=reshape,
        batch_size=batch_size,
    )
