"""scikit-image's sample photographs as NHWC float32 images in [0, 1] (no download needed).

The colour (RGB) images that ship inside the scikit-image package (``skimage/data``), loaded with
``skimage.data``; the ones that scikit-image fetches from the network (``lily``, ``eagle``,
``kidney``, ...) are left out, so everything here works offline.

================================  ================  =========================================
name                              size (H x W)      what
================================  ================  =========================================
``"astronaut"``                   512 x 512         Eileen Collins, NASA portrait
``"chelsea"``                     300 x 451         a cat (Chelsea)
``"coffee"``                      400 x 600         a cup of coffee
``"colorwheel"``                  370 x 371         a colour wheel
``"hubble_deep_field"``           872 x 1000        Hubble eXtreme Deep Field
``"immunohistochemistry"``        512 x 512         IHC-stained tissue (microscopy)
``"retina"``                      1411 x 1411       human retina (fundus photograph)
``"rocket"``                      427 x 640         launch of DSCOVR on a SpaceX Falcon 9
================================  ================  =========================================
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import skimage.data
from skimage.transform import resize

SAMPLE_IMAGES: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "colorwheel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
)


@functools.cache
def _load_uint8(name: str) -> np.ndarray:
    image = np.asarray(getattr(skimage.data, name)())
    image.setflags(write=False)
    return image


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"`size` must be (height, width), got {size!r}") from None
    if not all(isinstance(s, int | np.integer) and s > 0 for s in (h, w)):
        raise ValueError(f"`size` must be two positive ints (height, width), got {size!r}")
    return int(h), int(w)


def sample_image(name: str, *, size: Sequence[int] | None = None) -> np.ndarray:
    """One of scikit-image's colour sample photographs as a float32 ``(H, W, 3)`` array in [0, 1].

    Args:
      name: one of :data:`SAMPLE_IMAGES`.
      size: ``(height, width)`` to resize to (``skimage.transform.resize``, bilinear, with
        Gaussian anti-aliasing when shrinking); the original size if None.

    Returns:
      The image, pixel values / 255, as a new array.

    Raises:
      ValueError: an unknown ``name`` (the message lists the known ones) or a bad ``size``.

    Example:
      >>> sample_image("chelsea").shape
      (300, 451, 3)
      >>> sample_image("astronaut", size=(64, 48)).shape
      (64, 48, 3)
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; known images: {list(SAMPLE_IMAGES)}")
    image = _load_uint8(name).astype(np.float32) / np.float32(255.0)
    if size is None:
        return image
    h, w = _check_size(size)
    if (h, w) == image.shape[:2]:
        return image
    out = resize(image, (h, w), order=1, anti_aliasing=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def sample_images(
    names: Sequence[str] = ("astronaut", "coffee", "chelsea"),
    *,
    size: Sequence[int] = (224, 224),
) -> np.ndarray:
    """Several sample photographs, resized to one ``size``, as a float32 ``(N, H, W, 3)`` batch.

    Args:
      names: names from :data:`SAMPLE_IMAGES`, in the batch's order.
      size: ``(height, width)`` of every image (aspect ratios are not kept).

    Returns:
      The batch, values in [0, 1].

    Raises:
      ValueError: an unknown name, an empty ``names`` or a bad ``size``.

    Example:
      >>> sample_images(size=(32, 32)).shape
      (3, 32, 32, 3)
    """
    if isinstance(names, str):
        names = (names,)
    if len(names) == 0:
        raise ValueError("`names` must name at least one image")
    size = _check_size(size)
    return np.stack([sample_image(n, size=size) for n in names])
