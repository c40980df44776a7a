"""Writers for gradient statistics: CSV, JSON Lines and TensorBoard event files.

Each writer takes a snapshot of the statistics collected during training (what
``visjax.gradstats.transform.snapshot`` returns, any object with the attributes below, or a plain
dict with these keys):

- ``steps``: ``(T,)`` training step of each record, strictly increasing;
- ``stats``: statistic name -> group (layer) name -> ``(T,)`` array for a scalar statistic
  (``"norm"``, ``"mean"``, ``"std"``, ``"max_abs"``, ``"zero_fraction"``, ``"nonfinite"``,
  ``"update_ratio"``, ...) or ``(T, bins)`` bin counts for a histogram statistic (``"histogram"``);
- ``edges``: ``(bins + 1,)`` histogram bin edges, or ``None`` when there is no histogram. The
  outermost bins also hold the values outside the edges.

File layouts:

- :func:`write_csv`: long format, one row ``step,statistic,group,value`` per scalar value.
  Histogram statistics are skipped there; :func:`write_histograms_csv` writes them as wide rows
  ``step,group,bin_0,...,bin_{k-1}`` with the edges in a side file ``<stem>.edges.csv``
  (``bin,lower,upper``). Non-finite values are written ``nan``, ``inf``, ``-inf`` (``float()``
  and pandas read them back).
- :func:`write_jsonl`: one JSON object per step, ``{"step": 10, "norm": {"conv1": 0.5}, ...,
  "histogram": {"conv1": [counts...]}}``. When the snapshot has histograms, the file starts with
  one header line ``{"edges": [...]}`` (it has no ``"step"`` key). Non-finite values are written as
  Python's :mod:`json` writes them (``NaN``, ``Infinity``), which ``json.loads`` reads back.

Without ``append`` a file is replaced atomically (:mod:`visjax.base.io`): a failed write leaves
the old file as it was. With ``append=True`` only the steps newer than the last step already in the
file are added, so calling a writer every k steps with the whole history (or the latest records)
writes each step once. Appending writes the new lines in one ``write`` and ``fsync``; a crash in
between can leave a partial last line, which the next append drops before writing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from visjax.base.io import atomic_write_text

__all__ = [
    "TensorBoardWriter",
    "write_csv",
    "write_histograms_csv",
    "write_jsonl",
    "write_tensorboard",
]

CSV_HEADER = ("step", "statistic", "group", "value")
_TAG_INVALID = re.compile(r"[^-/\w.]")  # what TensorBoard accepts in a tag


class _Snapshot(NamedTuple):
    steps: np.ndarray
    stats: dict[str, dict[str, np.ndarray]]
    edges: np.ndarray | None


def _as_snapshot(snapshot: Any) -> _Snapshot:
    """Check a snapshot (object or dict) and return it as NumPy arrays."""
    if isinstance(snapshot, Mapping):
        if "steps" not in snapshot or "stats" not in snapshot:
            raise ValueError("`snapshot` must have the keys 'steps', 'stats' (and 'edges')")
        steps, stats, edges = snapshot["steps"], snapshot["stats"], snapshot.get("edges")
    else:
        if not (hasattr(snapshot, "steps") and hasattr(snapshot, "stats")):
            raise TypeError(
                "`snapshot` must have the attributes steps, stats and edges (or be a dict with "
                f"those keys), got {type(snapshot).__name__}"
            )
        steps, stats, edges = snapshot.steps, snapshot.stats, getattr(snapshot, "edges", None)
    steps = np.asarray(steps)
    if steps.ndim != 1 or not (np.issubdtype(steps.dtype, np.number)):
        raise ValueError(f"`snapshot.steps` must be a 1-D numeric array, got {steps.shape}")
    if not np.isfinite(steps).all() or (np.diff(steps) <= 0).any():
        raise ValueError("`snapshot.steps` must be finite and strictly increasing")
    edges = None if edges is None else np.asarray(edges, dtype=np.float64)
    if edges is not None and (
        edges.ndim != 1 or edges.size < 2 or np.isnan(edges).any() or (np.diff(edges) <= 0).any()
    ):
        raise ValueError("`snapshot.edges` must be 1-D, strictly increasing, with >= 2 entries")
    if not isinstance(stats, Mapping):
        raise TypeError(f"`snapshot.stats` must be a mapping, got {type(stats).__name__}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, groups in stats.items():
        if not isinstance(groups, Mapping):
            raise TypeError(f"`snapshot.stats[{name!r}]` must map group names to arrays")
        out[str(name)] = {}
        for group, values in groups.items():
            a = np.asarray(values)
            where = f"`snapshot.stats[{name!r}][{group!r}]`"
            if a.ndim not in (1, 2) or a.shape[0] != steps.size:
                raise ValueError(f"{where} must have shape ({steps.size},) or ({steps.size}, bins)")
            if a.ndim == 2 and (edges is None or edges.size != a.shape[1] + 1):
                raise ValueError(f"{where} has {a.shape[1]} bins: `snapshot.edges` needs that + 1")
            out[str(name)][str(group)] = a
    return _Snapshot(steps, out, edges)


def _step(s: Any) -> int | float:
    return int(s) if isinstance(s, np.integer) else float(s)


def _num(v: Any) -> str:
    return repr(float(v))


def _tail(path: Path) -> str | None:
    """The last complete line of ``path`` (a partial last line is cut off first); None if none."""
    if not path.exists():
        return None
    with open(path, "rb+") as f:
        size = pos = f.seek(0, os.SEEK_END)
        data = b""
        while pos > 0:
            n = min(1 << 16, pos)
            pos -= n
            f.seek(pos)
            data = f.read(n) + data
            if data.count(b"\n") >= 2:
                break
        end = data.rfind(b"\n")
        if pos + end + 1 != size:  # a partial last line from an interrupted append
            f.truncate(pos + end + 1)
        if end < 0:
            return None
        return data[data.rfind(b"\n", 0, end) + 1 : end].decode("utf-8")


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\n")


def _append_text(path: Path, text: str) -> None:
    if not text:
        return
    with open(path, "ab") as f:
        f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _csv_rows(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _csv_last_step(path: Path, header: list[str]) -> float | None:
    """The last step in a CSV file (-inf for a header only); None when it must be created."""
    last = _tail(path)
    if last is None:
        return None
    found = next(csv.reader([_first_line(path)]))
    if found != header:
        raise ValueError(f"cannot append to {str(path)!r}: its header is {found}, not {header}")
    if last == _first_line(path):
        return -math.inf
    return float(next(csv.reader([last]))[0])


def write_csv(snapshot: Any, path: str | os.PathLike, *, append: bool = False) -> Path:
    """Write a snapshot's scalar statistics as a long-format CSV ``step,statistic,group,value``.

    Histogram statistics (``(T, bins)`` arrays) are skipped: write them with
    :func:`write_histograms_csv`. Rows are ordered by step, then statistic and group in the
    snapshot's order; values are written with ``repr(float)`` (exact round trip, ``nan``/``inf``).

    Args:
      snapshot: the statistics (see the module docstring): an object with ``steps``, ``stats`` and
        ``edges`` or a dict with those keys.
      path: the CSV file.
      append: add only the steps newer than the last one in an existing file (which must have the
        same header); a missing or empty file is created. Without it the file is replaced
        atomically.

    Returns:
      The path written.

    Example:
      >>> import tempfile, numpy as np
      >>> snap = {"steps": np.array([0, 10]), "stats": {"norm": {"conv1": np.array([1.5, 0.5])}}}
      >>> with tempfile.TemporaryDirectory() as d:
      ...     p = write_csv(snap, Path(d) / "grads.csv")
      ...     print(p.read_text(), end="")
      step,statistic,group,value
      0,norm,conv1,1.5
      10,norm,conv1,0.5
    """
    snap = _as_snapshot(snapshot)
    path = Path(path)
    header = list(CSV_HEADER)
    last = _csv_last_step(path, header) if append else None
    scalars = [(n, g, a) for n, gs in snap.stats.items() for g, a in gs.items() if a.ndim == 1]
    rows = [
        [_step(s), name, group, _num(a[t])]
        for t, s in enumerate(snap.steps)
        if last is None or s > last
        for name, group, a in scalars
    ]
    if last is None:
        atomic_write_text(path, _csv_rows([header, *rows]))
    else:
        _append_text(path, _csv_rows(rows))
    return path


def _edges_path(path: Path) -> Path:
    return path.with_name(path.stem + ".edges.csv")


def write_histograms_csv(
    snapshot: Any,
    path: str | os.PathLike,
    *,
    statistic: str = "histogram",
    append: bool = False,
) -> Path:
    """Write a histogram statistic as wide CSV rows ``step,group,bin_0,...,bin_{k-1}``.

    The bin edges go to a side file ``<stem>.edges.csv`` with rows ``bin,lower,upper`` (bin ``i``
    spans ``[edges[i], edges[i + 1])``; the first and last bins also hold the values outside the
    edges).

    Args:
      snapshot: the statistics (see the module docstring).
      path: the CSV file of counts, e.g. ``hist.csv`` (edges then go to ``hist.edges.csv``).
      statistic: the histogram statistic to write.
      append: add only the steps newer than the last one in the file; the edges already on disk
        must equal the snapshot's. Without it both files are replaced atomically.

    Returns:
      The path of the counts file.

    Raises:
      ValueError: ``statistic`` is not a histogram statistic of the snapshot (the message lists
        those there are), or the edges differ from the ones on disk when appending.

    Example:
      >>> import tempfile, numpy as np
      >>> snap = {"steps": np.array([0]), "edges": np.array([-1.0, 0.0, 1.0]),
      ...         "stats": {"histogram": {"fc": np.array([[3, 5]])}}}
      >>> with tempfile.TemporaryDirectory() as d:
      ...     p = write_histograms_csv(snap, Path(d) / "hist.csv")
      ...     print(p.read_text() + (Path(d) / "hist.edges.csv").read_text(), end="")
      step,group,bin_0,bin_1
      0,fc,3.0,5.0
      bin,lower,upper
      0,-1.0,0.0
      1,0.0,1.0
    """
    snap = _as_snapshot(snapshot)
    hists = [n for n, gs in snap.stats.items() if any(a.ndim == 2 for a in gs.values())]
    if statistic not in hists:
        raise ValueError(f"unknown histogram statistic {statistic!r}; the snapshot has {hists}")
    assert snap.edges is not None
    path = Path(path)
    edges = snap.edges
    header = ["step", "group", *(f"bin_{i}" for i in range(edges.size - 1))]
    edges_text = _csv_rows(
        [["bin", "lower", "upper"]]
        + [[i, _num(edges[i]), _num(edges[i + 1])] for i in range(edges.size - 1)]
    )
    last = _csv_last_step(path, header) if append else None
    if last is not None:
        side = _edges_path(path)
        if not side.exists() or side.read_text(encoding="utf-8") != edges_text:
            raise ValueError(f"cannot append to {str(path)!r}: the histogram edges changed")
    rows = [
        [_step(s), group, *(_num(v) for v in a[t])]
        for t, s in enumerate(snap.steps)
        if last is None or s > last
        for group, a in snap.stats[statistic].items()
    ]
    if last is None:
        atomic_write_text(_edges_path(path), edges_text)
        atomic_write_text(path, _csv_rows([header, *rows]))
    else:
        _append_text(path, _csv_rows(rows))
    return path


def _json_value(a: np.ndarray) -> float | list[float]:
    return [float(v) for v in a] if a.ndim else float(a)


def write_jsonl(snapshot: Any, path: str | os.PathLike, *, append: bool = False) -> Path:
    """Write a snapshot as JSON Lines: one object per step with every statistic.

    Each line is ``{"step": s, "<statistic>": {"<group>": value, ...}, ...}``; a histogram's value
    is its list of bin counts. When the snapshot has histograms the file starts with a header line
    ``{"edges": [...]}`` (no ``"step"`` key), written once.

    Args:
      snapshot: the statistics (see the module docstring).
      path: the ``.jsonl`` file.
      append: add only the steps newer than the last one in the file; a histogram header already
        there must equal the snapshot's edges. Without it the file is replaced atomically.

    Returns:
      The path written.

    Raises:
      ValueError: when appending, the snapshot's edges differ from the file's header.

    Example:
      >>> import tempfile, numpy as np
      >>> snap = {"steps": np.array([5]), "stats": {"norm": {"fc": np.array([2.0])}}}
      >>> with tempfile.TemporaryDirectory() as d:
      ...     print(write_jsonl(snap, Path(d) / "g.jsonl").read_text(), end="")
      {"step": 5, "norm": {"fc": 2.0}}
    """
    snap = _as_snapshot(snapshot)
    path = Path(path)
    has_hist = any(a.ndim == 2 for gs in snap.stats.values() for a in gs.values())
    header = (
        {"edges": [float(e) for e in snap.edges]} if has_hist and snap.edges is not None else None
    )
    last: float | None = None
    if append and (line := _tail(path)) is not None:
        found = json.loads(_first_line(path))
        found_edges = found.get("edges") if "step" not in found else None
        if header is not None and found_edges != header["edges"]:
            raise ValueError(
                f"cannot append to {str(path)!r}: its histogram edges {found_edges} differ from "
                "the snapshot's (write a new file)"
            )
        tail = json.loads(line)
        last = float(tail["step"]) if "step" in tail else -math.inf
    lines = [] if last is not None or header is None else [json.dumps(header)]
    for t, s in enumerate(snap.steps):
        if last is not None and s <= last:
            continue
        record: dict[str, Any] = {"step": _step(s)}
        for name, groups in snap.stats.items():
            record[name] = {g: _json_value(a[t]) for g, a in groups.items()}
        lines.append(json.dumps(record))
    text = "".join(line + "\n" for line in lines)
    if last is None:
        atomic_write_text(path, text)
    else:
        _append_text(path, text)
    return path


def _tensorboardx():
    try:
        import tensorboardX  # noqa: PLC0415 - optional dependency
    except ImportError as e:
        raise ImportError(
            "writing TensorBoard event files needs tensorboardX: "
            "pip install 'visjax[tensorboard]' (or pip install tensorboardX)"
        ) from e
    return tensorboardX


def _finite_edges(edges: np.ndarray) -> np.ndarray:
    """Edges with infinite outer ends replaced by one bin width beyond their neighbour."""
    e = edges.copy()
    if e.size > 2 and not np.isfinite(e[0]):
        e[0] = e[1] - (e[2] - e[1])
    if e.size > 2 and not np.isfinite(e[-1]):
        e[-1] = e[-2] + (e[-2] - e[-3])
    return e


class TensorBoardWriter:
    """Writes snapshots to a TensorBoard event file (through ``tensorboardX``, an optional extra).

    Scalar statistics become scalars tagged ``<prefix>/<statistic>/<group>`` (characters other
    than letters, digits, ``_-/.`` become ``_``, as TensorBoard requires; NaN and ±Inf are written
    as they are); histogram statistics
    become TensorBoard histograms (``add_histogram_raw``) with the snapshot's fixed edges: bucket
    ``i`` ends at ``edges[i + 1]``; ``min``/``max`` are the outer edges of the first and last
    non-empty bins, and ``sum``/``sum_squares`` are estimated from the bin centres (TensorBoard only
    uses them for its summary numbers). Steps whose counts are all zero or not finite are skipped.

    Like the file writers, :meth:`write` adds only the steps newer than the last one this writer
    wrote, so it can be called every k steps with the whole history. A new writer (a resumed run)
    starts a new event file in ``logdir``; TensorBoard merges the files of one folder.

    Args:
      logdir: the run folder (created when missing).
      prefix: the first part of every tag.

    Raises:
      ImportError: tensorboardX is not installed (``pip install 'visjax[tensorboard]'``).
    """

    def __init__(self, logdir: str | os.PathLike, *, prefix: str = "grad"):
        tbx = _tensorboardx()
        self.logdir = Path(logdir)
        self.prefix = prefix
        self.last_step = -math.inf
        # a unique suffix: two writers opened in the same second would otherwise share a file name
        self._suffix = f".{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self._writer = tbx.SummaryWriter(str(self.logdir), filename_suffix=self._suffix)

    def write(self, snapshot: Any) -> int:
        """Write the steps of ``snapshot`` newer than the last one written.

        Args:
          snapshot: the statistics (see :mod:`visjax.gradstats.writers`).

        Returns:
          The number of steps written.
        """
        snap = _as_snapshot(snapshot)
        new = [t for t, s in enumerate(snap.steps) if s > self.last_step]
        edges = None if snap.edges is None else _finite_edges(snap.edges)
        for t in new:
            step = int(snap.steps[t])
            for name, groups in snap.stats.items():
                for group, a in groups.items():
                    tag = _TAG_INVALID.sub("_", f"{self.prefix}/{name}/{group}")
                    if a.ndim == 1:
                        self._writer.add_scalar(tag, float(a[t]), step)
                    else:
                        assert edges is not None
                        self._histogram(tag, np.asarray(a[t], np.float64), edges, step)
        if new:
            self.last_step = float(snap.steps[new[-1]])
        return len(new)

    def _histogram(self, tag: str, counts: np.ndarray, edges: np.ndarray, step: int) -> None:
        total = counts.sum()
        if not np.isfinite(total) or total <= 0:
            return
        filled = np.flatnonzero(counts)
        centres = 0.5 * (edges[:-1] + edges[1:])
        self._writer.add_histogram_raw(
            tag,
            min=float(edges[filled[0]]),
            max=float(edges[filled[-1] + 1]),
            num=float(total),
            sum=float(counts @ centres),
            sum_squares=float(counts @ centres**2),
            bucket_limits=[float(e) for e in edges[1:]],
            bucket_counts=[float(c) for c in counts],
            global_step=step,
        )

    def flush(self) -> None:
        """Flush pending events to disk."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_tensorboard(snapshot: Any, logdir: str | os.PathLike, *, prefix: str = "grad") -> Path:
    """Write a whole snapshot to a new TensorBoard event file in ``logdir``.

    Tags and histogram conventions as in :class:`TensorBoardWriter`; for writing during training
    keep one :class:`TensorBoardWriter` open instead.

    Args:
      snapshot: the statistics (see the module docstring).
      logdir: the run folder (created when missing).
      prefix: the first part of every tag.

    Returns:
      The path of the event file written.

    Raises:
      ImportError: tensorboardX is not installed (``pip install 'visjax[tensorboard]'``).
    """
    with TensorBoardWriter(logdir, prefix=prefix) as w:
        w.write(snapshot)
    (path,) = Path(logdir).glob(f"events.out.tfevents.*{w._suffix}")
    return path
