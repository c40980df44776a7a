"""Export embeddings or activations to TensorBoard's projector (the interactive 3-D view).

:func:`export_projector` writes the projector's files into a folder; ``tensorboard --logdir
FOLDER`` then shows them under the Projector tab, where TensorBoard computes its own PCA, t-SNE or
UMAP of the vectors in the browser, colours the points by the metadata's columns and shows the
sprite's thumbnails at the points.

Files written (all atomically, with the mode ``open()`` gives under the process umask):

- ``<name>_tensors.tsv``: one row per point, the vector's values separated by tabs (float32
  precision).
- ``<name>_metadata.tsv`` (with ``labels``): one label per line and no header when ``labels`` is a
  1-D array (TensorBoard reads a single column without a header); a header row then one row per
  point when ``labels`` is a mapping of column names to 1-D arrays. Tabs and line breaks in the
  labels are replaced by spaces.
- ``<name>_sprite.png`` (with ``images``): the images in a square grid of ``ceil(sqrt(N))``
  columns, row by row in the points' order, the unused cells black. The projector reads at most
  8192 x 8192 pixels of sprite, so each thumbnail is at most ``8192 // ceil(sqrt(N))`` pixels on a
  side; larger images are shrunk (Lanczos) to fit, keeping their aspect ratio.
- ``projector_config.pbtxt``: the ``ProjectorConfig`` message in protobuf text format, one
  ``embeddings { tensor_name, tensor_path, metadata_path, sprite { image_path,
  single_image_dim } }`` block per exported name. Blocks for other names already in the
  folder's config are kept, so several embeddings can share a folder; exporting a name again
  replaces its block.

Projector limits (TensorBoard's, not visjax's): the browser loads all points but runs its own
t-SNE on a sample of at most 10,000 and UMAP on 5,000 (PCA on 50,000); a large tensor file is slow
to load (about 100 MB is a practical limit, e.g. 50,000 x 512 floats).

Example:
  >>> import numpy as np, tempfile
  >>> folder = export_projector(tempfile.mkdtemp(), np.eye(4), labels=[0, 1, 1, 0])
  >>> sorted(p.name for p in folder.iterdir())
  ['embedding_metadata.tsv', 'embedding_tensors.tsv', 'projector_config.pbtxt']
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visjax.base.io import atomic_write_bytes, atomic_write_text

CONFIG = "projector_config.pbtxt"
SPRITE_LIMIT = 8192  # pixels on a side of the sprite image the projector reads
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def export_projector(
    folder: str | os.PathLike,
    data: Any,
    *,
    labels: Sequence[Any] | Mapping[str, Sequence[Any]] | None = None,
    images: Any = None,
    name: str = "embedding",
) -> Path:
    """Write ``data`` (and labels, images) as TensorBoard projector files into ``folder``.

    Args:
      folder: the output folder (created if missing); pass it to ``tensorboard --logdir``.
      data: ``(N, D)`` vectors: an embedding or a layer's activations (``(N, ...)`` is flattened
        to ``(N, D)``); finite values only.
      labels: ``(N,)`` labels (one metadata column, no header), or a mapping of column name to
        ``(N,)`` values (several columns with a header row); None: no metadata file.
      images: ``(N, H, W)`` greyscale or ``(N, H, W, C)`` images (C 1, 3 or 4) for the sprite,
        one per point; ``uint8`` values are read as 0-255, float values in [0, 1] used as they
        are, others scaled by the images' joint range. None: no sprite.
      name: the tensor's name in the projector and the files' prefix (letters, digits, ``_``,
        ``.``, ``-``).

    Returns:
      ``folder`` as a Path.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"`name` must be letters, digits, '_', '.' or '-', got {name!r}")
    x = np.asarray(data)
    if x.ndim < 2 or x.shape[0] == 0 or math.prod(x.shape[1:]) == 0:
        raise ValueError(f"`data` must be a non-empty (N, D) array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"`data` must be numeric, got dtype {x.dtype}")
    x = x.reshape(len(x), -1).astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("`data` contains NaN or Inf")
    n = len(x)
    metadata = None if labels is None else _metadata(labels, n)
    sprite = None if images is None else _sprite(images, n)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    np.savetxt(buf, x, fmt="%.9g", delimiter="\t")
    atomic_write_text(folder / f"{name}_tensors.tsv", buf.getvalue())
    block = [f'  tensor_name: "{name}"', f'  tensor_path: "{name}_tensors.tsv"']
    if metadata is not None:
        atomic_write_text(folder / f"{name}_metadata.tsv", metadata)
        block.append(f'  metadata_path: "{name}_metadata.tsv"')
    if sprite is not None:
        png, (w, h) = sprite
        atomic_write_bytes(folder / f"{name}_sprite.png", png)
        block += [
            "  sprite {",
            f'    image_path: "{name}_sprite.png"',
            f"    single_image_dim: {w}",
            f"    single_image_dim: {h}",
            "  }",
        ]
    blocks = [b for b in _blocks(folder / CONFIG) if _block_name(b) != name]
    blocks.append("embeddings {\n" + "\n".join(block) + "\n}\n")
    atomic_write_text(folder / CONFIG, "".join(blocks))
    return folder


def _clean(value: Any) -> str:
    return re.sub(r"[\t\r\n]", " ", str(value))


def _column(values: Any, n: int, name: str) -> list[str]:
    v = np.asarray(values, dtype=object)
    if v.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},) (one per row of `data`), got {v.shape}")
    return [_clean(a) for a in v]


