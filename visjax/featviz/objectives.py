"""Objectives of feature visualisation: composable values, as in Lucid.

An :class:`Objective` is a scalar to *maximise*, a function of what one rendering step sees: the
activations of the layers it names (captured through the model interface, so layer paths work the
same on NNX, Linen and plain functions), the model's output, and the images the parameterisation
produced (before the random transforms). Objectives combine with ``+``, ``-``, ``*`` and ``/`` by
numbers (or by other objectives, as Lucid allows), and ``sum(objectives)`` works.

Conventions follow Lucid's ``lucid.optvis.objectives`` (activations NHWC, batch first): ``channel``
and ``neuron`` are batch means, ``class_logit`` sums over the batch, ``layer`` is Lucid's
``deepdream`` (mean of squares), ``direction`` the mean dot product along channels, ``diversity``
the mean pairwise cosine similarity of Gram matrices (a quantity to subtract, as in Lucid's
``channel(...) - 1e2 * diversity(...)``). The regularisers ``l1``, ``l2``, ``total_variation``
and ``blur`` measure the images and are positive: subtract them. Lucent negates every objective
(it minimises); visjax keeps Lucid's signs and maximises.

Channel indices may be traced integers, so ``render`` can vmap one objective over many units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import is_concrete

Activations = Mapping[str, jax.Array]
ObjectiveFn = Callable[[Activations, jax.Array, jax.Array], jax.Array]


class Objective:
    """A scalar to maximise: ``fn(activations, output, images) -> scalar``.

    Attributes:
      fn: the function; ``activations`` maps each name in ``layers`` to its ``(B, ...)`` array,
        ``output`` is the model's output ``(B, ...)`` and ``images`` the parameterisation's
        ``(B, H, W, C)`` images (before transforms).
      layers: the layer paths ``fn`` reads (captured by the renderer).
      name: a readable description.
      units: ``(layer, channel)`` pairs (``layer`` ``None`` for the output) whose channel
        indices the renderer checks against the layer's width before compiling.
    """

    __slots__ = ("fn", "layers", "name", "units")

    def __init__(
        self,
        fn: ObjectiveFn,
        *,
        layers: tuple[str, ...] | frozenset[str] = (),
        name: str = "",
        units: tuple[tuple[str | None, Any], ...] = (),
    ):
        self.fn = fn
        self.layers = frozenset(layers)
        self.name = name
        self.units = tuple(units)

    def __call__(self, activations: Activations, output: Any, images: jax.Array) -> jax.Array:
        """The objective's value."""
        return self.fn(activations, output, images)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def _combine(self, other: Any, op: Callable, symbol: str) -> Objective:
        if isinstance(other, Objective):
            return Objective(
                lambda a, o, i: op(self(a, o, i), other(a, o, i)),
                layers=self.layers | other.layers,
                name=f"({self.name} {symbol} {other.name})",
                units=self.units + other.units,
            )
        if isinstance(other, (int, float, np.number)) or (
            isinstance(other, (jax.Array, np.ndarray)) and np.ndim(other) == 0
        ):
            return Objective(
                lambda a, o, i: op(self(a, o, i), other),
                layers=self.layers,
                name=f"({self.name} {symbol} {_short(other)})",
                units=self.units,
            )
        return NotImplemented

    def _rcombine(self, other: Any, op: Callable, symbol: str) -> Objective:
        if isinstance(other, (int, float, np.number)) or (
            isinstance(other, (jax.Array, np.ndarray)) and np.ndim(other) == 0
        ):
            return Objective(
                lambda a, o, i: op(other, self(a, o, i)),
                layers=self.layers,
                name=f"({_short(other)} {symbol} {self.name})",
                units=self.units,
            )
        return NotImplemented

    def __add__(self, other):
        return self._combine(other, jnp.add, "+")

    def __radd__(self, other):
        return self._rcombine(other, jnp.add, "+")

    def __sub__(self, other):
        return self._combine(other, jnp.subtract, "-")

    def __rsub__(self, other):
        return self._rcombine(other, jnp.subtract, "-")

    def __mul__(self, other):
        return self._combine(other, jnp.multiply, "*")

    def __rmul__(self, other):
        return self._rcombine(other, jnp.multiply, "*")

    def __truediv__(self, other):
        return self._combine(other, jnp.divide, "/")

    def __neg__(self):
        return self._rcombine(-1.0, jnp.multiply, "*")


