"""Saving loss landscapes: NumPy ``.npz`` archives and ParaView surfaces (VTK XML PolyData).

Both are written atomically (:mod:`visjax.base.io`): a reader never sees a half-written file.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from visjax.base.grids import check_surface
from visjax.base.io import atomic_write_bytes, atomic_write_text

_JSON_KEY = "__json__"  # names of the entries that hold a JSON-encoded mapping


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__array__"):  # NumPy and JAX arrays
        return np.asarray(obj).tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def save_npz(path: str | os.PathLike, /, **arrays: Any) -> Path:
    """Save arrays (and configuration mappings) to an uncompressed ``.npz`` archive atomically.

    The archive is built in memory with ``np.savez`` and written through a temporary file, so
    ``path`` is used exactly as given (no ``.npz`` is appended, unlike ``np.savez``).

    Args:
      path: the destination file.
      **arrays: name to an array-like (NumPy, JAX, lists, scalars, strings), or to a mapping
        (e.g. the sweep's configuration), stored as a 0-d JSON string array and decoded again by
        :func:`load_npz`. Mappings must be JSON serialisable (NumPy/JAX scalars and arrays are
        turned into numbers and lists; tuples come back as lists).

    Returns:
      The path written.

    Raises:
      TypeError: for object arrays (they would need pickling) or mappings JSON cannot encode.
      ValueError: for the reserved name ``"__json__"``.
    """
    if _JSON_KEY in arrays:
        raise ValueError(f"the name {_JSON_KEY!r} is reserved")
    out: dict[str, np.ndarray] = {}
    encoded: list[str] = []
    for name, value in arrays.items():
        if isinstance(value, Mapping):
            out[name] = np.asarray(json.dumps(dict(value), default=_json_default, sort_keys=True))
            encoded.append(name)
            continue
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"`{name}` is an object array; save numbers, strings or a mapping")
        out[name] = arr
    if encoded:
        out[_JSON_KEY] = np.asarray(encoded)
    buf = io.BytesIO()
    np.savez(buf, **out)
    return atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, Any]:
    """Load an archive written by :func:`save_npz` (or any ``.npz`` without pickled objects).

    Returns:
      A dict name to NumPy array, in the order saved; mappings saved by :func:`save_npz` come back
      as dicts.
    """
    with np.load(path, allow_pickle=False) as f:
        data = {name: f[name] for name in f.files}
    encoded = data.pop(_JSON_KEY, np.asarray([], dtype=str))
    for name in encoded.tolist():
        data[name] = json.loads(str(data[name]))
    return data


def _ascii(values: np.ndarray) -> str:
    """Numbers for an ASCII ``DataArray``: one line of text per row of ``values``."""
    rows = np.atleast_2d(values)
    if rows.size == 0:
        return ""
    return "\n".join("          " + " ".join(map(repr, row)) for row in rows.tolist()) + "\n"


def save_vtk(
    path: str | os.PathLike,
    xs: Any,
    ys: Any,
    surface: Any,
    *,
    name: str = "loss",
    log: bool = False,
    zmax: float | None = None,
) -> Path:
    """Write a loss surface as a VTK XML PolyData file (``.vtp``) that ParaView opens.

    The same layout as ``h52vtp.py`` of Li et al.'s loss-landscape code: one point
    ``(x, y, z = value)`` per grid node and one quad per grid cell, with the value as point data.
    ``surface[i, j]`` is the value at ``(xs[i], ys[j])``; it is point number
    ``i * len(ys) + j``.
    Numbers are written as ASCII ``Float64`` (``Int64`` for the cells); the file is written
    atomically.

    The file holds:

    - ``Points``: ``len(xs) * len(ys)`` points ``(xs[i], ys[j], z[i, j])``;
    - ``PointData``: ``name`` (the active scalars, ``z``) and ``valid`` (``UInt8``: 1 where ``z`` is
      finite);
    - ``Polys``: the quads ``(i, j), (i+1, j), (i+1, j+1), (i, j+1)`` (counter-clockwise seen from
      +z) whose four corners are all valid; quads touching an invalid point are left out (holes).

    ``z`` is the value, clipped to ``zmax`` (``+Inf`` included) and then, with ``log``,
    ``ln(z + 0.1)`` as in ``h52vtp``. Points whose ``z`` is still not finite (NaN, and ``±Inf`` or
    values ``<= -0.1`` with ``log``) are invalid: they are written at the largest finite ``z``
    (0 if none) so that the file parses, and belong to no quad.

    Args:
      path: the destination; must end in ``.vtp`` (ParaView picks its reader by the suffix).
      xs: ``(M,)`` coordinates along the first direction (M >= 2).
      ys: ``(N,)`` coordinates along the second direction (N >= 2).
      surface: ``(M, N)`` values.
      name: the name of the value array (e.g. ``"train_loss"``).
      log: write ``ln(z + 0.1)`` instead of ``z``.
      zmax: clip values above this (before ``log``); default: no clipping.

    Returns:
      The path written.
    """
    path = Path(path)
    if path.suffix.lower() != ".vtp":
        raise ValueError(f"save_vtk writes VTK XML PolyData: `path` must end in .vtp, got {path}")
    if not name or name == "valid":
        raise ValueError(f"`name` must be non-empty and not 'valid', got {name!r}")
    xs, ys, z = check_surface(xs, ys, surface)
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("`xs` and `ys` must be finite")
    if zmax is not None:
        z = np.where(z > zmax, float(zmax), z)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log(z + 0.1)
    valid = np.isfinite(z)
    fill = float(z[valid].max()) if valid.any() else 0.0
    z = np.where(valid, z, fill)

    m, n = z.shape
    x_grid, y_grid = np.meshgrid(xs, ys, indexing="ij")
    points = np.stack([x_grid, y_grid, z], axis=-1).reshape(-1, 3)
    k = (np.arange(m - 1)[:, None] * n + np.arange(n - 1)[None, :]).reshape(-1)
    quads = np.stack([k, k + n, k + n + 1, k + 1], axis=-1)
    flat_valid = valid.reshape(-1)
    quads = quads[flat_valid[quads].all(axis=-1)]
    offsets = 4 * np.arange(1, len(quads) + 1)

    attr = quoteattr(name)
    text = (
        '<?xml version="1.0"?>\n'
        '<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n'
        "  <PolyData>\n"
        f'    <Piece NumberOfPoints="{m * n}" NumberOfVerts="0" NumberOfLines="0"'
        f' NumberOfStrips="0" NumberOfPolys="{len(quads)}">\n'
        f"      <PointData Scalars={attr}>\n"
        f'        <DataArray type="Float64" Name={attr} format="ascii">\n'
        f"{_ascii(z)}"
        "        </DataArray>\n"
        '        <DataArray type="UInt8" Name="valid" format="ascii">\n'
        f"{_ascii(valid.astype(np.uint8))}"
        "        </DataArray>\n"
        "      </PointData>\n"
        "      <Points>\n"
        '        <DataArray type="Float64" Name="Points" NumberOfComponents="3" format="ascii">\n'
        f"{_ascii(points)}"
        "        </DataArray>\n"
        "      </Points>\n"
        "      <Polys>\n"
        '        <DataArray type="Int64" Name="connectivity" format="ascii">\n'
        f"{_ascii(quads)}"
        "        </DataArray>\n"
        '        <DataArray type="Int64" Name="offsets" format="ascii">\n'
        f"{_ascii(offsets)}"
        "        </DataArray>\n"
        "      </Polys>\n"
        "    </Piece>\n"
        "  </PolyData>\n"
        "</VTKFile>\n"
    )
    return atomic_write_text(path, text)
