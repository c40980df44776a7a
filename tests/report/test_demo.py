"""The demo's runner: section selection, timings and settings, failures, DemoContext."""

import pytest

from visjax.report import Section
from visjax.report import demo as report_demo
from visjax.report.context import DemoContext, SkipSection
from visjax.report.demo import SECTIONS, SectionError, SectionSpec, run_demo, select_sections


def _data_section(ctx):
    # Uses only the generic names, which for the demo come from the digits (no training).
    return Section(
        "Data", f"{len(ctx.train.y)}/{len(ctx.test.y)} digits, {ctx.num_classes} classes"
    )


def _skipped_section(ctx):
    raise SkipSection("not today")


def _failing_section(ctx):
    raise KeyError("missing")


def test_sections_are_unique_specs_and_the_demo_context_is_a_report_context(tmp_path):
    assert all(isinstance(s, SectionSpec) for s in SECTIONS)
    names = [s.name for s in SECTIONS]
    assert len(set(names)) == len(names) and names[0] == "model"
    ctx = DemoContext(out=tmp_path)
    assert ctx.demo and ctx.num_classes == 10 and ctx.train.x.shape == (1347, 8, 8, 1)
    custom = SectionSpec("x", "X", _data_section)
    chosen = select_sections(["training", custom, "model"])
    assert [s.name for s in chosen] == ["model", "training", "x"] and chosen[-1] is custom


def test_run_demo_times_sections_records_skips_and_failures(tmp_path, monkeypatch):
    specs = (
        SectionSpec("data", "Data", _data_section),
        SectionSpec("later", "Later", _skipped_section),
        SectionSpec("broken", "Broken", _failing_section),
    )
    monkeypatch.setattr(report_demo, "SECTIONS", specs)
    lines = []
    with pytest.raises(SectionError, match="broken: KeyError: 'missing'"):
        run_demo(tmp_path, seed=7, quick=True, log=lines.append)
    page = (tmp_path / "report.html").read_text()
    assert "1347/450 digits, 10 classes" in page
    assert 'id="data"' in page and 'id="later"' not in page and 'id="broken"' in page
    assert "<td>skipped: not today</td>" in page and "failed: KeyError" in page
    assert "<th>seed</th><td>7</td>" in page and "<th>quick</th><td>True</td>" in page
    assert "<th>backend</th>" in page and "<th>visjax</th>" in page
    assert any("'later' skipped: not today" in line for line in lines)
    assert any("'data' done in" in line for line in lines)
    # Only the chosen ones run.
    report = run_demo(tmp_path, sections=["data"], log=lines.append)
    assert 'id="broken"' not in report.read_text()


def test_oserror_stops_the_run(tmp_path, monkeypatch):
    def unwritable(ctx):
        raise PermissionError("cache folder is not writable")

    specs = (SectionSpec("a", "A", unwritable), SectionSpec("b", "B", _data_section))
    monkeypatch.setattr(report_demo, "SECTIONS", specs)
    with pytest.raises(PermissionError):
        run_demo(tmp_path, log=lambda _: None)
    assert not (tmp_path / "report.html").exists()


def test_progress_auto_shows_the_sections_bar_and_log_lines_go_through_tqdm_write(
    tmp_path, monkeypatch, capsys
):
    import io
    import sys

    from tqdm import tqdm

    class Tty(io.StringIO):
        def isatty(self):
            return True

    written = []
    original = tqdm.write

    def spy(s, file=None, end="\n", nolock=False):
        written.append(s)
        original(s, file=file, end=end, nolock=nolock)

    monkeypatch.setattr(tqdm, "write", staticmethod(spy))
    monkeypatch.setattr(report_demo, "SECTIONS", (SectionSpec("data", "Data", _data_section),))
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    run_demo(tmp_path)  # default progress="auto", default log
    assert "report" in tty.getvalue() and "1/1" in tty.getvalue()
    assert any("'data' done in" in s for s in written)  # while the bar was open
    out = capsys.readouterr().out
    assert "'data' done in" in out and "wrote" in out  # each a whole line on standard output
    with pytest.raises(ValueError, match="`progress`"):
        run_demo(tmp_path, progress="maybe")
