"""zoo.train: ``progress="auto"`` shows a bar over the epochs on a terminal; same weights."""

import io
import sys

import jax
import numpy as np
import pytest

from visjax.zoo import Split, digits_cnn, load_digits
from visjax.zoo.train import train


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _train(**kw):
    d = load_digits()
    small = Split(d.train.x[:64], d.train.y[:64])
    test = Split(d.test.x[:32], d.test.y[:32])
    model, history = train(digits_cnn("nnx"), small, epochs=2, batch_size=32, test_data=test, **kw)
    return jax.tree.leaves(model.params), history


def test_auto_shows_a_bar_on_a_terminal_and_training_is_unchanged(monkeypatch):
    quiet, h_quiet = _train(progress=False)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    shown, h_shown = _train()
    assert "training" in tty.getvalue() and "epoch" in tty.getvalue()
    assert h_shown == h_quiet
    for a, b in zip(shown, quiet, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_not_a_terminal_no_bar_and_bad_value(capsys):
    _train()
    assert "training" not in capsys.readouterr().err
    with pytest.raises(ValueError, match="`progress`"):
        _train(progress=2)
