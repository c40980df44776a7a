"""Landscape sweeps: ``progress="auto"`` shows a bar on a terminal; bars do not change results."""

import io
import sys

import numpy as np
import pytest

from visjax.landscape.slices import interpolate, plane

Y = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
P0 = {"w": np.array([0.5, -1.0, 2.0], np.float32)}
D1 = {"w": np.array([1.0, 0.0, 0.5], np.float32)}
D2 = {"w": np.array([0.0, 2.0, 0.0], np.float32)}


def quadratic(params, batch):
    return (0.5 * ((params["w"] - batch) ** 2).sum(-1)).mean()


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_auto_shows_a_bar_on_a_terminal_and_results_match(monkeypatch):
    xs = np.linspace(-1, 1, 4)
    quiet = plane(quadratic, P0, D1, D2, xs, xs, data=Y, progress=False, block_size=4)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    shown = plane(quadratic, P0, D1, D2, xs, xs, data=Y, block_size=4)  # default "auto"
    assert "landscape" in tty.getvalue() and "4/4" in tty.getvalue()
    np.testing.assert_array_equal(shown["loss"], quiet["loss"])


def test_not_a_terminal_no_bar(capsys):
    interpolate(quadratic, P0, D1, np.linspace(0, 1, 3), data=Y)
    assert "landscape" not in capsys.readouterr().err


def test_true_forces_a_bar_and_callable_still_works(capsys):
    seen = []
    out = interpolate(quadratic, P0, D1, [0.0, 1.0], data=Y, progress=True)
    assert "landscape" in capsys.readouterr().err
    again = interpolate(
        quadratic, P0, D1, [0.0, 1.0], data=Y, progress=lambda d, t: seen.append((d, t))
    )
    assert seen and seen[-1][0] == seen[-1][1]
    np.testing.assert_array_equal(out["loss"], again["loss"])


def test_bad_progress_is_refused():
    with pytest.raises(ValueError, match="`progress`"):
        interpolate(quadratic, P0, D1, [0.0, 1.0], data=Y, progress="yes")
