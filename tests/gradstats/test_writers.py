import csv
import json
import os
import struct
import sys
from typing import NamedTuple

import numpy as np
import pytest

from visjax.gradstats.writers import (
    TensorBoardWriter,
    write_csv,
    write_histograms_csv,
    write_jsonl,
    write_tensorboard,
)

EDGES = np.array([-1.0, -1e-2, -1e-4, 0.0, 1e-4, 1e-2, 1.0])


class Snapshot(NamedTuple):
    """A stand-in for ``visjax.gradstats.transform.Snapshot`` (the agreed contract)."""

    steps: np.ndarray
    stats: dict
    edges: np.ndarray | None


def _snapshot(steps=(0, 10, 20, 30)):
    steps = np.asarray(steps)
    t = steps.size
    rng = np.random.default_rng(0)
    norm = {"conv1": rng.random(t).astype(np.float32), "dense,out": rng.random(t)}
    norm["conv1"][1] = np.nan
    norm["dense,out"][2] = np.inf
    stats = {
        "norm": norm,
        "zero_fraction": {"conv1": np.linspace(0, 1, t), "dense,out": np.zeros(t)},
        "histogram": {
            "conv1": rng.integers(0, 9, (t, 6)).astype(np.float64),
            "dense,out": rng.integers(0, 9, (t, 6)).astype(np.float64),
        },
    }
    return Snapshot(steps, stats, EDGES)


def _sub(snap, sl):
    """The records ``sl`` of a snapshot (what a writer sees when called every k steps)."""
    stats = {n: {g: a[sl] for g, a in gs.items()} for n, gs in snap.stats.items()}
    return Snapshot(snap.steps[sl], stats, snap.edges)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _expected_csv_rows(snap):
    return [
        [str(int(s)), name, group, repr(float(a[t]))]
        for t, s in enumerate(snap.steps)
        for name, gs in snap.stats.items()
        if name != "histogram"
        for group, a in gs.items()
    ]


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))


# CSV


def test_csv_round_trip_long_format_skips_histograms(tmp_path):
    snap = _snapshot()
    p = write_csv(snap, tmp_path / "g.csv")
    rows = _read_csv(p)
    assert rows[0] == ["step", "statistic", "group", "value"]
    assert rows[1:] == _expected_csv_rows(snap)
    for step, name, group, value in rows[1:]:  # exact values back, NaN/Inf included
        t = list(snap.steps).index(int(step))
        _same(float(value), snap.stats[name][group][t])
    assert [q.name for q in tmp_path.iterdir()] == ["g.csv"]  # no temp files


