"""Image parameterisations for feature visualisation: pixels, a Fourier basis, decorrelated colour.

A parameterisation is a :class:`Param`: ``init(key)`` draws the parameters of one unit's images,
``image(params)`` maps them to images ``(batch, H, W, C)`` in the valid range ``[0, 1]`` and
``inverse(images)`` goes back. All three are pure, so a renderer can ``jax.vmap`` over units and
``jax.grad`` through ``image``.

The conventions are Lucid's (``lucid.optvis.param``: ``pixel_image``, ``fft_image``,
``to_valid_rgb``), which Lucent ports to PyTorch: an image is ``valid(decorrelate(t))`` where ``t``
is either the raw pixels or the inverse real FFT of a frequency-scaled spectrum, ``decorrelate``
multiplies the channel axis by the normalised square root of ImageNet's colour correlation, and
``valid`` is a sigmoid or a clip into ``[0, 1]``.

References:
    Olah, Mordvintsev and Schubert, "Feature Visualization", Distill, 2017.
    https://distill.pub/2017/feature-visualization/ ; Lucid: https://github.com/tensorflow/lucid
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from visjax.base.checks import check_positive_int

__all__ = [
    "LUCID_COLOR_CORRELATION",
    "LUCID_COLOR_CORRELATION_NORMALIZED",
    "LUCID_COLOR_MEAN",
    "Param",
    "color_correlation",
    "fourier",
    "pixel",
]

Valid = Literal["sigmoid", "clip"]
VALID = ("sigmoid", "clip")
_HIGHEST = jax.lax.Precision.HIGHEST

#: Lucid's ``color_correlation_svd_sqrt``: ``U sqrt(S)`` of ImageNet's RGB covariance.
LUCID_COLOR_CORRELATION = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
#: The matrix as Lucid applies it: divided by its largest column norm.
LUCID_COLOR_CORRELATION_NORMALIZED = LUCID_COLOR_CORRELATION / np.max(
    np.linalg.norm(LUCID_COLOR_CORRELATION, axis=0)
)
#: Lucid's ``color_mean``, added before clipping when colours are decorrelated.
LUCID_COLOR_MEAN = np.asarray([0.48, 0.46, 0.41], dtype=np.float32)
for _a in (LUCID_COLOR_CORRELATION, LUCID_COLOR_CORRELATION_NORMALIZED, LUCID_COLOR_MEAN):
    _a.flags.writeable = False


class Param(NamedTuple):
    """An image parameterisation: pure functions between parameters and images of one unit.

    Attributes:
        init: ``key -> params``, a parameter pytree for one unit (vmap it over keys for many).
        image: ``params -> images``, ``(batch, H, W, C)`` floats in ``[0, 1]``; differentiable.
        inverse: ``images (batch, H, W, C) -> params`` with ``image(inverse(x)) == x`` (to float
            precision) for ``x`` strictly inside ``(0, 1)``.
        shape: ``(H, W, C)``.
        batch: the number of images per unit.

    Example:
        >>> import jax
        >>> p = pixel((4, 4, 3))
        >>> p.image(p.init(jax.random.key(0))).shape
        (1, 4, 4, 3)

    References:
        Olah et al., "Feature Visualization", Distill, 2017; Lucid ``lucid.optvis.param``.
    """

    init: Callable[[jax.Array], Any]
    image: Callable[[Any], jax.Array]
    inverse: Callable[[jax.Array], Any]
    shape: tuple[int, int, int]
    batch: int


def _check_shape(shape: Any) -> tuple[int, int, int]:
    if not isinstance(shape, tuple | list) or len(shape) != 3:
        raise ValueError(f"`shape` must be (H, W, C), three positive ints, got {shape!r}")
    try:
        return tuple(check_positive_int(s, "shape") for s in shape)  # type: ignore[return-value]
    except ValueError:
        raise ValueError(f"`shape` must be (H, W, C), three positive ints, got {shape!r}") from None


@jax.custom_vjp
def _clip_unit(t: jax.Array) -> jax.Array:
    return jnp.clip(t, 0.0, 1.0)


def _clip_fwd(t):
    return jnp.clip(t, 0.0, 1.0), None


def _clip_bwd(_, g):
    # Straight-through: see the note on ``valid="clip"`` in ``pixel``.
    return (g,)


_clip_unit.defvjp(_clip_fwd, _clip_bwd)


def _color(c: int, decorrelate: bool, color_matrix: ArrayLike | None, valid: str):
    """``(to_valid, from_valid)`` on arrays whose last axis holds the ``c`` channels."""
    if valid not in VALID:
        raise ValueError(f"`valid` must be one of {VALID}, got {valid!r}")
    if color_matrix is not None:
        m = np.asarray(color_matrix, dtype=np.float64)
        if m.shape != (c, c):
            raise ValueError(
                f"`color_matrix` must be a (C, C) = ({c}, {c}) array, got shape {m.shape}"
            )
        if not np.all(np.isfinite(m)) or np.linalg.matrix_rank(m) < c:
            raise ValueError("`color_matrix` must be finite and invertible")
    elif c == 3:
        m = LUCID_COLOR_CORRELATION.astype(np.float64)
    else:
        m = np.eye(c)
    m = m / np.max(np.linalg.norm(m, axis=0))
    mix = jnp.asarray(m.T, jnp.float32)
    unmix = jnp.asarray(np.linalg.inv(m.T), jnp.float32)
    mean = jnp.asarray(LUCID_COLOR_MEAN if c == 3 else np.full(c, 0.5), jnp.float32)
    add_mean = decorrelate and valid == "clip"

    def to_valid(t):
        if decorrelate:
            t = jnp.matmul(t, mix, precision=_HIGHEST)
        if add_mean:
            t = t + mean
        return jax.nn.sigmoid(t) if valid == "sigmoid" else _clip_unit(t)

    def from_valid(x):
        t = jnp.log(x) - jnp.log1p(-x) if valid == "sigmoid" else x
        if add_mean:
            t = t - mean
        if decorrelate:
            t = jnp.matmul(t, unmix, precision=_HIGHEST)
        return t

    return to_valid, from_valid


def _check_images(images: ArrayLike, batch: int, shape: tuple[int, int, int]) -> jax.Array:
    x = jnp.asarray(images, jnp.float32)
    if x.shape != (batch, *shape):
        raise ValueError(f"`images` must have shape {(batch, *shape)}, got {x.shape}")
    return x


def pixel(
    shape: tuple[int, int, int],
    *,
    batch: int = 1,
    sd: ArrayLike = 0.01,
    decorrelate: bool = False,
    color_matrix: ArrayLike | None = None,
    valid: Valid = "sigmoid",
) -> Param:
    """The naive parameterisation: one free value per pixel and channel (Lucid's ``pixel_image``).

    ``image(t) = valid(decorrelate(t))`` with ``t ~ N(0, sd²)`` of shape ``(batch, H, W, C)``.

    Colour (shared with :func:`fourier`, as Lucid's ``to_valid_rgb``):

    * ``decorrelate=True`` maps channels by ``t @ M.T`` with ``M`` the colour matrix divided by its
      largest column norm. ``M`` is ``color_matrix`` if given, else Lucid's
      :data:`LUCID_COLOR_CORRELATION` for ``C == 3`` and the identity for any other ``C`` (so
      grey-scale or 4-channel images work; Lucid's alpha handling is
      ``color_matrix=block_diag(LUCID_COLOR_CORRELATION_NORMALIZED, 1)``).
    * ``valid="sigmoid"`` (Lucid's default) applies a sigmoid. ``valid="clip"`` is Lucid's
      ``constrain_L_inf(2t − 1)/2 + 0.5``, i.e. ``clip(t, 0, 1)``, and, only when ``decorrelate``,
      Lucid first adds its ``color_mean`` (:data:`LUCID_COLOR_MEAN`; 0.5 per channel for
      ``C != 3``). Its gradient is straight-through (the identity). Lucid's custom gradient also
      zeroes a component at the edge when ``t · cotangent > 0``; whether that blocks moving out or
      back in depends on whether the caller ascends an objective or descends a loss (under
      Lucid's own ``minimize(-objective)`` it blocks the way back in), so it is left out here.

    Args:
        shape: ``(H, W, C)``, static.
        batch: images per unit, static.
        sd: standard deviation of the initial parameters.
        decorrelate: read the channels as decorrelated colour, static.
        color_matrix: a ``(C, C)`` square-root colour correlation (see :func:`color_correlation`),
            normalised as above; must be invertible.
        valid: ``"sigmoid"`` or ``"clip"``, static.

    Returns:
        A :class:`Param` whose parameters are one array ``(batch, H, W, C)``.

    Example:
        >>> import jax
        >>> p = pixel((8, 8, 1), batch=2, valid="clip")
        >>> x = p.image(p.init(jax.random.key(0)))
        >>> x.shape, bool((x >= 0).all() & (x <= 1).all())
        ((2, 8, 8, 1), True)

    References:
        Olah, Mordvintsev and Schubert, "Feature Visualization", Distill, 2017;
        Lucid ``lucid/optvis/param/spatial.py`` and ``color.py``.
    """
    shape = _check_shape(shape)
    batch = check_positive_int(batch, "batch")
    to_valid, from_valid = _color(shape[2], decorrelate, color_matrix, valid)

    def init(key: jax.Array) -> jax.Array:
        return jnp.asarray(sd, jnp.float32) * jax.random.normal(key, (batch, *shape), jnp.float32)

    def image(params: jax.Array) -> jax.Array:
        return to_valid(params)

    def inverse(images: ArrayLike) -> jax.Array:
        return from_valid(_check_images(images, batch, shape))

    return Param(init, image, inverse, shape, batch)


def _fft_freqs(h: int, w: int) -> tuple[np.ndarray, int]:
    """Lucid's ``rfft2d_freqs`` and the width the inverse FFT produces before cropping."""
    wf = w // 2 + 1 + w % 2  # an odd width keeps one extra frequency, cropped away afterwards
    fx = np.abs(np.fft.fftfreq(w))[:wf]
    if fx.size < wf:  # w == 1, where Lucid fails; any value works for the cropped column
        fx = np.append(fx, 0.5)
    fy = np.fft.fftfreq(h)[:, None]
    return np.sqrt(fx * fx + fy * fy), 2 * (wf - 1)


def fourier(
    shape: tuple[int, int, int],
    *,
    batch: int = 1,
    sd: ArrayLike = 0.01,
    decay_power: ArrayLike = 1.0,
    decorrelate: bool = True,
    color_matrix: ArrayLike | None = None,
    valid: Valid = "sigmoid",
) -> Param:
    """Images as a real-FFT spectrum scaled towards low frequencies (Lucid's ``fft_image``).

    The parameters are the real and imaginary parts of a spectrum ``s ~ N(0, sd²)`` over Lucid's
    frequencies ``f`` (``rfft2d_freqs``); the image is
    ``valid(decorrelate(irfft2(s · √(HW) / max(f, 1/max(H, W))^decay_power) / 4))``, where
    ``irfft2`` is the unnormalised inverse real FFT (TensorFlow's ``irfft2d``, so the ``√(HW)``
    makes the map roughly unitary), cropped to ``(H, W)``. For odd ``W`` Lucid keeps one extra
    frequency column and crops the last pixel column, and so does this (Lucent instead drops the
    extra column with ``irfftn(..., s=(H, W))``, so its odd-width images differ slightly). Colour
    and ``valid`` are as in :func:`pixel`, but ``decorrelate`` defaults to True, as in Lucid's
    ``image``.

    Args:
        shape: ``(H, W, C)``, static; any positive sizes.
        batch: images per unit, static.
        sd: standard deviation of the initial spectrum.
        decay_power: how fast the scale falls with frequency (1 in Lucid).
        decorrelate: read the channels as decorrelated colour, static.
        color_matrix: a ``(C, C)`` colour matrix, as in :func:`pixel`.
        valid: ``"sigmoid"`` or ``"clip"``, static.

    Returns:
        A :class:`Param` whose parameters are one array ``(2, batch, C, H, W_f)`` (real and
        imaginary parts; Lucid's layout), ``W_f = W // 2 + 1 + W % 2``.

    Example:
        >>> import jax
        >>> p = fourier((7, 9, 3), batch=2)
        >>> p.init(jax.random.key(0)).shape, p.image(p.init(jax.random.key(0))).shape
        ((2, 2, 3, 7, 6), (2, 7, 9, 3))

    References:
        Olah, Mordvintsev and Schubert, "Feature Visualization", Distill, 2017;
        Mordvintsev et al., "Differentiable Image Parameterizations", Distill, 2018;
        Lucid ``lucid/optvis/param/spatial.py``.
    """
    shape = _check_shape(shape)
    batch = check_positive_int(batch, "batch")
    h, w, c = shape
    to_valid, from_valid = _color(c, decorrelate, color_matrix, valid)
    freqs, wn = _fft_freqs(h, w)
    floor = 1.0 / max(h, w)

    def scale() -> jax.Array:
        f = jnp.maximum(jnp.asarray(freqs, jnp.float32), floor)
        return f ** (-jnp.asarray(decay_power, jnp.float32)) * np.float32(np.sqrt(w * h))

    def init(key: jax.Array) -> jax.Array:
        draw = jax.random.normal(key, (2, batch, c, *freqs.shape), jnp.float32)
        return jnp.asarray(sd, jnp.float32) * draw

    def image(params: jax.Array) -> jax.Array:
        spectrum = jax.lax.complex(params[0], params[1]) * scale()
        t = jnp.fft.irfft2(spectrum, s=(h, wn))[..., :h, :w] / 4.0
        return to_valid(jnp.moveaxis(t, 1, -1))

    def inverse(images: ArrayLike) -> jax.Array:
        t = jnp.moveaxis(from_valid(_check_images(images, batch, shape)) * 4.0, -1, 1)
        if wn > w:
            t = jnp.pad(t, ((0, 0), (0, 0), (0, 0), (0, wn - w)), mode="edge")
        spectrum = jnp.fft.rfft2(t, s=(h, wn)) / scale()
        return jnp.stack([spectrum.real, spectrum.imag])

    return Param(init, image, inverse, shape, batch)


def color_correlation(images: ArrayLike) -> jax.Array:
    """The square-root colour correlation of a dataset, in Lucid's convention.

    With ``Σ = U S Uᵀ`` the channel covariance of all pixels, returns ``U √S`` (so that
    ``A Aᵀ = Σ``), columns ordered by decreasing variance and signed so that the first row is
    non-negative, which reproduces the signs of :data:`LUCID_COLOR_CORRELATION` (Lucid's matrix
    from ImageNet pixels in ``[0, 1]``). Pass it to :func:`pixel` or :func:`fourier` as
    ``color_matrix``.

    Args:
        images: ``(N, H, W, C)`` (any shape whose last axis is the channel), at least two pixels.

    Returns:
        A ``(C, C)`` float32 array.

    Example:
        >>> import jax
        >>> x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3))
        >>> color_correlation(x).shape
        (3, 3)

    References:
        Olah, Mordvintsev and Schubert, "Feature Visualization", Distill, 2017 (decorrelated
        colour); Lucid ``lucid/optvis/param/color.py``.
    """
    x = jnp.asarray(images, jnp.float32)
    if x.ndim < 2:
        raise ValueError(f"`images` must be (N, H, W, C), got shape {x.shape}")
    flat = x.reshape(-1, x.shape[-1])
    if flat.shape[0] < 2:
        raise ValueError(f"`images` must hold at least two pixels, got shape {x.shape}")
    centred = flat - flat.mean(axis=0)
    cov = jnp.matmul(centred.T, centred, precision=_HIGHEST) / (flat.shape[0] - 1)
    evals, evecs = jnp.linalg.eigh(cov)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    root = evecs * jnp.sqrt(jnp.maximum(evals, 0.0))
    return root * jnp.where(root[0] < 0, -1.0, 1.0)
