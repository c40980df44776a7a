"""render: ``progress="auto"`` shows a bar on a terminal without changing the images."""

import io
import sys

import jax
import numpy as np
import pytest

from visjax.featviz import fourier, render
from visjax.zoo import digits_cnn


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _render(**kw):
    cnn = digits_cnn("function")
    return render(
        cnn, param=fourier((8, 8, 1)), n_steps=3, units=[("conv2", 0)], key=jax.random.key(0), **kw
    ).images


def test_auto_shows_a_bar_on_a_terminal_and_images_match(monkeypatch):
    quiet = _render(progress=False)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    shown = _render()
    assert "render" in tty.getvalue()
    np.testing.assert_array_equal(np.asarray(shown), np.asarray(quiet))


def test_not_a_terminal_no_bar_true_forces_one(capsys):
    _render()
    assert "render" not in capsys.readouterr().err
    _render(progress=True)
    assert "render" in capsys.readouterr().err


def test_bad_progress_is_refused():
    with pytest.raises(ValueError, match="`progress`"):
        _render(progress="sometimes")


def test_deepdream_bar_on_a_terminal_and_image_unchanged(monkeypatch):
    from visjax import as_model
    from visjax.featviz import deepdream
    from visjax.zoo import cnn as cnn_module

    params = cnn_module.init_params(jax.random.key(0))
    cnn = as_model(cnn_module.apply, params, input_shape=(None, None, 1))
    img = np.full((12, 12, 1), 0.5, np.float32)

    def dream(**kw):
        return deepdream(cnn, img, layer="conv2", octaves=2, n_steps=2, key=jax.random.key(0), **kw)

    quiet = dream(progress=False)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    shown = dream()
    assert "deepdream" in tty.getvalue()
    np.testing.assert_array_equal(np.asarray(shown), np.asarray(quiet))
    with pytest.raises(ValueError, match="`progress`"):
        dream(progress="sometimes")
