"""Resumable sweeps: a run folder with the sweep's configuration and one file per finished block.

Layout of a run folder::

    sweep.json          the configuration (format version, grid, fingerprints of the directions,
                        origin and data, loss names and a fingerprint of each loss function, batch
                        size, strategy, block size); written first
    block_000000.npy    ``(block, M)`` float32 values of block 0, written atomically when done
    manifest.json       the SHA-256 of every finished block file, rewritten (atomically) after each
    ...

A loss's fingerprint is the SHA-256 of its jaxpr on the first data chunk (the text and the values
of its constants) and of its value there at the origin, so the same names bound to other
functions are not mistaken for the old ones. A re-run with the same configuration loads the
finished blocks whose bytes match the manifest and evaluates the others (a missing, empty,
truncated or altered block is recomputed, with a warning naming the file); the result is
identical to an uninterrupted run. The configuration holds the data chunk size actually used
(``batch_size="auto"`` resolved to an int, or ``null`` for one chunk); a re-run with ``"auto"``
adopts the folder's size (:func:`stored_batch_size`), so it resumes on any machine. A
different configuration in the same folder raises a ``ValueError`` naming what differs (blocks
of two sweeps are never mixed), and so does a folder written by an older visjax (another format
version). The block size is part of the configuration, and it is rounded to a multiple of the
device count, so resume on the same number of devices (or pass the same ``block_size`` with a
count that divides it).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from visjax.base.io import atomic_write_bytes, atomic_write_text

CONFIG = "sweep.json"
MANIFEST = "manifest.json"
VERSION = 2  # 1: no loss fingerprints, no manifest
START_OVER = (
    "use a new `run_dir`, or delete this one to start over (`resume=False` in "
    "`visjax.report.sweep.sweep_trained`, `visjax landscape --no-resume`)"
)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def fingerprint(*trees: Any) -> str:
    """SHA-256 of the structure, shapes, dtypes and bytes of the leaves of ``trees``."""
    h = hashlib.sha256()
    for tree in trees:
        leaves, treedef = jax.tree.flatten(tree)
        h.update(str(treedef).encode())
        for leaf in leaves:
            if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
                # Spread over processes: its shape and dtype only (each process sees a part).
                h.update(f"{leaf.dtype}{leaf.shape}".encode())
                continue
            a = np.ascontiguousarray(jax.device_get(leaf))
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def loss_fingerprint(closed_jaxpr: Any, value: float | None) -> str:
    """SHA-256 of a loss: its jaxpr's text and constants (values, dtypes, shapes) and its value
    (rounded to 6 significant digits; ``None`` where it could not be computed on this process)."""
    h = hashlib.sha256()
    h.update(_ADDRESS.sub("", str(closed_jaxpr)).encode())  # no memory addresses
    h.update(fingerprint(list(closed_jaxpr.consts)).encode())
    h.update(b"-" if value is None else f"{float(value):.5e}".encode())
    return h.hexdigest()


def stored_batch_size(path: str | Path) -> int | str | None:
    """The data chunk size a run folder's sweep was written with, for ``batch_size="auto"``: a
    resumed sweep keeps its chunking (and so its values, bit for bit), whatever this machine's
    rule would pick. ``"auto"`` when the folder holds no readable configuration of this format."""
    try:
        old = json.loads((Path(path) / CONFIG).read_text())
    except (OSError, ValueError):
        return "auto"
    size = old.get("batch_size", "auto") if isinstance(old, dict) else "auto"
    ok = size is None or (isinstance(size, int) and not isinstance(size, bool) and size > 0)
    return size if ok and old.get("version") == VERSION else "auto"


def sweep_config(
    *,
    names: Any,
    loss_fingerprints: dict[str, str],
    origin: Any,
    directions: Any,
    coords: np.ndarray,
    data: Any,
    batch_size: int | None,
    strategy: str,
    point_chunk: int,
    block: int,
) -> dict[str, Any]:
    """The JSON-able configuration that decides a sweep's values and its block files."""
    return {
        "version": VERSION,
        "losses": list(names),
        "loss_functions": dict(loss_fingerprints),
        "n_points": int(coords.shape[0]),
        "n_directions": int(coords.shape[1]),
        "grid": fingerprint(coords),
        "origin": fingerprint(origin),
        "directions": fingerprint(*directions),
        "data": fingerprint(data),
        "batch_size": batch_size,
        "strategy": strategy,
        "point_chunk": point_chunk if strategy == "vmap" else None,
        "block": int(block),
    }