def test_csv_plain_dict_equals_object(tmp_path):
    snap = _snapshot()
    write_csv(snap, tmp_path / "a.csv")
    write_csv(snap._asdict(), tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_csv_append_writes_each_step_once(tmp_path):
    snap = _snapshot(steps=(0, 10, 20, 30, 40))
    p = tmp_path / "g.csv"
    write_csv(_sub(snap, slice(0, 2)), p, append=True)  # creates the file
    write_csv(_sub(snap, slice(0, 4)), p, append=True)  # overlaps: only 20, 30 are new
    write_csv(_sub(snap, slice(0, 4)), p, append=True)  # nothing new
    write_csv(_sub(snap, slice(4, 5)), p, append=True)
    full = tmp_path / "full.csv"
    write_csv(snap, full)
    assert p.read_text() == full.read_text()


def test_csv_append_drops_a_partial_last_line_and_checks_the_header(tmp_path):
    snap = _snapshot()
    p = tmp_path / "g.csv"
    write_csv(_sub(snap, slice(0, 2)), p)
    with open(p, "a") as f:
        f.write("20,norm,con")  # an interrupted append
    write_csv(snap, p, append=True)
    full = tmp_path / "full.csv"
    write_csv(snap, full)
    assert p.read_text() == full.read_text()
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        write_csv(snap, other, append=True)


def test_csv_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    snap = _snapshot()
    p = write_csv(_sub(snap, slice(0, 1)), tmp_path / "g.csv")
    old = p.read_text()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_csv(snap, p)
    assert p.read_text() == old
    assert [q.name for q in tmp_path.iterdir()] == ["g.csv"]


def test_histograms_csv_round_trip_and_append(tmp_path):
    snap = _snapshot()
    p = write_histograms_csv(snap, tmp_path / "h.csv")
    rows = _read_csv(p)
    assert rows[0] == ["step", "group"] + [f"bin_{i}" for i in range(6)]
    expected = [
        (int(s), g, a[t])
        for t, s in enumerate(snap.steps)
        for g, a in snap.stats["histogram"].items()
    ]
    assert len(rows) - 1 == len(expected)
    for row, (step, group, counts) in zip(rows[1:], expected, strict=True):
        assert (int(row[0]), row[1]) == (step, group)
        _same([float(v) for v in row[2:]], counts)
    edges = _read_csv(tmp_path / "h.edges.csv")
    assert edges[0] == ["bin", "lower", "upper"]
    _same([float(r[1]) for r in edges[1:]], EDGES[:-1])
    _same([float(r[2]) for r in edges[1:]], EDGES[1:])
    # append: only new steps; changed edges refuse
    q = tmp_path / "h2.csv"
    write_histograms_csv(_sub(snap, slice(0, 3)), q, append=True)
    write_histograms_csv(snap, q, append=True)
    assert q.read_text() == p.read_text()
    with pytest.raises(ValueError, match="edges"):
        write_histograms_csv(snap._replace(edges=EDGES * 2), q, append=True)


def test_histograms_csv_unknown_statistic_lists_the_known(tmp_path):
    with pytest.raises(ValueError, match=r"'norm'.*\['histogram'\]"):
        write_histograms_csv(_snapshot(), tmp_path / "h.csv", statistic="norm")


# JSON Lines


def test_jsonl_round_trip_with_edges_header(tmp_path):
    snap = _snapshot()
    p = write_jsonl(snap, tmp_path / "g.jsonl")
    lines = [json.loads(line) for line in p.read_text().splitlines()]
    assert lines[0] == {"edges": EDGES.tolist()}
    records = lines[1:]
    assert [r["step"] for r in records] == snap.steps.tolist()
    for t, r in enumerate(records):
        assert set(r) == {"step", *snap.stats}
        for name, gs in snap.stats.items():
            assert list(r[name]) == list(gs)
            for g, a in gs.items():
                _same(r[name][g], a[t])
    assert [q.name for q in tmp_path.iterdir()] == ["g.jsonl"]


def test_jsonl_without_histograms_has_no_header(tmp_path):
    snap = _snapshot()
    snap = snap._replace(stats={"norm": snap.stats["norm"]}, edges=None)
    lines = write_jsonl(snap._asdict(), tmp_path / "g.jsonl").read_text().splitlines()
    assert len(lines) == snap.steps.size and all("step" in json.loads(x) for x in lines)


def test_jsonl_append_no_duplicates_and_edges_checked(tmp_path):
    snap = _snapshot(steps=(1, 2, 3, 5, 8))
    p = tmp_path / "g.jsonl"
    for stop in (2, 2, 4, 5):
        write_jsonl(_sub(snap, slice(0, stop)), p, append=True)
    full = write_jsonl(snap, tmp_path / "full.jsonl")
    assert p.read_text() == full.read_text()
    with pytest.raises(ValueError, match="edges"):
        write_jsonl(snap._replace(edges=EDGES + 1.0), p, append=True)


def test_jsonl_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    snap = _snapshot()
    p = write_jsonl(_sub(snap, slice(0, 1)), tmp_path / "g.jsonl")
    old = p.read_text()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("io error")))
    with pytest.raises(OSError, match="io error"):
        write_jsonl(snap, p)
    assert p.read_text() == old
    assert [q.name for q in tmp_path.iterdir()] == ["g.jsonl"]


