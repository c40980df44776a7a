"""DeepDream: gradient ascent on a layer's activations, starting from a photograph.

Mordvintsev, Olah, Tyka, "Inceptionism: Going Deeper into Neural Networks" (Google Research
blog, 2015), as in their ``deepdream.ipynb`` notebook: the image is split into an octave pyramid;
from the smallest octave to the full size, normalised gradient ascent steps (each at a random
shift of the image) amplify what the layer sees, and the high-frequency detail lost by shrinking
is added back when moving up an octave.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_positive_int
from visjax.base.progress import progress_bar, resolve_progress
from visjax.model import Model, as_model


def _objective(model: Model, img: jax.Array, layer: str) -> jax.Array:
    """Lucid's ``deepdream`` objective: the mean of the squared activations of ``layer``."""
    act = model.activations(img[None], layer)[1][layer]
    return jnp.mean(jnp.square(act))


@functools.partial(jax.jit, static_argnames=("layer", "jitter"))
def _step(model, img, key, step_size, layer, jitter):
    shift = jax.random.randint(key, (2,), -jitter, jitter + 1)

    def rolled(im):
        return _objective(model, jnp.roll(im, (shift[0], shift[1]), axis=(0, 1)), layer)

    value, g = jax.value_and_grad(rolled)(img)
    g = g / (jnp.mean(jnp.abs(g)) + 1e-8)
    return jnp.clip(img + step_size * g, 0.0, 1.0), value


@functools.partial(jax.jit, static_argnames=("shape",))
def _resize(img, shape):
    return jax.image.resize(img, shape, method="linear")


