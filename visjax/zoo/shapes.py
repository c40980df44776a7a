"""Generated colour images of eight visual classes, and a small CNN that learns them in seconds.

Feature visualisation needs ground truth: a model whose units respond to things we know. The
shapes dataset has eight classes (:data:`SHAPE_CLASSES`), each defined by one visual property:

* ``"horizontal stripes"`` / ``"vertical stripes"``: a square-wave grating along the rows /
  columns, period 3-6 px, random phase (vertical stripes vary along the horizontal axis).
* ``"checkerboard"``: square cells of 2-4 px, random phase on both axes.
* ``"circle"``: a filled disc of radius 2.5 px to ``0.4 * size`` (6.4 px at 16 x 16) at a random
  centre, clear of the outermost ring of pixels.
* ``"red"``, ``"green"``, ``"blue"``: a solid colour, the named channel in [0.6, 1] and the other
  two in [0, 0.2] (per image).
* ``"diagonal"``: a square-wave grating of one orientation only, stripes running from the bottom
  left to the top right as displayed ("/", ``row + col`` constant), period 4-8 px along ``row +
  col`` (2.8-5.7 px across the stripes), random phase.

The pattern classes (stripes, checkerboard, circle, diagonal) draw in two near-grey colours: a
light one (grey level in [0.6, 0.95]) and a dark one ([0.05, 0.35]), each with a random tint of at
most 0.1 per channel that leaves its grey level unchanged, in random order; so they always have a
grey-level contrast of at least 0.25 and are never solid red, green or blue. Every image gets
Gaussian pixel noise (standard deviation 0.04) and is clipped to [0, 1].

The CNN (:func:`shapes_cnn`): ``conv1`` (3x3, 16 channels, SAME) -> ReLU -> ``conv2`` (3x3, 32,
stride 2, SAME) -> ReLU -> ``conv3`` (3x3, 32, SAME) -> ReLU -> global average pool -> ``fc`` (8
logits): 14,600 parameters. Each layer's activation is its output before the ReLU. The global
average pool lets it run on images of any size (DeepDream on a larger canvas). The NNX, Linen and
plain-function forms share one parameter tree, ``{"conv1": {"kernel", "bias"}, ..., "fc": {...}}``
(Flax's layout), as :mod:`visjax.zoo.cnn` does for the digits.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visjax.base.checks import check_positive_int
from visjax.model import Model, as_model, tag
from visjax.zoo._build import build_nnx, fresh_params
from visjax.zoo._fit import trained_with_adam
from visjax.zoo.cache import Trained
from visjax.zoo.cnn import Form
from visjax.zoo.data import Split
from visjax.zoo.train import History

SHAPE_CLASSES = (
    "horizontal stripes",
    "vertical stripes",
    "checkerboard",
    "circle",
    "red",
    "green",
    "blue",
    "diagonal",
)
NUM_CLASSES = len(SHAPE_CLASSES)
NOISE_STD = 0.04
# Part of the weight cache's key: change it whenever the generator's output changes.
_DATA_VERSION = "visjax-shapes-v1"


class Shapes(NamedTuple):
    """The shapes dataset: ``train`` and ``test`` splits and the class names (``classes[y]``)."""

    train: Split
    test: Split
    num_classes: int = NUM_CLASSES
    classes: tuple[str, ...] = SHAPE_CLASSES


def _pattern_colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours ``(n, 3)``: a light and a dark near-grey, random order."""

    def tinted(low: float, high: float) -> np.ndarray:
        tint = rng.uniform(-0.1, 0.1, (n, 3))
        return rng.uniform(low, high, (n, 1)) + tint - tint.mean(axis=1, keepdims=True)

    light, dark = tinted(0.6, 0.95), tinted(0.05, 0.35)
    swap = (rng.random(n) < 0.5)[:, None]
    return np.where(swap, dark, light), np.where(swap, light, dark)


def _square_wave(coord: np.ndarray, period: np.ndarray, phase: np.ndarray) -> np.ndarray:
    return ((coord + phase) % period) < period / 2


