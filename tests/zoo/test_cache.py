import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from visjax.zoo import digits_cnn
from visjax.zoo.cache import cache_dir, entry_name, load_or_train
from visjax.zoo.pretrained import trained_digits_cnn
from visjax.zoo.train import History


def fake_train(calls, seed=0):
    def fit():
        calls.append(1)
        model = digits_cnn("function", seed=seed)
        return model, History([1.0, 0.5], [0.1, 0.2], [], [])

    return fit


def assert_same_params(a, b):
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_miss_then_hit(tmp_path):
    calls = []
    like = digits_cnn("function", seed=9)
    first = load_or_train("m", {"seed": 3}, fake_train(calls, 3), like=like, cache=tmp_path)
    second = load_or_train("m", {"seed": 3}, fake_train(calls, 3), like=like, cache=tmp_path)
    assert (first.from_cache, second.from_cache, len(calls)) == (False, True, 1)
    assert_same_params(first.model, second.model)
    assert second.history == first.history
    # Another configuration is another entry.
    third = load_or_train("m", {"seed": 4}, fake_train(calls, 4), like=like, cache=tmp_path)
    assert not third.from_cache and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [entry_name("m", {"seed": 3}), entry_name("m", {"seed": 4})]
    )


def test_truncated_file_is_discarded_and_retrained(tmp_path):
    calls = []
    like = digits_cnn("function", seed=9)
    first = load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path)
    entry = tmp_path / entry_name("m", {})
    biggest = max((p for p in entry.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with open(biggest, "r+b") as f:
        f.truncate(biggest.stat().st_size // 2)
    with pytest.warns(RuntimeWarning, match="discarding corrupt"):
        again = load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path)
    assert not again.from_cache and len(calls) == 2
    assert_same_params(first.model, again.model)
    # The rewritten entry is whole again.
    assert load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path).from_cache


def test_missing_manifest_is_discarded(tmp_path):
    calls = []
    like = digits_cnn("function")
    load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path)
    (tmp_path / entry_name("m", {}) / "manifest.json").unlink()
    with pytest.warns(RuntimeWarning):
        assert not load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path).from_cache


WRITER = textwrap.dedent(
    """
    import sys, time
    from visjax.zoo import cache, digits_cnn
    from visjax.zoo.train import History

    def hang(folder):
        print("saving", flush=True)
        time.sleep(600)

    cache._commit = hang  # stop after the weights are written, before the manifest
    model = digits_cnn("function")
    cache.load_or_train("m", {}, lambda: (model, History([1.0], [0.1], [], [])),
                        like=model, cache=sys.argv[1])
    """
)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_writer_killed_mid_save_leaves_no_entry(tmp_path):
    args = [sys.executable, "-c", WRITER, str(tmp_path)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "saving"
            time.sleep(0.2)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (tmp_path / entry_name("m", {})).exists()  # only a temporary folder is left
    calls = []
    result = load_or_train("m", {}, fake_train(calls), like=digits_cnn("function"), cache=tmp_path)
    assert not result.from_cache and len(calls) == 1
    assert (tmp_path / entry_name("m", {}) / "manifest.json").exists()


def test_unwritable_cache_folder_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=r"a_file/cache.*not writable"):
        cache_dir(blocker / "cache")


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VISJAX_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("VISJAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "visjax"


def test_trained_digits_cnn_trains_once(tmp_path):
    first = trained_digits_cnn(epochs=2, cache=tmp_path)
    second = trained_digits_cnn(epochs=2, cache=tmp_path, form="linen")
    assert not first.from_cache and second.from_cache
    assert second.model.kind == "linen"
    assert_same_params(first.model, second.model)


def test_stale_temp_folders_are_removed_live_ones_kept(tmp_path):
    stale = tmp_path / ".tmp-m-0123-abc"
    (stale / "params").mkdir(parents=True)
    (stale / "params" / "blob").write_bytes(b"x")
    hour_ago = time.time() - 2 * 3600
    for p in (stale / "params" / "blob", stale / "params", stale):
        os.utime(p, (hour_ago, hour_ago))
    live = tmp_path / ".tmp-m-4567-def"  # a writer saving right now
    live.mkdir()
    calls = []
    load_or_train("m", {}, fake_train(calls), like=digits_cnn("function"), cache=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, entry_name("m", {})])


def test_cache_entry_gets_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        load_or_train("m", {}, fake_train([]), like=digits_cnn("function"), cache=tmp_path)
    finally:
        os.umask(old)
    entry = tmp_path / entry_name("m", {})
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (entry, *entry.rglob("*")) if p.is_dir()}
    assert modes == {0o755}
    modes = {stat.S_IMODE(p.stat().st_mode) for p in entry.rglob("*") if p.is_file()}
    assert modes == {0o644}


def _refuse_writes(monkeypatch, root):
    """Make every file or folder creation under ``root`` fail, as on a read-only cache (root
    ignores chmod, and the tests run as root)."""
    real_open, real_mkdir = os.open, os.mkdir

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(path).startswith(str(root)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if str(path).startswith(str(root)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


def test_read_only_cache_serves_its_entries(tmp_path, monkeypatch):
    calls = []
    like = digits_cnn("function", seed=9)
    first = load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path)
    _refuse_writes(monkeypatch, tmp_path)
    again = load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path)
    assert again.from_cache and len(calls) == 1
    assert_same_params(first.model, again.model)
    # A miss must write: refused before training, naming the folder.
    with pytest.raises(OSError, match="not writable"):
        load_or_train("m", {"other": 1}, fake_train(calls), like=like, cache=tmp_path)
    assert len(calls) == 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores chmod")
def test_read_only_cache_folder_by_chmod(tmp_path):
    calls = []
    like = digits_cnn("function", seed=9)
    load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path / "c")
    os.chmod(tmp_path / "c", 0o555)
    try:
        assert load_or_train("m", {}, fake_train(calls), like=like, cache=tmp_path / "c").from_cache
    finally:
        os.chmod(tmp_path / "c", 0o755)