def _check_float(value: Any, name: str, *, low: float, strict: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < low or (strict and v == low):
        op = ">" if strict else ">="
        raise ValueError(f"`{name}` must be a finite number {op} {low}, got {value!r}")
    return v


def octave_shapes(
    shape: tuple[int, int], octaves: int, octave_scale: float
) -> list[tuple[int, int]]:
    """The ``(H, W)`` of each octave, smallest first, as the DeepDream notebook computes them.

    Each octave is the next larger one divided by ``octave_scale`` and rounded down.

    Args:
      shape: the full ``(H, W)``.
      octaves: the number of octaves (the full size included).
      octave_scale: the size ratio between neighbouring octaves.

    Returns:
      ``octaves`` sizes, the last one ``shape``.

    Raises:
      ValueError: an octave would be smaller than 1 pixel.

    Example:
      >>> octave_shapes((48, 48), 4, 1.4)
      [(17, 17), (24, 24), (34, 34), (48, 48)]
    """
    shapes = [(int(shape[0]), int(shape[1]))]
    for _ in range(octaves - 1):
        h, w = shapes[-1]
        shapes.append(
            (
                int(np.float32(h) / np.float32(octave_scale)),
                int(np.float32(w) / np.float32(octave_scale)),
            )
        )
    if min(min(s) for s in shapes) < 1:
        raise ValueError(
            f"`octaves`={octaves} at `octave_scale`={octave_scale} shrinks an image of size "
            f"{tuple(shape)} below 1 pixel; use fewer octaves or a smaller scale"
        )
    return shapes[::-1]


def deepdream(
    model: Any,
    x: Any,
    *,
    layer: str,
    octaves: int = 4,
    octave_scale: float = 1.4,
    n_steps: int = 10,
    step_size: float = 0.01,
    jitter: int = 2,
    key: jax.Array,
    progress: bool | str = "auto",
) -> jax.Array:
    """DeepDream: amplify what ``layer`` sees in the image ``x`` by gradient ascent over octaves.

    The objective is Lucid's ``deepdream``, ``L(x) = mean(a_layer(x)²)`` over the layer's
    activation. The image is decomposed into ``octaves`` sizes (:func:`octave_shapes`), keeping
    at each level the detail ``x_o − resize(x_{o−1}, size_o)``. From the smallest octave up, the
    detail of the octave is added back to the upsampled result (``jax.image.resize``, linear) and
    ``n_steps`` updates

    ``x ← clip(x + step_size · g / mean|g|, 0, 1)``,  ``g = ∇ L(roll(x, s))``

    are taken, with a random shift ``s`` in ``[−jitter, jitter]²`` per step (the notebook's
    random tile shift). Each step is one jitted call, compiled once per octave size; the steps
    are driven from Python, which measured faster than a ``fori_loop`` of gradient steps on
    XLA:CPU.

    The model must accept images of every octave size (a fully convolutional network, or one
    with global pooling, built with ``input_shape=(None, None, C)``).

    Args:
      model: anything :func:`visjax.as_model` accepts.
      x: the image, ``(H, W, C)`` values in [0, 1], ``C`` the model's input channels.
      layer: the layer path whose activations to amplify (static).
      octaves: number of octaves, ``>= 1`` (1: the full size only).
      octave_scale: size ratio between octaves, ``>= 1``.
      n_steps: gradient steps per octave, ``>= 1``.
      step_size: step length in units of the mean absolute gradient, ``> 0``.
      jitter: largest random shift in pixels, ``>= 0`` (static).
      key: a PRNG key for the shifts.
      progress: a bar over the ``octaves * n_steps`` steps: ``"auto"`` (default) when standard
        error is a terminal, ``True``/``False`` force it.

    Returns:
      The dreamed image, ``(H, W, C)`` float32 in [0, 1].

    Raises:
      ValueError: an unknown layer; ``x`` not 3-D, with NaN/Inf or values outside [0, 1];
        a model that does not accept the image's shape; bad ``octaves``, ``octave_scale``,
        ``n_steps``, ``step_size`` or ``jitter``; all checked before anything compiles.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from visjax import as_model
      >>> from visjax.zoo import cnn
      >>> m = as_model(cnn.apply, cnn.init_params(jax.random.key(0)), input_shape=(None, None, 1))
      >>> img = jnp.full((12, 12, 1), 0.5)
      >>> deepdream(m, img, layer="conv2", octaves=2, n_steps=2, key=jax.random.key(0)).shape
      (12, 12, 1)

    References:
      Mordvintsev, Olah, Tyka, "Inceptionism: Going Deeper into Neural Networks", Google
      Research blog, 2015; the ``deepdream.ipynb`` notebook (tensorflow/examples); Lucid's
      ``objectives.deepdream``. The notebook adds raw-pixel steps of 1.5 to images in
      [0, 255] and does not clip; here images stay in [0, 1] (``step_size=0.01`` is about the
      same step relative to the range), and the random shift is a roll of the whole image
      rather than of the tiling.
    """
    octaves = check_positive_int(octaves, "octaves", 1)
    n_steps = check_positive_int(n_steps, "n_steps", 1)
    jitter = check_positive_int(jitter, "jitter", 0)
    octave_scale = _check_float(octave_scale, "octave_scale", low=1.0, strict=False)
    step_size = _check_float(step_size, "step_size", low=0.0, strict=True)
    show = resolve_progress(progress)
    if key is None:
        raise ValueError("`key` is required: DeepDream draws random shifts (jax.random.key(...))")
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a layer path string, got {type(layer).__name__}")
    model = as_model(model)
    try:
        img = jnp.asarray(x, jnp.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"`x` must be an array, got {type(x).__name__}") from e
    if img.ndim != 3:
        raise ValueError(f"`x` must be (H, W, C), got shape {tuple(img.shape)}")
    if not bool(jnp.isfinite(img).all()):
        raise ValueError("`x` holds NaN or Inf values")
    if float(img.min()) < 0.0 or float(img.max()) > 1.0:
        raise ValueError(
            f"`x` values must lie in [0, 1], got [{float(img.min())}, {float(img.max())}]"
        )
    shapes = octave_shapes(img.shape[:2], octaves, octave_scale)
    for h, w in shapes:
        try:
            layer_shapes = model.layer_shapes(jnp.zeros((1, h, w, img.shape[2]), jnp.float32))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"the model does not accept `x` at octave size {(h, w)}: {e} (build it with "
                "`input_shape=(None, None, C)` for any spatial size)"
            ) from None
        if layer not in layer_shapes:
            raise ValueError(
                f"`layer` {layer!r} is not a layer of the model; known: {list(layer_shapes)}"
            )

    c = img.shape[2]
    pyramid = [img]
    for h, w in shapes[-2::-1]:
        pyramid.append(_resize(pyramid[-1], (h, w, c)))
    pyramid = pyramid[::-1]
    step_size_arr = jnp.float32(step_size)
    keys = jax.random.split(key, octaves * n_steps)
    out = pyramid[0]
    with progress_bar(octaves * n_steps, desc="deepdream", unit="step", enabled=show) as bar:
        for o, (h, w) in enumerate(shapes):
            if o > 0:
                detail = pyramid[o] - _resize(pyramid[o - 1], (h, w, c))
                out = jnp.clip(_resize(out, (h, w, c)) + detail, 0.0, 1.0)
            for s in range(n_steps):
                out, _ = _step(model, out, keys[o * n_steps + s], step_size_arr, layer, jitter)
                bar.update(1)
    return out
