"""Feature masks: which input elements move together in perturbation and surrogate methods.

A mask is an integer array labelling every element of an example with its feature ``0..K-1``.
It is either shared by the batch (shape ``x.shape[1:]``, or any shape that broadcasts to it,
e.g. ``(H, W, 1)`` for NHWC images so the channels of a pixel move together, as Captum's
``feature_mask``) or given per example (shape ``(N, ...)`` broadcasting to ``x.shape``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.checks import check_positive_int, is_concrete


class FeatureMask(NamedTuple):
    """A checked mask.

    Attributes:
      labels: int32 labels broadcast to ``x.shape`` (``(N, ...)``).
      n_features: ``K``, the number of features (static): one more than the largest label.
      present: bool ``(N, K)``: whether example ``n`` has an element labelled ``k`` (per-example
        masks may use fewer labels than ``K``; absent features get attribution 0).
    """

    labels: jax.Array
    n_features: int
    present: jax.Array


def _broadcast(mask: np.ndarray | jax.Array, shape: tuple[int, ...], name: str):
    """``mask`` broadcast to ``shape`` (one example's or the batch's), or None if it cannot."""
    if mask.ndim > len(shape):
        return None
    try:
        return jnp.broadcast_to(mask, shape)
    except ValueError:
        return None


def feature_mask(mask: Any, x: jax.Array, *, name: str = "mask") -> FeatureMask:
    """Check ``mask`` against the batch ``x`` and return it broadcast, with its feature count.

    Args:
      mask: integer labels ``0..K-1``; shared (broadcasting to ``x.shape[1:]``) or per example
        (leading axis ``N``, broadcasting to ``x.shape``). A shared mask must use every label
        ``0..K-1``; a per-example mask must use every label in at least one example and each
        example's labels must be ``0..K_n-1`` for its own ``K_n``.
      x: the batch ``(N, ...)``.
      name: the argument's name in error messages.

    Returns:
      A :class:`FeatureMask`. Under a caller's ``jit`` a traced mask cannot give a static ``K``:
      pass it concrete (masks are data about the input's layout, not about its values).

    Raises:
      TypeError: a non-integer mask.
      ValueError: a shape that fits neither ``x.shape[1:]`` nor ``x.shape``, or labels that are
        not ``0..K-1``.
    """
    if not is_concrete(mask):
        raise ValueError(
            f"`{name}` must be concrete (a NumPy or JAX array outside jit): its number of "
            "features sets the shapes of the computation"
        )
    m = np.asarray(mask)
    if not (np.issubdtype(m.dtype, np.integer) or m.dtype == bool):
        raise TypeError(f"`{name}` must hold integer feature labels, got dtype {m.dtype}")
    m = m.astype(np.int64)
    n = x.shape[0]
    shared = _broadcast(m, x.shape[1:], name)
    if shared is not None:
        labels = np.broadcast_to(m, x.shape[1:])
        per = np.broadcast_to(labels, x.shape)
        used = np.unique(labels)
        k = int(used.max()) + 1 if used.size else 0
        if used.min() < 0 or used.size != k:
            raise ValueError(
                f"`{name}` labels must be 0..K-1 with every label used; got labels "
                f"{_describe(used)}"
            )
        present = np.ones((n, k), bool)
    else:
        if m.ndim != x.ndim or _broadcast(m, x.shape, name) is None:
            raise ValueError(
                f"`{name}` of shape {m.shape} fits neither one example {tuple(x.shape[1:])} "
                f"(a shared mask) nor the batch {tuple(x.shape)} (one mask per example)"
            )
        per = np.broadcast_to(m, x.shape)
        if per.min() < 0:
            raise ValueError(f"`{name}` labels must be >= 0, got {int(per.min())}")
        k = int(per.max()) + 1
        present = np.zeros((n, k), bool)
        for i in range(n):
            used = np.unique(per[i])
            if used.size != int(used.max()) + 1:
                raise ValueError(
                    f"`{name}` labels of example {i} must be 0..K-1 with every label used; got "
                    f"{_describe(used)}"
                )
            present[i, used] = True
    return FeatureMask(jnp.asarray(per, jnp.int32), k, jnp.asarray(present))


def _describe(used: np.ndarray) -> str:
    if used.size <= 12:
        return str(used.tolist())
    return f"{used.size} labels from {int(used.min())} to {int(used.max())}"


def _image_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"`{name}` must be a tuple (H, W) or (H, W, C), got {shape!r}") from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"`{name}` must be (H, W) or (H, W, C) with sizes >= 1, got {shape}")
    return shape


def _grid(shape: tuple[int, ...], rows: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    labels = (rows[:, None] * n_cols + cols[None, :]).astype(np.int32)
    if len(shape) == 3:
        labels = np.broadcast_to(labels[:, :, None], shape).copy()
    return labels


def square_patches(shape: Any, size: int) -> np.ndarray:
    """Labels of ``size × size`` patches over an image, row-major, partial patches at the edges.

    Args:
      shape: ``(H, W)`` or ``(H, W, C)``; with ``C`` the channels of a pixel share its label.
      size: the patch side in pixels.

    Returns:
      An int32 NumPy array of ``shape`` with labels ``0..ceil(H/size)·ceil(W/size) − 1``, usable
      as ``mask=`` (shared by the batch).

    Example:
      >>> square_patches((4, 4), 2)
      array([[0, 0, 1, 1],
             [0, 0, 1, 1],
             [2, 2, 3, 3],
             [2, 2, 3, 3]], dtype=int32)
    """
    shape = _image_shape(shape)
    size = check_positive_int(size, "size")
    h, w = shape[:2]
    return _grid(shape, np.arange(h) // size, np.arange(w) // size, -(-w // size))


def grid_superpixels(shape: Any, n_rows: int, n_cols: int) -> np.ndarray:
    """Labels of a regular ``n_rows × n_cols`` grid over an image, row-major.

    Cell ``(r, c)`` holds the pixels ``(i, j)`` with ``⌊i · n_rows / H⌋ = r`` and
    ``⌊j · n_cols / W⌋ = c`` (cell sizes differ by at most one pixel).

    Args:
      shape: ``(H, W)`` or ``(H, W, C)``; with ``C`` the channels of a pixel share its label.
      n_rows: cells down, at most ``H``.
      n_cols: cells across, at most ``W``.

    Returns:
      An int32 NumPy array of ``shape`` with labels ``0..n_rows·n_cols − 1``.

    Example:
      >>> grid_superpixels((4, 6), 2, 3)
      array([[0, 0, 1, 1, 2, 2],
             [0, 0, 1, 1, 2, 2],
             [3, 3, 4, 4, 5, 5],
             [3, 3, 4, 4, 5, 5]], dtype=int32)
    """
    shape = _image_shape(shape)
    h, w = shape[:2]
    n_rows = check_positive_int(n_rows, "n_rows")
    n_cols = check_positive_int(n_cols, "n_cols")
    for name, value, limit in (("n_rows", n_rows, h), ("n_cols", n_cols, w)):
        if value > limit:
            raise ValueError(f"`{name}` must be at most {limit}, got {value}")
    return _grid(shape, np.arange(h) * n_rows // h, np.arange(w) * n_cols // w, n_cols)


def slic_superpixels(
    images: Any, *, n_segments: int = 50, compactness: float = 10.0, **kwargs: Any
) -> np.ndarray:
    """SLIC superpixels of each image (scikit-image), as per-example feature masks.

    Args:
      images: NHWC images ``(N, H, W, C)``; one channel is segmented as grayscale, three as
        colour (scikit-image converts RGB to Lab unless ``convert2lab=False``).
      n_segments: the approximate number of superpixels (scikit-image's ``n_segments``).
      compactness: colour against space (scikit-image's ``compactness``; try 0.1 for
        grayscale images in [0, 1]).
      **kwargs: passed to :func:`skimage.segmentation.slic` (e.g. ``sigma``, ``max_num_iter``).

    Returns:
      An int32 NumPy array ``(N, H, W, 1)``: example ``n``'s labels relabelled to
      ``0..K_n − 1``, usable as a per-example ``mask=``.

    Raises:
      ImportError: scikit-image is not installed.

    Example:
      >>> import numpy as np
      >>> slic_superpixels(np.random.rand(2, 16, 16, 3), n_segments=4).shape
      (2, 16, 16, 1)

    References:
      Achanta et al., "SLIC Superpixels Compared to State-of-the-Art Superpixel Methods",
      IEEE TPAMI 2012.
    """
    try:
        from skimage.segmentation import slic  # noqa: PLC0415 - skimage (~0.6 s), only for superpixels
    except ImportError as e:
        raise ImportError("slic_superpixels needs scikit-image: `pip install scikit-image`") from e
    imgs = np.asarray(images)
    if imgs.ndim != 4:
        raise ValueError(f"`images` must be NHWC (N, H, W, C), got shape {imgs.shape}")
    n_segments = check_positive_int(n_segments, "n_segments")
    out = np.empty((*imgs.shape[:3], 1), np.int32)
    for i, img in enumerate(imgs):
        if img.shape[-1] == 1:
            seg = slic(
                img[..., 0],
                n_segments=n_segments,
                compactness=compactness,
                channel_axis=None,
                **kwargs,
            )
        else:
            seg = slic(img, n_segments=n_segments, compactness=compactness, **kwargs)
        out[i, ..., 0] = np.unique(seg, return_inverse=True)[1].reshape(seg.shape)
    return out
