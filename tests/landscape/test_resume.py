"""Resumable sweeps: a sweep killed mid-way and re-run in its folder equals an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from visjax.base import batching
from visjax.landscape import surface
from visjax.landscape.slices import interpolate, plane

SETUP = textwrap.dedent(
    """
    import numpy as np
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(37, 3)).astype(np.float32)
    P0 = {"w": np.array([0.5, -1.0, 2.0], np.float32), "b": np.array(0.3, np.float32)}
    D1 = {"w": np.array([1.0, 0.0, 0.5], np.float32), "b": np.array(0.0, np.float32)}
    D2 = {"w": np.array([0.0, 2.0, 0.0], np.float32), "b": np.array(1.0, np.float32)}
    XS, YS = np.linspace(-1, 1, 9), np.linspace(-2, 1, 8)

    def quadratic(params, batch):
        return (0.5 * ((params["w"] - batch) ** 2).sum(-1)).mean() + params["b"] ** 2
    """
)
_NS: dict = {}
exec(SETUP, _NS)  # the same arrays and loss here and in the child process
Y, P0, D1, D2, XS, YS, quadratic = (
    _NS[k] for k in ("Y", "P0", "D1", "D2", "XS", "YS", "quadratic")
)

SWEEPER = SETUP + textwrap.dedent(
    """
    import sys, time
    from visjax.landscape.slices import plane

    def slow(done, total):
        print(done, flush=True)
        time.sleep(0.05)

    plane(quadratic, P0, D1, D2, XS, YS, data=Y, batch_size=8, block_size=2,
          run_dir=sys.argv[1], progress=slow)
    print("finished", flush=True)
    """
)


def _sweep(run_dir=None, **kw):
    kw = {"batch_size": 8, "block_size": 2, **kw}
    return plane(quadratic, P0, D1, D2, XS, YS, data=Y, run_dir=run_dir, **kw)["loss"]


def _count_blocks(monkeypatch):
    calls = []
    inner = surface._block

    def counting(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(surface, "_block", counting)
    return calls


def test_killed_sweep_resumes_to_the_uninterrupted_surface(tmp_path, monkeypatch):
    run = tmp_path / "run"
    args = [sys.executable, "-c", SWEEPER, str(run)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:
        try:
            for _ in range(6):  # 6 of 36 blocks finished
                line = proc.stdout.readline().strip()
                assert line.isdigit(), line
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    done = sorted(run.glob("block_*.npy"))
    assert 6 <= len(done) < 36
    assert not list(run.glob(".*tmp"))  # nothing half-written under a block's name
    calls = _count_blocks(monkeypatch)
    resumed = _sweep(run)
    assert len(calls) == 36 - len(done)  # only the missing blocks ran
    monkeypatch.undo()
    np.testing.assert_array_equal(resumed, _sweep())
    assert len(list(run.glob("block_*.npy"))) == 36
    calls = _count_blocks(monkeypatch)
    np.testing.assert_array_equal(_sweep(run), resumed)  # all finished: nothing runs
    assert not calls


def test_another_configuration_in_the_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    _sweep(run)
    config = json.loads((run / "sweep.json").read_text())
    assert config["block"] == 2 and config["batch_size"] == 8
    d1 = {"w": D1["w"] * 2, "b": D1["b"]}
    with pytest.raises(ValueError, match=r"another configuration \(differs in \['directions'\]\)"):
        plane(quadratic, P0, d1, D2, XS, YS, data=Y, batch_size=8, block_size=2, run_dir=run)
    with pytest.raises(ValueError, match=r"differs in \['data'\]"):
        plane(quadratic, P0, D1, D2, XS, YS, data=Y + 1, batch_size=8, block_size=2, run_dir=run)
    with pytest.raises(ValueError, match=r"differs in \['batch_size'\]"):
        _sweep(run, batch_size=4)
    with pytest.raises(ValueError, match=r"differs in .*'grid'"):
        plane(quadratic, P0, D1, D2, XS[:5], YS, data=Y, batch_size=8, block_size=2, run_dir=run)
    with pytest.raises(ValueError, match="another configuration"):
        interpolate(quadratic, P0, D1, [0.0, 1.0], data=Y, run_dir=run)
    (tmp_path / "stray").mkdir()
    np.save(tmp_path / "stray" / "block_000000.npy", np.zeros((2, 1), np.float32))
    with pytest.raises(ValueError, match=r"no sweep\.json"):
        _sweep(tmp_path / "stray")


def test_auto_resumes_with_the_size_the_folder_was_written_with(tmp_path, monkeypatch):
    # "auto" is resolved once and the int is stored: a re-run with "auto" on a machine whose rule
    # picks another size (here: another CPU budget) keeps the folder's chunking, so it resumes
    # without recomputing and gives the same values bit for bit
    run = tmp_path / "run"
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 1)  # "auto" splits 37 rows into chunks
    first = _sweep(run, batch_size="auto")
    stored = json.loads((run / "sweep.json").read_text())["batch_size"]
    assert isinstance(stored, int) and stored < 37
    monkeypatch.undo()  # back to the real budget: "auto" alone would now pick one chunk
    for f in sorted(run.glob("block_*.npy"))[18:]:
        f.unlink()  # half finished
    calls = _count_blocks(monkeypatch)
    resumed = _sweep(run, batch_size="auto")
    assert len(calls) == 18  # the finished blocks were kept
    np.testing.assert_array_equal(resumed, first)
    np.testing.assert_array_equal(_sweep(run, batch_size=stored), first)  # the same as explicit
    assert json.loads((run / "sweep.json").read_text())["batch_size"] == stored
    with pytest.raises(ValueError, match=r"differs in \['batch_size'\]"):
        _sweep(run, batch_size=None)
    # a folder written with an explicit size is resumed by the default call
    _sweep(tmp_path / "explicit")
    calls.clear()
    explicit = tmp_path / "explicit"
    again = plane(quadratic, P0, D1, D2, XS, YS, data=Y, block_size=2, run_dir=explicit)
    assert not calls
    np.testing.assert_array_equal(again["loss"], _sweep())


def test_the_same_loss_name_bound_to_another_function_is_refused(tmp_path):
    # issue 26, defect 1: the config held the names only, and 360 of 714 entries came back as
    # the old loss's values
    run = tmp_path / "run"
    _sweep(run)
    for f in sorted(run.glob("block_*.npy"))[18:]:
        f.unlink()  # half finished

    def shifted(params, batch):
        return quadratic(params, batch) + 1.0

    with pytest.raises(ValueError, match=r"different loss `loss`.*resume=False"):
        plane(shifted, P0, D1, D2, XS, YS, data=Y, batch_size=8, block_size=2, run_dir=run)

    # the same value at the origin, other constants: refused too
    def weighted(c):
        def loss(params, batch):
            return quadratic(params, batch) + ((params["w"] - P0["w"]) * c).sum()

        return loss

    run2 = tmp_path / "run2"
    one, two = np.ones(3, np.float32), np.full(3, 2.0, np.float32)
    kw = {"data": Y, "batch_size": 8, "block_size": 2}
    plane({"q": quadratic, "w": weighted(one)}, P0, D1, D2, XS, YS, run_dir=run2, **kw)
    with pytest.raises(ValueError, match=r"different loss `w`"):
        plane({"q": quadratic, "w": weighted(two)}, P0, D1, D2, XS, YS, run_dir=run2, **kw)
    losses = {"q": quadratic, "w": weighted(one)}
    out = plane(losses, P0, D1, D2, XS, YS, run_dir=run2, **kw)  # the same functions: resumed
    fresh = plane(losses, P0, D1, D2, XS, YS, **kw)
    for k in losses:
        np.testing.assert_array_equal(out[k], fresh[k])


def _damage(block, how):
    raw = block.read_bytes()
    if how == "empty":
        block.write_bytes(b"")
    elif how == "truncated":
        block.write_bytes(raw[: len(raw) // 2])
    else:  # same size, other values
        np.save(block, np.load(block) + 1.0)
        assert len(block.read_bytes()) == len(raw)


@pytest.mark.parametrize("how", ["empty", "truncated", "altered"])
def test_a_damaged_block_is_recomputed_with_a_warning_naming_it(tmp_path, monkeypatch, how):
    # issue 26, defect 2: a zero-byte block stopped the resume with `EOFError: No data left in
    # file`; a same-size block with other values was used silently
    run = tmp_path / "run"
    expected = _sweep(run)
    block = run / "block_000005.npy"
    _damage(block, how)
    calls = _count_blocks(monkeypatch)
    with pytest.warns(RuntimeWarning, match=rf"block_000005\.npy is {how}"):
        resumed = _sweep(run)
    assert len(calls) == 1  # that block only
    np.testing.assert_array_equal(resumed, expected)
    calls.clear()
    np.testing.assert_array_equal(_sweep(run), expected)  # rewritten, with its checksum
    assert not calls


def test_a_block_missing_from_the_manifest_is_recomputed(tmp_path, monkeypatch):
    run = tmp_path / "run"
    expected = _sweep(run)
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(manifest) == 36 and all(len(e["sha256"]) == 64 for e in manifest.values())
    del manifest["block_000003.npy"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    calls = _count_blocks(monkeypatch)
    with pytest.warns(RuntimeWarning, match=r"block_000003\.npy is not in manifest\.json"):
        np.testing.assert_array_equal(_sweep(run), expected)
    assert len(calls) == 1


def test_a_folder_of_the_old_format_is_refused(tmp_path):
    run = tmp_path / "run"
    _sweep(run)
    config = json.loads((run / "sweep.json").read_text())
    assert config["version"] == 2
    del config["loss_functions"]
    config["version"] = 1
    (run / "sweep.json").write_text(json.dumps(config))
    (run / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"older visjax \(run-folder format version 1.*`run_dir`"):
        _sweep(run)
