import os
import stat

import numpy as np
import pytest

import visjax.base.io as io_mod
from visjax.base.io import atomic_write_bytes, atomic_write_text, make_temp_dir, save_figure


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in p.parent.iterdir()] == ["f.txt"]


def test_failed_write_keeps_old_content(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(p, "not bytes")  # type: ignore[arg-type]
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["f.bin"]


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing_it(umask):
    assert io_mod.current_umask() == umask
    assert os.umask(umask) == umask  # unchanged by reading


def test_umask_falls_back_to_the_value_at_import(monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc")

    monkeypatch.setattr(io_mod, "open", no_proc, raising=False)
    assert io_mod.current_umask() == io_mod._IMPORT_UMASK


def test_written_files_get_the_umask_mode_not_0600(tmp_path, umask):
    """report, figure, npz and CSV all go through atomic_write_bytes: 0644 under umask 022."""
    import matplotlib.pyplot as plt

    from visjax.gradstats.writers import write_csv
    from visjax.landscape.export import save_npz
    from visjax.report.html import write_report

    fig, _ = plt.subplots()
    paths = [
        atomic_write_text(tmp_path / "a.txt", "x"),
        write_report(tmp_path / "report.html", []),
        save_figure(fig, tmp_path / "f.png"),
        save_npz(tmp_path / "s.npz", z=np.zeros(3)),
        write_csv(
            {"steps": [0], "stats": {"norm": {"g": [1.0]}}, "edges": None}, tmp_path / "c.csv"
        ),
    ]
    plt.close(fig)
    expected = 0o666 & ~umask
    assert {p.name: _mode(p) for p in paths} == {p.name: expected for p in paths}
    # Replacing a file gives it the same mode again.
    assert _mode(atomic_write_text(tmp_path / "a.txt", "y")) == expected


def test_temp_dir_gets_the_umask_mode(tmp_path, umask):
    d = make_temp_dir(tmp_path, prefix=".tmp-x-")
    assert d.name.startswith(".tmp-x-") and _mode(d) == 0o777 & ~umask