def _metadata(labels: Any, n: int) -> str:
    if isinstance(labels, Mapping):
        if not labels:
            raise ValueError("`labels` must not be an empty mapping")
        header = [_clean(k) for k in labels]
        cols = [_column(v, n, f"labels[{k!r}]") for k, v in labels.items()]
        rows = ["\t".join(header)] + ["\t".join(r) for r in zip(*cols, strict=True)]
    else:
        rows = _column(labels, n, "labels")
    return "\n".join(rows) + "\n"


def _sprite(images: Any, n: int) -> tuple[bytes, tuple[int, int]]:
    from PIL import Image  # noqa: PLC0415 - Pillow (a matplotlib dependency) only when needed

    im = np.asarray(images)
    im = im / 255.0 if im.dtype == np.uint8 else im.astype(np.float64)
    if im.ndim == 4 and im.shape[-1] == 1:
        im = im[..., 0]
    if im.ndim not in (3, 4) or (im.ndim == 4 and im.shape[-1] not in (3, 4)) or 0 in im.shape:
        raise ValueError(
            f"`images` must be (N, H, W) or (N, H, W, 1|3|4) images, got shape {im.shape}"
        )
    if len(im) != n:
        raise ValueError(f"`images` must have {n} images (one per row of `data`), got {len(im)}")
    im = np.nan_to_num(im, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(im.min()), float(im.max())
    if lo < 0.0 or hi > 1.0:
        im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
    im = np.round(im * 255.0).astype(np.uint8)
    side = math.ceil(math.sqrt(n))
    cell = SPRITE_LIMIT // side
    h, w = im.shape[1:3]
    if max(h, w) > cell:
        s = cell / max(h, w)
        w, h = max(1, int(w * s)), max(1, int(h * s))
    mode = "L" if im.ndim == 3 else ("RGBA" if im.shape[-1] == 4 else "RGB")
    sheet = Image.new(mode, (side * w, side * h))
    for i, a in enumerate(im):
        tile = Image.fromarray(a)
        if tile.size != (w, h):
            tile = tile.resize((w, h), Image.Resampling.LANCZOS)
        sheet.paste(tile, ((i % side) * w, (i // side) * h))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue(), (w, h)


def _blocks(config: Path) -> list[str]:
    """The top-level ``embeddings { ... }`` blocks of an existing config (as this module writes
    them), each as text; none if there is no config."""
    if not config.is_file():
        return []
    text = config.read_text(encoding="utf-8")
    blocks, depth, start = [], 0, None
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[{}]', text):
        token = m.group()
        if token == "{":
            if depth == 0:
                start = text.rfind("embeddings", 0, m.start())
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0 and start is not None and start >= 0:
                blocks.append(text[start : m.end()] + "\n")
    return blocks


def _block_name(block: str) -> str | None:
    m = re.search(r'^\s*tensor_name:\s*"([^"]*)"', block, re.MULTILINE)
    return m.group(1) if m else None
