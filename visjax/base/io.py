"""Atomic file writes: nothing half-written is ever left at the destination.

Files and folders are created with the permissions ``open()`` and ``mkdir()`` would give them:
``0o666`` (files) or ``0o777`` (folders) less the process umask, so with the usual umask 022 a
report, a figure or a cache entry is readable by others (``tempfile`` alone would make it 0600).
The umask is read from ``/proc/self/status`` (Linux; it reflects later ``os.umask`` calls) and
otherwise once, at import: reading it with ``os.umask`` means setting it, which would race with
other threads creating files.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask_by_swap() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


_IMPORT_UMASK = _umask_by_swap()  # at import only: os.umask sets the umask while it reads it


def current_umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``; else as at import)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORT_UMASK


def file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode ``mkdir()`` gives a new folder: ``0o777`` less the umask."""
    return 0o777 & ~current_umask()


def make_temp_dir(parent: str | os.PathLike, *, prefix: str) -> Path:
    """A new folder in ``parent`` (``tempfile.mkdtemp``) with the umask's mode instead of 0700."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        os.chmod(tmp, dir_mode())
    except BaseException:
        tmp.rmdir()
        raise
    return tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, file_mode())  # mkstemp makes it 0600; give it what open() would
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())
