"""Random image transforms that make feature visualisations robust (Lucid's ``optvis.transform``).

A transform is a pure function ``(key, images) -> images`` on ``(batch, H, W, C)`` arrays. The
output shape depends only on the input shape, so transforms run under ``jax.jit`` and ``jax.vmap``
(over keys or units), and everything is differentiable with respect to the images. One random draw
applies to the whole batch, as in Lucid. Shape problems (an image too small for a crop) raise a
``ValueError`` naming the transform at trace time; :func:`output_shape` finds them without running
anything.

References:
    Olah, Mordvintsev and Schubert, "Feature Visualization", Distill, 2017.
    https://distill.pub/2017/feature-visualization/ ; Lucid ``lucid/optvis/transform.py``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Transform",
    "compose",
    "jitter",
    "output_shape",
    "pad",
    "random_rotate",
    "random_scale",
    "standard_transforms",
]

Transform = Callable[[jax.Array, jax.Array], jax.Array]
"""A transform: ``(key, images (B, H, W, C)) -> images (B, H', W', C)``."""

PAD_MODES = ("constant", "reflect")


def _images(images: Any, name: str) -> jax.Array:
    x = jnp.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"{name}: `images` must be (batch, H, W, C), got shape {x.shape}")
    return x


def _nonneg_int(value: Any, name: str) -> int:
    if not isinstance(value, bool):
        try:
            out = operator.index(value)
            if out >= 0:
                return out
        except TypeError:
            pass
    raise ValueError(f"`{name}` must be a non-negative int, got {value!r}")


def _choices(values: Sequence[float], name: str, *, positive: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(list(values), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a non-empty list of numbers, got {values!r}") from None
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be a non-empty list of finite numbers, got {values!r}")
    if positive and np.any(arr <= 0):
        raise ValueError(f"`{name}` must be positive, got {values!r}")
    return arr


def _draw(key: jax.Array, values: np.ndarray) -> jax.Array:
    """One of ``values``, uniformly (Lucid's ``_rand_select``)."""
    index = jax.random.randint(key, (), 0, values.size)
    return jnp.asarray(values, jnp.float32)[index]


def _bilinear(images: jax.Array, y: jax.Array, x: jax.Array) -> jax.Array:
    """Sample ``images (B, H, W, C)`` at pixel coordinates ``y, x (H', W')``; zero outside."""
    if not jnp.issubdtype(images.dtype, jnp.floating):
        images = images.astype(jnp.float32)
    h, w = images.shape[1:3]
    y0, x0 = jnp.floor(y), jnp.floor(x)
    wy, wx = (y - y0).astype(images.dtype), (x - x0).astype(images.dtype)
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    out = jnp.zeros((images.shape[0], *y.shape, images.shape[3]), images.dtype)
    for dy, fy in ((0, 1 - wy), (1, wy)):
        for dx, fx in ((0, 1 - wx), (1, wx)):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            values = images[:, jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1), :]
            out = out + values * jnp.where(inside, fy * fx, 0)[None, :, :, None]
    return out


def _grid(h: int, w: int) -> tuple[jax.Array, jax.Array, float, float]:
    """Pixel coordinates relative to the centre ``((H-1)/2, (W-1)/2)``, and the centre."""
    cy, cx = (h - 1) / 2, (w - 1) / 2
    u = jnp.arange(h, dtype=jnp.float32)[:, None] - cy
    v = jnp.arange(w, dtype=jnp.float32)[None, :] - cx
    return u, v, cy, cx


def _tent(p: jax.Array, n: int, dtype: Any) -> jax.Array:
    """The ``(len(p), n)`` matrix ``max(0, 1 − |p_i − k|)``: bilinear weights, zero outside."""
    k = jnp.arange(n, dtype=p.dtype)
    return jnp.maximum(0, 1 - jnp.abs(p[:, None] - k)).astype(dtype)


def _rotation(theta: jax.Array, h: int, w: int) -> tuple[jax.Array, jax.Array]:
    """Where output pixels sample the input: rotation by ``theta`` about the centre."""
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    u, v, cy, cx = _grid(h, w)
    return cy + cos * u + sin * v, cx - sin * u + cos * v


