"""visjax.base.progress: resolving ``progress``, the no-op bar, log lines that never overprint."""

import io
import sys

import pytest

from visjax.base import progress as P


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


@pytest.mark.parametrize("tty", [True, False])
def test_auto_follows_stderr_isatty(monkeypatch, tty):
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    assert P.resolve_progress("auto") is tty


def test_auto_without_isatty_is_off(monkeypatch):
    monkeypatch.setattr(sys, "stderr", object())
    assert P.resolve_progress("auto") is False


@pytest.mark.parametrize("value", [True, False])
def test_bools_force(monkeypatch, value):
    monkeypatch.setattr(sys, "stderr", _Stream(not value))
    assert P.resolve_progress(value) is value


@pytest.mark.parametrize("bad", ["yes", "", 1, 0, None, 1.0])
def test_bad_value_names_the_argument(bad):
    with pytest.raises(ValueError, match="`show_bar`"):
        P.resolve_progress(bad, name="show_bar")
    with pytest.raises(ValueError, match="`progress`"):
        P.resolve_progress(bad)


def test_disabled_bar_is_a_silent_no_op(capsys):
    bar = P.progress_bar(5, desc="x", unit="step", enabled=False)
    assert isinstance(bar, P.NoBar)
    with bar as b:
        b.update()
        b.update(2)
        b.set_postfix(loss="0.1")
        b.set_postfix({"a": 1})
        b.set_description("y")
    assert bar.n == 3
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_enabled_bar_writes_to_stderr(capsys):
    with P.progress_bar(3, desc="work", unit="step", enabled=True) as bar:
        bar.update(3)
        bar.set_postfix(loss="0.1")
    err = capsys.readouterr().err
    assert "work" in err and "3/3" in err


def test_log_without_a_bar_writes_the_line(capsys):
    P.log("hello")
    assert capsys.readouterr().out == "hello\n"
    buf = io.StringIO()
    P.log("to a file", file=buf)
    assert buf.getvalue() == "to a file\n"


def test_log_while_a_bar_is_open_goes_through_tqdm_write(monkeypatch, capsys):
    from tqdm import tqdm

    calls = []
    original = tqdm.write

    def spy(s, file=None, end="\n", nolock=False):
        calls.append(s)
        original(s, file=file, end=end, nolock=nolock)

    monkeypatch.setattr(tqdm, "write", staticmethod(spy))
    with P.progress_bar(2, desc="bar", unit="step", enabled=True) as bar:
        bar.update(1)
        P.log("a line")
        bar.update(1)
    assert calls == ["a line"]
    captured = capsys.readouterr()
    assert "a line\n" in captured.out  # a whole line, not glued to the bar
    assert "a line" not in captured.err
    P.log("after")  # the bar is closed: a plain write
    assert calls == ["a line"]
    assert capsys.readouterr().out == "after\n"