def _short(x: Any) -> str:
    return f"{float(x):g}" if is_concrete(x) else "c"


def _select(a: jax.Array, batch: int | None) -> jax.Array:
    return a if batch is None else a[batch : batch + 1] if batch >= 0 else a[batch:][:1]


def _check_batch(batch: Any) -> None:
    if batch is not None and not isinstance(batch, (int, np.integer)):
        raise ValueError(
            f"`batch` must be an int index into the image batch or None, got {batch!r}"
        )


def _check_layer(layer: Any) -> None:
    if not isinstance(layer, str) or not layer:
        raise ValueError(f"`layer` must be a non-empty layer path string, got {layer!r}")


def _check_channel(c: Any) -> None:
    if isinstance(c, (bool, np.bool_)) or not (
        isinstance(c, (int, np.integer))
        or (isinstance(c, (jax.Array, np.ndarray)) and jnp.issubdtype(c.dtype, jnp.integer))
    ):
        raise ValueError(f"`channel` must be an int (or a traced int array), got {c!r}")
    if isinstance(c, (int, np.integer)) and c < 0:
        raise ValueError(f"`channel` must be >= 0, got {c}")


def _channel_slice(a: jax.Array, c: Any) -> jax.Array:
    return jnp.take(a, c, axis=-1)


def neuron(
    layer: str,
    channel: Any,
    x: int | None = None,
    y: int | None = None,
    *,
    batch: int | None = None,
) -> Objective:
    """One unit of a channel at one position: ``mean_b A[b, x, y, channel]``.

    ``x`` indexes the first spatial axis (rows) and ``y`` the second, as Lucid; the default is
    the centre, ``size // 2`` (for even sizes the lower right of the central 2x2, as Lucid).

    Args:
      layer: layer path.
      channel: channel index (an int, or a traced int when rendering many units).
      x, y: position; ``None``: the centre.
      batch: optimise only this image of the batch; ``None``: all.

    Returns:
      An :class:`Objective`.

    Example:
      >>> import jax.numpy as jnp
      >>> acts = {"conv": jnp.arange(18.0).reshape(1, 3, 3, 2)}
      >>> float(neuron("conv", 1)(acts, None, None))  # centre (1, 1), channel 1
      9.0

    References:
      Olah, Mordvintsev, Schubert, "Feature Visualization", Distill 2017; Lucid's ``neuron``.
    """
    _check_layer(layer)
    _check_channel(channel)
    _check_batch(batch)

    def fn(acts, output, images):
        a = _select(acts[layer], batch)
        if a.ndim != 4:
            raise ValueError(f"`neuron` needs a spatial (N, H, W, C) layer; {layer!r} is {a.shape}")
        i = a.shape[1] // 2 if x is None else x
        j = a.shape[2] // 2 if y is None else y
        return _channel_slice(a[:, i, j], channel).mean()

    return Objective(
        fn, layers=(layer,), name=f"neuron({layer}, {_name(channel)})", units=((layer, channel),)
    )


def _name(c: Any) -> str:
    return str(int(c)) if isinstance(c, (int, np.integer)) else "unit"