# bad input


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"steps": np.array([0, 10, 10, 30])}, ValueError, "increasing"),
        ({"steps": np.zeros((4, 1))}, ValueError, "1-D"),
        ({"stats": {"norm": {"a": np.zeros(3)}}}, ValueError, r"stats\['norm'\]\['a'\]"),
        ({"stats": {"norm": [1.0]}}, TypeError, "group names"),
        ({"edges": None}, ValueError, "edges"),
        ({"edges": EDGES[::-1]}, ValueError, "increasing"),
    ],
)
def test_bad_snapshots_raise(tmp_path, change, error, match):
    snap = _snapshot()._replace(**change)
    with pytest.raises(error, match=match):
        write_jsonl(snap, tmp_path / "g.jsonl")
    assert not (tmp_path / "g.jsonl").exists()


def test_not_a_snapshot_raises(tmp_path):
    with pytest.raises(TypeError, match="steps, stats"):
        write_csv(object(), tmp_path / "g.csv")
    with pytest.raises(ValueError, match="steps"):
        write_csv({"stats": {}}, tmp_path / "g.csv")


# TensorBoard


def test_tensorboard_missing_extra_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"visjax\[tensorboard\]"):
        write_tensorboard(_snapshot(), tmp_path)


def _events(path):
    """Read a TFRecord event file (length, crc, data, crc) back into Event protos."""
    from tensorboardX.proto import event_pb2

    data = path.read_bytes()
    events, i = [], 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        events.append(event_pb2.Event.FromString(data[i + 12 : i + 12 + n]))
        i += 12 + n + 4
    return events


def _values(events):
    return [(e.step, v) for e in events if e.HasField("summary") for v in e.summary.value]


def test_tensorboard_round_trip(tmp_path):
    pytest.importorskip("tensorboardX")
    snap = _snapshot()
    snap.stats["histogram"]["dense,out"][1] = 0.0  # an empty histogram is skipped
    path = write_tensorboard(snap, tmp_path / "run")
    assert path.parent == tmp_path / "run"
    values = _values(_events(path))
    scalars = {
        (s, v.tag): v.simple_value for s, v in values if v.WhichOneof("value") == "simple_value"
    }
    expected = {
        (int(s), f"grad/{n}/{g}"): a[t]
        for t, s in enumerate(snap.steps)
        for n, gs in snap.stats.items()
        if n != "histogram"
        for g, a in gs.items()
    }
    assert (0, "grad/norm/dense_out") in scalars  # the comma is not allowed in a tag
    expected = {(s, tag.replace(",", "_")): v for (s, tag), v in expected.items()}
    assert set(scalars) == set(expected)
    for key, v in expected.items():
        np.testing.assert_allclose(scalars[key], v, rtol=1e-6)  # simple_value is float32
    hists = {(s, v.tag): v.histo for s, v in values if v.WhichOneof("value") == "histo"}
    assert (10, "grad/histogram/dense_out") not in hists
    assert len(hists) == 2 * snap.steps.size - 1
    for t, s in enumerate(snap.steps):
        counts = snap.stats["histogram"]["conv1"][t]
        h = hists[(int(s), "grad/histogram/conv1")]
        _same(h.bucket_limit, EDGES[1:])
        _same(h.bucket, counts)
        assert h.num == counts.sum()
        nz = np.flatnonzero(counts)
        assert (h.min, h.max) == (EDGES[nz[0]], EDGES[nz[-1] + 1])


def test_tensorboard_writer_appends_only_new_steps(tmp_path):
    pytest.importorskip("tensorboardX")
    snap = _snapshot()
    with TensorBoardWriter(tmp_path, prefix="g") as w:
        assert w.write(_sub(snap, slice(0, 2))) == 2
        assert w.write(snap) == 2
        assert w.write(snap) == 0
    (path,) = tmp_path.iterdir()
    steps = [(s, v.tag) for s, v in _values(_events(path)) if v.tag == "g/norm/conv1"]
    assert [s for s, _ in steps] == snap.steps.tolist()
    write_tensorboard(snap, tmp_path)  # a second file, not an overwrite
    assert len(list(tmp_path.iterdir())) == 2