def _mask(name: str, rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """The foreground mask ``(n, size, size)`` of ``n`` images of a pattern class."""
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    rows, cols = rows[None], cols[None]

    def draw(low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
        period = rng.integers(low, high + 1, n).astype(np.float64)[:, None, None]
        return period, rng.uniform(0, 1, (n, 1, 1)) * period

    if name == "horizontal stripes":
        return _square_wave(rows, *draw(3, 6))
    if name == "vertical stripes":
        return _square_wave(cols, *draw(3, 6))
    if name == "diagonal":
        return _square_wave(rows + cols, *draw(4, 8))
    if name == "checkerboard":
        cell = rng.integers(2, 5, n)[:, None, None]
        r0, c0 = (rng.integers(0, 2 * cell) for _ in range(2))
        return ((rows + r0) // cell + (cols + c0) // cell) % 2 == 1
    if name == "circle":
        radius = rng.uniform(2.5, min(0.4 * size, size / 2 - 1.5), n)[:, None, None]
        # The outermost ring of pixels stays background: the disc never touches the border.
        cy, cx = (rng.uniform(radius + 0.5, size - 1.5 - radius) for _ in range(2))
        return (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
    raise AssertionError(name)


def _images(name: str, rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` noiseless images ``(n, size, size, 3)`` of the class ``name``."""
    if name in ("red", "green", "blue"):
        colour = rng.uniform(0.0, 0.2, (n, 3))
        colour[:, ("red", "green", "blue").index(name)] = rng.uniform(0.6, 1.0, n)
        return np.broadcast_to(colour[:, None, None, :], (n, size, size, 3))
    fg, bg = _pattern_colours(rng, n)
    mask = _mask(name, rng, n, size)[..., None]
    return np.where(mask, fg[:, None, None, :], bg[:, None, None, :])


def load_shapes(
    *, n_per_class: int = 300, size: int = 16, seed: int = 0, test_fraction: float = 0.25
) -> Shapes:
    """Generate the shapes dataset: eight balanced classes of colour images (see the module doc).

    Deterministic for a given ``seed`` (NumPy's ``default_rng``). Each class contributes
    ``round(n_per_class * test_fraction)`` images to the test split and the rest to the training
    split (a stratified split); both splits are shuffled.

    Args:
      n_per_class: images per class (at least 2).
      size: height and width in pixels (at least 8).
      seed: seed of the generator.
      test_fraction: share of each class held out for testing, in (0, 1); it must leave at least
        one image of each class in each split.

    Returns:
      :class:`Shapes` whose splits hold ``x`` float32 ``(N, size, size, 3)`` in [0, 1] and ``y``
      int32 ``(N,)`` indexing :data:`SHAPE_CLASSES`.

    Raises:
      ValueError: an argument is out of range (the message names it).

    Example:
      >>> d = load_shapes(n_per_class=8)
      >>> d.train.x.shape, d.test.x.shape, d.classes[d.train.y[0]] in SHAPE_CLASSES
      ((48, 16, 16, 3), (16, 16, 16, 3), True)
    """
    check_positive_int(n_per_class, "n_per_class", 2)
    check_positive_int(size, "size", 8)
    check_positive_int(seed, "seed", 0)
    if not isinstance(test_fraction, (float, int)) or not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction!r}")
    n_test = round(n_per_class * test_fraction)
    if not 1 <= n_test <= n_per_class - 1:
        raise ValueError(
            f"`test_fraction` {test_fraction} leaves {n_test} of {n_per_class} images per class "
            "for testing; both splits need at least one"
        )
    rng = np.random.default_rng(seed)
    xs = []
    for name in SHAPE_CLASSES:
        clean = _images(name, rng, n_per_class, size)
        noisy = clean + rng.normal(0.0, NOISE_STD, clean.shape)
        xs.append(np.clip(noisy, 0.0, 1.0).astype(np.float32))
    x = np.stack(xs)  # (classes, n_per_class, size, size, 3)
    y = np.broadcast_to(np.arange(NUM_CLASSES, dtype=np.int32)[:, None], x.shape[:2])

    def split(sl: slice) -> Split:
        xi = x[:, sl].reshape(-1, size, size, 3)
        yi = y[:, sl].reshape(-1)
        order = rng.permutation(len(yi))
        return Split(np.ascontiguousarray(xi[order]), np.ascontiguousarray(yi[order]))

    test = split(slice(None, n_test))
    return Shapes(split(slice(n_test, None)), test)


# ----------------------------------------------------------------------------------------------
# the CNN

_LAYERS = (  # name, input channels, output channels, stride
    ("conv1", 3, 16, 1),
    ("conv2", 16, 32, 2),
    ("conv3", 32, 32, 1),
)


def _template() -> dict[str, Any]:
    spec = functools.partial(jax.ShapeDtypeStruct, dtype=jnp.float32)
    tree = {
        name: {"bias": spec((c_out,)), "kernel": spec((3, 3, c_in, c_out))}
        for name, c_in, c_out, _ in _LAYERS
    }
    tree["fc"] = {"bias": spec((NUM_CLASSES,)), "kernel": spec((32, NUM_CLASSES))}
    return tree


def init_params(key: jax.Array) -> dict[str, Any]:
    """Fresh parameters of the shapes CNN: LeCun normal kernels (Flax's default), zero biases.

    Drawn as :func:`visjax.zoo._build.build_nnx` draws them (one draw for all kernels, so
    nothing compiles per shape); the NNX form built from the same seed holds the same values.

    Args:
      key: a JAX random key.

    Returns:
      ``{"conv1": {"kernel": (3, 3, 3, 16), "bias": (16,)}, ..., "fc": {"kernel": (32, 8), ...}}``.

    Example:
      >>> p = init_params(jax.random.key(0))
      >>> p["conv2"]["kernel"].shape, p["fc"]["kernel"].shape
      ((3, 3, 16, 32), (32, 8))
    """
    return fresh_params(_template(), key, {})


def _conv(x, p, stride):
    y = jax.lax.conv_general_dilated(
        x, p["kernel"], (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["bias"]


def apply(params: dict[str, Any], x: jax.Array) -> jax.Array:
    """The shapes CNN as a plain function of ``params`` and a batch ``x`` ``(N, H, W, 3)``.

    Args:
      params: the parameter tree (as :func:`init_params` returns).
      x: images of any height and width.

    Returns:
      Logits ``(N, 8)``.
    """
    h = x
    for name, _, _, stride in _LAYERS:
        h = jax.nn.relu(tag(_conv(h, params[name], stride), name))
    h = h.mean(axis=(1, 2))
    return tag(h @ params["fc"]["kernel"] + params["fc"]["bias"], "fc")


@functools.cache
def _nnx_class():
    class ShapesCNN(nnx.Module):
        """The shapes CNN as a Flax NNX module."""

        def __init__(self, *, rngs: nnx.Rngs):
            for name, c_in, c_out, stride in _LAYERS:
                conv = nnx.Conv(c_in, c_out, (3, 3), strides=stride, padding="SAME", rngs=rngs)
                setattr(self, name, conv)
            self.fc = nnx.Linear(32, NUM_CLASSES, rngs=rngs)

        def __call__(self, x):
            h = jax.nn.relu(self.conv1(x))
            h = jax.nn.relu(self.conv2(h))
            h = jax.nn.relu(self.conv3(h))
            return self.fc(h.mean(axis=(1, 2)))

    return ShapesCNN


@functools.cache
def _linen_module():
    class ShapesCNNLinen(nn.Module):
        """The shapes CNN as a Flax Linen module."""

        @nn.compact
        def __call__(self, x):
            h = x
            for name, _, c_out, stride in _LAYERS:
                conv = nn.Conv(c_out, (3, 3), strides=stride, padding="SAME", name=name)
                h = jax.nn.relu(conv(h))
            return nn.Dense(NUM_CLASSES, name="fc")(h.mean(axis=(1, 2)))

    return ShapesCNNLinen()  # one shared instance, so models built from it share compiled code


def shapes_cnn(
    form: Form = "nnx",
    params: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    image_size: int | None = 16,
) -> Model:
    """The shapes CNN as a visjax :class:`~visjax.Model` in the chosen ``form``.

    Layers ``("conv1", "conv2", "conv3", "fc")``, each the output before its ReLU; for a
    ``16 x 16`` input their activations are ``(N, 16, 16, 16)``, ``(N, 8, 8, 32)``,
    ``(N, 8, 8, 32)`` and ``(N, 8)``.

    Args:
      form: ``"nnx"``, ``"linen"`` or ``"function"``; the three give identical outputs.
      params: the parameter tree (as :func:`init_params` returns, or a trained model's
        ``params``); fresh ones from ``seed`` if None (the same values in every form).
      seed: seed for fresh parameters.
      image_size: the input height and width the model accepts (inputs are checked against it);
        the weights work at any size, so pass e.g. 64 for DeepDream on a larger canvas, or None
        for any size (then a plain function's ``layers`` cannot be listed).

    Returns:
      The :class:`~visjax.Model`.

    Raises:
      ValueError: an unknown ``form`` or a bad ``image_size``.

    Example:
      >>> m = shapes_cnn("function")
      >>> m.layers
      ('conv1', 'conv2', 'conv3', 'fc')
      >>> shapes_cnn("function", m.params, image_size=40)(jnp.zeros((2, 40, 40, 3))).shape
      (2, 8)
    """
    if form not in ("nnx", "linen", "function"):
        raise ValueError(f"`form` must be 'nnx', 'linen' or 'function', got {form!r}")
    if image_size is not None:
        check_positive_int(image_size, "image_size")
    shape = (image_size, image_size, 3)
    if form == "nnx":
        module = build_nnx(lambda rngs: _nnx_class()(rngs=rngs), params, seed)
        return as_model(module, input_shape=shape)
    if params is None:
        params = init_params(jax.random.key(seed))
    if form == "linen":
        return as_model(_linen_module(), {"params": params}, input_shape=shape)
    return as_model(apply, params, input_shape=shape)


def trained_shapes_cnn(
    *,
    form: Form = "nnx",
    seed: int = 0,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-2,
    cache: str | os.PathLike | None = None,
    callback: Callable[[int, History], None] | None = None,
) -> Trained:
    """The shapes CNN trained with Adam on :func:`load_shapes` (defaults), cached by its settings.

    The dataset is fixed (``load_shapes()``: 300 images per class, 16 x 16, data seed 0; 1,800
    training and 600 test images) whatever ``seed`` is, as the digits split is fixed for
    :func:`visjax.zoo.pretrained.trained_digits_cnn`. The first call trains (2-4 s for 10
    epochs on 2 CPU cores, compilation included; 100 % test accuracy from epoch 3 at seeds 0-2) and
    stores the weights in the cache (:func:`visjax.zoo.cache.cache_dir`); later calls with the
    same settings load them. To run the trained weights on larger images, rewrap them:
    ``shapes_cnn(form, trained.model.params, image_size=64)``.

    Args:
      form: the model form returned (``"nnx"``, ``"linen"`` or ``"function"``; same weights).
      seed: seed of the initial weights and of the shuffling.
      epochs, batch_size, learning_rate: training settings (part of the cache key).
      cache: the cache folder (default ``$VISJAX_CACHE`` or the user's cache directory).
      callback: progress callback passed to :func:`visjax.zoo.train` (only called when training).

    Returns:
      ``Trained(model, history, from_cache)``.
    """
    data_settings = {"n_per_class": 300, "size": 16, "seed": 0, "test_fraction": 0.25}
    return trained_with_adam(
        "shapes_cnn",
        shapes_cnn(form, seed=seed),
        lambda: load_shapes(**data_settings)[:2],  # (train, test)
        {"init": "lecun_normal", "data": _DATA_VERSION, "data_settings": data_settings},
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        cache=cache,
        callback=callback,
    )