def channel(layer: str, channel: Any, *, batch: int | None = None) -> Objective:
    """A channel's mean activation over positions and images: ``mean A[..., channel]``.

    Works for spatial ``(N, H, W, C)`` and flat ``(N, C)`` layers (then it is one unit).

    Args:
      layer: layer path.
      channel: channel index (an int, or a traced int when rendering many units).
      batch: optimise only this image of the batch; ``None``: all.

    Returns:
      An :class:`Objective`.

    Example:
      >>> import jax.numpy as jnp
      >>> acts = {"conv": jnp.arange(8.0).reshape(1, 2, 2, 2)}
      >>> float(channel("conv", 0)(acts, None, None))
      3.0

    References:
      Olah et al., "Feature Visualization", Distill 2017; Lucid's ``channel``.
    """
    _check_layer(layer)
    _check_channel(channel)
    _check_batch(batch)
    return Objective(
        lambda a, o, i: _channel_slice(_select(a[layer], batch), channel).mean(),
        layers=(layer,),
        name=f"channel({layer}, {_name(channel)})",
        units=((layer, channel),),
    )


def layer(layer: str, *, batch: int | None = None) -> Objective:
    """DeepDream's objective: the mean squared activation of a layer, ``mean A²``.

    Args:
      layer: layer path.
      batch: optimise only this image of the batch; ``None``: all.

    Returns:
      An :class:`Objective` (Lucid's ``deepdream``).

    References:
      Mordvintsev, Olah, Tyka, "Inceptionism: Going Deeper into Neural Networks", 2015.
    """
    _check_layer(layer)
    _check_batch(batch)
    return Objective(
        lambda a, o, i: jnp.mean(_select(a[layer], batch) ** 2),
        layers=(layer,),
        name=f"layer({layer})",
    )


def class_logit(label: Any, *, batch: int | None = None) -> Objective:
    """A class's logit (the model's output column ``label``), summed over the batch (Lucid).

    Args:
      label: class index (an int, or a traced int when rendering many classes).
      batch: optimise only this image of the batch; ``None``: all.

    Returns:
      An :class:`Objective`.

    Example:
      >>> import jax.numpy as jnp
      >>> float(class_logit(2)({}, jnp.array([[0.0, 1.0, 5.0], [0.0, 1.0, 7.0]]), None))
      12.0

    References:
      Simonyan, Vedaldi, Zisserman, "Deep Inside Convolutional Networks", 2014.
    """
    _check_channel(label)
    _check_batch(batch)
    return Objective(
        lambda a, o, i: _channel_slice(_select(o, batch), label).sum(),
        name=f"class_logit({_name(label)})",
        units=((None, label),),
    )


def direction(layer: str, vec: Any, *, batch: int | None = None) -> Objective:
    """A direction in a layer's channel space: the mean over positions of ``⟨A[b, x, y], vec⟩``.

    Args:
      layer: layer path.
      vec: ``(C,)`` direction (not normalised, as Lucid with ``cossim_pow=0``).
      batch: optimise only this image of the batch; ``None``: all.

    Returns:
      An :class:`Objective`.

    References:
      Olah et al., "Feature Visualization", Distill 2017 (directions); Lucid's ``direction``.
    """
    _check_layer(layer)
    _check_batch(batch)
    v = jnp.asarray(vec, jnp.float32)
    if v.ndim != 1 or not np.all(np.isfinite(np.asarray(v))):
        raise ValueError(f"`vec` must be a finite 1-D array (C,), got shape {v.shape}")

    def fn(acts, output, images):
        a = _select(acts[layer], batch)
        if a.shape[-1] != v.shape[0]:
            raise ValueError(
                f"`vec` has {v.shape[0]} entries but layer {layer!r} has {a.shape[-1]} channels"
            )
        return jnp.mean(jnp.sum(a * v, axis=-1))

    return Objective(fn, layers=(layer,), name=f"direction({layer})")