# The gradient of a gather is a scatter-add, slow on XLA:CPU (10x the forward). A rotation is an
# isometry, so the output pixels whose samples touch input pixel (k, l) lie in the 4x4 block
# around the inverse image of (k, l): the backward is a 16-tap gather instead. custom_vjp rules
# out forward-mode (jax.jvp) through random_rotate; reverse mode, jit and vmap work.
@jax.custom_vjp
def _rotate(images: jax.Array, theta: jax.Array) -> jax.Array:
    return _bilinear(images, *_rotation(theta, *images.shape[1:3]))


def _rotate_fwd(images: jax.Array, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _rotate(images, theta), theta


def _rotate_bwd(theta: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    h, w = g.shape[1:3]
    y, x = _rotation(-theta, h, w)  # (fractional) output pixel that samples each input pixel
    i0, j0 = jnp.floor(y).astype(jnp.int32), jnp.floor(x).astype(jnp.int32)
    rows = jnp.arange(h, dtype=y.dtype)[:, None]
    cols = jnp.arange(w, dtype=x.dtype)[None, :]
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    out = jnp.zeros_like(g)
    for di in range(-1, 3):  # |sample − (k, l)| < 1 per axis ⇒ |i − y| < |cos| + |sin| ≤ √2
        i = i0 + di
        for dj in range(-1, 3):
            j = j0 + dj
            u, v = i.astype(y.dtype) - cy, j.astype(x.dtype) - cx
            weight = jnp.maximum(0, 1 - jnp.abs(cy + cos * u + sin * v - rows)) * jnp.maximum(
                0, 1 - jnp.abs(cx - sin * u + cos * v - cols)
            )
            inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
            values = g[:, jnp.clip(i, 0, h - 1), jnp.clip(j, 0, w - 1), :]
            out = out + values * jnp.where(inside, weight, 0).astype(g.dtype)[None, :, :, None]
    return out, jnp.zeros_like(theta)


_rotate.defvjp(_rotate_fwd, _rotate_bwd)


def pad(
    width: int, *, mode: Literal["constant", "reflect"] = "constant", value: float | str = 0.5
) -> Transform:
    """Pad ``width`` pixels on every side of the image (Lucid's ``pad``).

    Lucid's default mode is ``"REFLECT"``; its ``standard_transforms`` use constant 0.5, which is
    the default here.

    Args:
        width: pixels added on each side, static.
        mode: ``"constant"`` or ``"reflect"`` (mirror without repeating the edge; needs
            ``width < H`` and ``width < W``).
        value: the constant, or ``"uniform"`` for one value drawn from U(0, 1) per call (Lucid's
            ``constant_value="uniform"``).

    Returns:
        A transform ``(B, H, W, C) -> (B, H + 2 width, W + 2 width, C)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> pad(2)(jax.random.key(0), jnp.zeros((1, 4, 4, 3))).shape
        (1, 8, 8, 3)

    References:
        Olah et al., "Feature Visualization", Distill, 2017; Lucid ``optvis/transform.py``.
    """
    width = _nonneg_int(width, "width")
    if mode not in PAD_MODES:
        raise ValueError(f"`mode` must be one of {PAD_MODES}, got {mode!r}")
    if value != "uniform" and (isinstance(value, str) or not np.isfinite(value)):
        raise ValueError(f"`value` must be a finite number or 'uniform', got {value!r}")
    name = f"pad({width})"
    widths = ((0, 0), (width, width), (width, width), (0, 0))

    def transform(key: jax.Array, images: jax.Array) -> jax.Array:
        x = _images(images, name)
        if mode == "reflect":
            if width >= min(x.shape[1:3]):
                raise ValueError(
                    f"{name} in reflect mode needs images larger than {width} pixels, got "
                    f"{x.shape[1]}x{x.shape[2]}"
                )
            return jnp.pad(x, widths, mode="reflect")
        fill = jax.random.uniform(key, (), x.dtype) if value == "uniform" else value
        return jnp.pad(x, widths, constant_values=jnp.asarray(fill, x.dtype))

    return transform


def jitter(d: int) -> Transform:
    """A random crop that removes ``d`` rows and ``d`` columns (Lucid's ``jitter``).

    The offset is drawn uniformly from ``0..d`` in each direction, as TensorFlow's
    ``random_crop``. Lucent instead translates the image by ``0..d-1`` pixels, keeping its size.

    Args:
        d: pixels removed along each spatial axis, static.

    Returns:
        A transform ``(B, H, W, C) -> (B, H - d, W - d, C)``; it raises ``ValueError`` if
        ``H <= d`` or ``W <= d``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> jitter(2)(jax.random.key(0), jnp.zeros((1, 8, 8, 3))).shape
        (1, 6, 6, 3)

    References:
        Olah et al., "Feature Visualization", Distill, 2017; Lucid ``optvis/transform.py``.
    """
    d = _nonneg_int(d, "d")
    name = f"jitter({d})"

    def transform(key: jax.Array, images: jax.Array) -> jax.Array:
        x = _images(images, name)
        b, h, w, c = x.shape
        if h <= d or w <= d:
            raise ValueError(f"{name} needs images larger than {d}x{d} pixels, got {h}x{w}")
        oy, ox = jax.random.randint(key, (2,), 0, d + 1)
        zero = jnp.zeros((), oy.dtype)
        return jax.lax.dynamic_slice(x, (zero, oy, ox, zero), (b, h - d, w - d, c))

    return transform


def random_scale(scales: Sequence[float]) -> Transform:
    """Zoom about the image centre by a factor drawn from ``scales`` (Lucid's ``random_scale``).

    Output pixel ``i`` samples the input at ``c + (i − c) / s`` (``c`` the centre) with bilinear
    interpolation and zeros outside the image, so the size stays fixed (static shapes). Lucid
    instead resizes the image to ``int(s · H) × int(s · W)`` (and Lucent pads a shrunk image with
    zeros), so later crops see a different field of view; the zoom of the content is the same.

    The zoom is separable, so it runs as two small matrix products ``R_y · x · R_xᵀ`` with
    ``R[i, k] = max(0, 1 − |c + (i − c)/s − k|)``; its gradient is matrix products too, where a
    gather's would be a scatter (slow on XLA:CPU).

    Args:
        scales: positive factors (>1 zooms in), each drawn with equal probability.

    Returns:
        A transform that keeps the shape.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.ones((1, 4, 4, 1))
        >>> bool((random_scale([1.0])(jax.random.key(0), x) == x).all())
        True

    References:
        Olah et al., "Feature Visualization", Distill, 2017; Lucid ``optvis/transform.py``.
    """
    values = _choices(scales, "scales", positive=True)
    name = "random_scale"

    def transform(key: jax.Array, images: jax.Array) -> jax.Array:
        x = _images(images, name)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        s = _draw(key, values)
        u, v, cy, cx = _grid(*x.shape[1:3])
        rows, cols = _tent(cy + u[:, 0] / s, u.size, x.dtype), _tent(cx + v[0] / s, v.size, x.dtype)
        exact = jax.lax.Precision.HIGHEST
        x = jnp.einsum("ik,bklc->bilc", rows, x, precision=exact)
        return jnp.einsum("jl,bilc->bijc", cols, x, precision=exact)

    return transform


def random_rotate(angles: Sequence[float]) -> Transform:
    """Rotate about the image centre by an angle in degrees drawn from ``angles``.

    Counter-clockwise as displayed (row 0 at the top), about ``((H−1)/2, (W−1)/2)`` as
    ``tfa.image.rotate`` (Lucid) and kornia (Lucent), with zeros outside the image. Differences:
    Lucid converts degrees with π ≈ 3.14 and samples the nearest pixel; this uses exact π and
    bilinear interpolation, as Lucent.

    The gradient with respect to the images is a custom rule (a gather of the cotangent rather
    than the scatter-add JAX would derive, several times faster on XLA:CPU), so reverse mode,
    ``jit`` and ``vmap`` work but forward mode (``jax.jvp``, ``jax.jacfwd``) does not.

    Args:
        angles: angles in degrees, each drawn with equal probability.

    Returns:
        A transform that keeps the shape.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.arange(4.0).reshape(1, 2, 2, 1)
        >>> random_rotate([90])(jax.random.key(0), x)[0, :, :, 0].round(4).tolist()
        [[1.0, 3.0], [0.0, 2.0]]

    References:
        Olah et al., "Feature Visualization", Distill, 2017; Lucid ``optvis/transform.py``.
    """
    values = _choices(angles, "angles") * (math.pi / 180)
    name = "random_rotate"

    def transform(key: jax.Array, images: jax.Array) -> jax.Array:
        x = _images(images, name)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        return _rotate(x, _draw(key, values))

    return transform


def compose(*transforms: Transform) -> Transform:
    """Apply ``transforms`` in order, each with its own key split from the one given.

    Args:
        *transforms: transforms ``(key, images) -> images``; none gives the identity.

    Returns:
        A transform.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> t = compose(pad(2), jitter(4))
        >>> t(jax.random.key(0), jnp.zeros((1, 8, 8, 3))).shape
        (1, 8, 8, 3)

    References:
        Olah et al., "Feature Visualization", Distill, 2017; Lucid ``optvis/transform.py``.
    """
    for i, t in enumerate(transforms):
        if not callable(t):
            raise TypeError(
                f"`transforms[{i}]` must be a transform (key, images) -> images, got {t!r}; "
                "pass them as compose(*transforms)"
            )

    def transform(key: jax.Array, images: jax.Array) -> jax.Array:
        if not transforms:
            return images
        for k, t in zip(jax.random.split(key, len(transforms)), transforms, strict=True):
            images = t(k, images)
        return images

    return transform


def standard_transforms() -> Transform:
    """Lucid's ``standard_transforms`` preset, composed into one transform.

    ``pad(12, constant 0.5)``, ``jitter(8)``, ``random_scale([1 + (i − 5)/50 for i in range(11)])``,
    ``random_rotate(list(range(−10, 11)) + 5 · [0])``, ``jitter(4)``: an image of ``H × W`` comes
    out ``(H + 12) × (W + 12)`` here (scale keeps the size; in Lucid it changes it).

    Returns:
        A transform; extend it with ``compose(standard_transforms(), more)``.

    Example:
        >>> output_shape(standard_transforms(), (128, 128, 3))
        (140, 140, 3)

    References:
        Olah et al., "Feature Visualization", Distill, 2017; Lucid ``optvis/transform.py``.
    """
    return compose(
        pad(12, mode="constant", value=0.5),
        jitter(8),
        random_scale([1 + (i - 5) / 50 for i in range(11)]),
        random_rotate(list(range(-10, 11)) + 5 * [0]),
        jitter(4),
    )


def output_shape(transform: Transform, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The ``(H', W', C')`` a transform gives for images of ``shape``, by abstract evaluation.

    Nothing is compiled or run; a transform that cannot take ``shape`` raises its ``ValueError``.

    Args:
        transform: a transform ``(key, images) -> images``.
        shape: the input ``(H, W, C)``.

    Returns:
        The output ``(H', W', C')``.

    Example:
        >>> output_shape(jitter(8), (32, 32, 3))
        (24, 24, 3)

    References:
        Olah et al., "Feature Visualization", Distill, 2017.
    """
    if (
        not isinstance(shape, tuple | list)
        or len(shape) != 3
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in shape)
        or min(shape) < 1
    ):
        raise ValueError(f"`shape` must be (H, W, C), three positive ints, got {shape!r}")
    spec = jax.ShapeDtypeStruct((1, *(int(s) for s in shape)), jnp.float32)
    out = jax.eval_shape(lambda x: transform(jax.random.key(0), x), spec)
    if len(out.shape) != 4 or out.shape[0] != 1:
        raise ValueError(f"`transform` must map (1, H, W, C) to (1, H', W', C'), got {out.shape}")
    return tuple(out.shape[1:])
