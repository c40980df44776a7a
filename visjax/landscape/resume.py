"""Resumable sweeps: a run folder with the sweep's configuration and one file per finished block.

Layout of a run folder::

    sweep.json          the configuration (grid, fingerprints of the directions, origin and data,
                        loss names, batch size, strategy, block size); written first
    block_000000.npy    ``(block, M)`` float32 values of block 0, written atomically when done
    ...

A re-run with the same configuration loads the finished blocks and evaluates only the missing
ones; the result is identical to an uninterrupted run. A different configuration in the same
folder raises a ``ValueError`` naming what differs (blocks of two sweeps are never mixed). The
block size is part of the configuration, and it is rounded to a multiple of the device count, so
resume on the same number of devices (or pass the same ``block_size`` with a count that divides it).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from visjax.base.io import atomic_write_bytes, atomic_write_text

CONFIG = "sweep.json"
VERSION = 1


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


def sweep_config(
    *,
    names: Any,
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
            if old != config:
                keys = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                raise ValueError(
                    f"`run_dir` {self.path} holds a sweep with another configuration "
                    f"(differs in {keys}); use another folder or delete it to start over "
                    "(`visjax landscape --no-resume` does that)"
                )
        elif write:
            self.path.mkdir(parents=True, exist_ok=True)
            if any(self.path.glob("block_*.npy")):
                raise ValueError(
                    f"`run_dir` {self.path} holds block files but no {CONFIG}; "
                    "use another folder or delete it"
                )
            atomic_write_text(file, json.dumps(config, indent=1, sort_keys=True))
        self.shape = (config["block"], len(config["losses"]))

    def _file(self, b: int) -> Path:
        return self.path / f"block_{b:06d}.npy"

    def load(self, b: int) -> np.ndarray | None:
        """Block ``b``'s values, or ``None`` when it is not finished (or unreadable)."""
        f = self._file(b)
        if not f.exists():
            return None
        try:
            values = np.load(f, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if values.shape != self.shape or values.dtype != np.float32:
            return None
        return values

    def save(self, b: int, values: np.ndarray) -> None:
        if not self.write:
            return
        buf = io.BytesIO()
        np.save(buf, np.asarray(values, np.float32), allow_pickle=False)
        atomic_write_bytes(self._file(b), buf.getvalue())