def diversity(layer: str) -> Objective:
    """The similarity of the images' Gram matrices at a layer (subtract it to diversify a batch).

    ``(1/B) Σ_{i≠j} ⟨Ĝ_i, Ĝ_j⟩`` with ``G_i = A_iᵀ A_i`` over positions and ``Ĝ`` its
    Frobenius-normalised form, as Lucid's ``diversity``. Use with a parameterisation of batch
    ``B > 1``: ``channel(layer, c) - 1e2 * diversity(layer)``.

    Args:
      layer: a spatial layer path.

    Returns:
      An :class:`Objective`.

    References:
      Olah et al., "Feature Visualization", Distill 2017 (diversity); Lucid's ``diversity``.
    """
    _check_layer(layer)

    def fn(acts, output, images):
        a = acts[layer]
        flat = a.reshape(a.shape[0], -1, a.shape[-1])
        grams = jnp.einsum("bpc,bpd->bcd", flat, flat)
        norm = jnp.sqrt(jnp.sum(grams**2, axis=(1, 2), keepdims=True))
        grams = grams / jnp.maximum(norm, 1e-10)
        sims = jnp.einsum("icd,jcd->ij", grams, grams)
        return (sims.sum() - jnp.trace(sims)) / a.shape[0]

    return Objective(fn, layers=(layer,), name=f"diversity({layer})")


def l1(constant: float = 0.0) -> Objective:
    """``Σ |images − constant|`` over the batch (a penalty: subtract it). Lucid's ``L1``.

    Args:
      constant: the value the pixels are pulled towards (e.g. 0.5, mid-grey).

    Returns:
      An :class:`Objective` on the images.
    """
    return Objective(lambda a, o, i: jnp.sum(jnp.abs(i - constant)), name="l1")


def l2(constant: float = 0.0, epsilon: float = 1e-6) -> Objective:
    """``sqrt(ε + Σ (images − constant)²)`` (a penalty: subtract it). Lucid's ``L2``.

    Args:
      constant: the value the pixels are pulled towards.
      epsilon: keeps the gradient finite at zero.

    Returns:
      An :class:`Objective` on the images.
    """
    return Objective(lambda a, o, i: jnp.sqrt(epsilon + jnp.sum((i - constant) ** 2)), name="l2")


def total_variation() -> Objective:
    """Total variation ``Σ |x[h+1, w] − x[h, w]| + |x[h, w+1] − x[h, w]|`` of the images.

    As ``tf.image.total_variation`` (Lucid's ``total_variation``), summed over the batch; a
    penalty: subtract it.

    Returns:
      An :class:`Objective` on the images.

    Example:
      >>> import jax.numpy as jnp
      >>> img = jnp.array([[0.0, 1.0], [0.0, 1.0]]).reshape(1, 2, 2, 1)
      >>> float(total_variation()({}, None, img))
      2.0

    References:
      Mahendran and Vedaldi, "Understanding Deep Image Representations by Inverting Them", 2015.
    """

    def fn(acts, output, images):
        dh = jnp.abs(images[:, 1:] - images[:, :-1]).sum()
        dw = jnp.abs(images[:, :, 1:] - images[:, :, :-1]).sum()
        return dh + dw

    return Objective(fn, name="total_variation")


def _blur3(x: jax.Array) -> jax.Array:
    """Lucid's ``_tf_blur``: 3x3 weights (0.5 border, 1 centre) per channel, edge-normalised."""
    k = jnp.full((3, 3), 0.5).at[1, 1].set(1.0)

    def conv(t):
        c = t.shape[-1]
        w = jnp.broadcast_to(k[:, :, None, None], (3, 3, 1, c)).astype(t.dtype)
        return jax.lax.conv_general_dilated(
            t, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c
        )

    return conv(x) / conv(jnp.ones_like(x))


def blur() -> Objective:
    """``½ Σ (images − stop_gradient(blur(images)))²``: a penalty whose gradient blurs each step.

    Subtracting ``k · blur()`` with plain gradient steps is Lucid's
    ``blur_input_each_step``: ``image ← (1 − k) image + k blur(image)`` (Nguyen et al. 2015).

    Returns:
      An :class:`Objective` on the images.

    References:
      Nguyen, Yosinski, Clune, "Innovation Engines", 2015; Lucid's ``blur_input_each_step``.
    """

    def fn(acts, output, images):
        blurred = jax.lax.stop_gradient(_blur3(images))
        return 0.5 * jnp.sum((images - blurred) ** 2)

    return Objective(fn, name="blur")