class RunDir:
    """A sweep's run folder: checks or writes the configuration, loads and saves blocks."""

    def __init__(self, path: str | Path, config: dict[str, Any], *, write: bool = True):
        self.path = Path(path)
        self.write = write
        file = self.path / CONFIG
        if file.exists():
            try:
                old = json.loads(file.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"`run_dir` {self.path}: unreadable {CONFIG}: {e}") from e
            _check_same(self.path, old if isinstance(old, dict) else {}, config)
        elif write:
            self.path.mkdir(parents=True, exist_ok=True)
            if any(self.path.glob("block_*.npy")) or (self.path / MANIFEST).exists():
                raise ValueError(
                    f"`run_dir` {self.path} holds block files but no {CONFIG}; "
                    "use another folder or delete it"
                )
            atomic_write_text(file, json.dumps(config, indent=1, sort_keys=True))
        self.shape = (config["block"], len(config["losses"]))
        self.manifest = self._read_manifest()

    def _file(self, b: int) -> Path:
        return self.path / f"block_{b:06d}.npy"

    def _read_manifest(self) -> dict[str, Any]:
        file = self.path / MANIFEST
        if not file.exists():
            return {}
        try:
            manifest = json.loads(file.read_text())
            if isinstance(manifest, dict) and all(
                isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in manifest.values()
            ):
                return manifest
        except (OSError, ValueError):
            pass
        warnings.warn(
            f"landscape run folder: unreadable {file}; every block is recomputed",
            RuntimeWarning,
            stacklevel=4,
        )
        return {}

    def load(self, b: int) -> np.ndarray | None:
        """Block ``b``'s values, or ``None`` when it is not finished; a block file that is empty,
        truncated, altered or unreadable gives ``None`` too, with a warning naming the file."""
        f = self._file(b)
        if not f.exists():
            return None
        entry = self.manifest.get(f.name)
        try:
            raw = f.read_bytes()
        except OSError as e:
            return _redo(f, f"unreadable ({e})")
        if not raw:
            return _redo(f, "empty (0 bytes)")
        if entry is None:
            return _redo(f, f"not in {MANIFEST} (written by an interrupted run?)")
        if len(raw) < entry.get("bytes", 0):
            return _redo(f, f"truncated ({len(raw)} of {entry['bytes']} bytes)")
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            return _redo(f, f"altered (its SHA-256 differs from the one in {MANIFEST})")
        try:
            values = np.load(io.BytesIO(raw), allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            return _redo(f, f"unreadable ({e})")
        if values.shape != self.shape or values.dtype != np.float32:
            return _redo(f, f"of shape {values.shape} {values.dtype}, not {self.shape} float32")
        return values

    def save(self, b: int, values: np.ndarray) -> None:
        """Write block ``b`` (atomically), then its SHA-256 into the manifest (atomically)."""
        if not self.write:
            return
        buf = io.BytesIO()
        np.save(buf, np.asarray(values, np.float32), allow_pickle=False)
        raw = buf.getvalue()
        f = atomic_write_bytes(self._file(b), raw)
        self.manifest[f.name] = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
        atomic_write_text(self.path / MANIFEST, json.dumps(self.manifest, indent=0, sort_keys=True))


def _check_same(path: Path, old: dict[str, Any], config: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless the folder's configuration ``old`` is ``config``."""
    if old.get("version") != VERSION:
        raise ValueError(
            f"`run_dir` {path} was written by an older visjax (run-folder format version "
            f"{old.get('version')!r}, without loss fingerprints nor block checksums; this "
            f"version reads format {VERSION}) and cannot be resumed: {START_OVER}"
        )
    if old == config:
        return
    keys = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
    if keys == ["loss_functions"]:
        before, now = old.get("loss_functions") or {}, config["loss_functions"]
        names = [n for n in now if before.get(n) != now[n]]
        listed = ", ".join(f"`{n}`" for n in names)
        raise ValueError(
            f"`run_dir` {path} was written with a different loss {listed} (the same name bound "
            f"to another function, or one with another value at the origin): {START_OVER}"
        )
    # the loss fingerprints depend on the data and its chunking: name only the causes
    keys = [k for k in keys if k != "loss_functions"]
    raise ValueError(
        f"`run_dir` {path} holds a sweep with another configuration "
        f"(differs in {keys}); use another folder or delete it to start over "
        "(`visjax landscape --no-resume` does that)"
    )


def _redo(file: Path, why: str) -> None:
    warnings.warn(
        f"landscape run folder: block file {file} is {why}; recomputing it",
        RuntimeWarning,
        stacklevel=4,
    )
    return None
