"""Curvature's Python-driven estimators: ``progress="auto"`` shows a bar on a terminal (over the
Hessian-vector products, steps or groups) without changing the results; ``hvp`` (one compiled
call) takes no ``progress``."""

import inspect
import io
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.curvature import (
    block_curvature,
    hessian_diag,
    hvp,
    lanczos,
    sharpness,
    spectral_density,
    top_eigenvalues,
    trace,
)

KEY = jax.random.key(0)
H = jnp.asarray(np.diag(np.linspace(3.0, -1.0, 6)), jnp.float32)
W0 = {"a": jnp.ones(3), "b": jnp.ones(3)}
YS = jnp.zeros((4, 1))


def _quad(p, batch):
    w = jnp.concatenate([p["a"], p["b"]])
    return 0.5 * w @ (H @ w) + 0.0 * batch.sum() + 0.1 * (w**4).sum()


class _Tty(io.StringIO):
    def isatty(self):
        return True


CALLS = {
    "top eigenvalues": lambda **kw: (
        top_eigenvalues(_quad, W0, data=YS, k=2, n_iter=6, key=KEY, **kw).eigenvalues
    ),
    "spectral density": lambda **kw: (
        spectral_density(_quad, W0, data=YS, n_probes=2, n_iter=4, key=KEY, **kw).density
    ),
    "trace": lambda **kw: trace(_quad, W0, data=YS, n_probes=3, deflate=2, key=KEY, **kw).samples,
    "hessian diagonal": lambda **kw: hessian_diag(_quad, W0, data=YS, n_probes=3, key=KEY, **kw)[
        "a"
    ],
    "sharpness": lambda **kw: sharpness(_quad, W0, data=YS, n_steps=3, **kw).max_loss,
    "block curvature": lambda **kw: (
        block_curvature(_quad, W0, data=YS, groups="layers", key=KEY, n_probes=2, n_iter=3, **kw)[
            "a"
        ].trace
    ),
}


@pytest.mark.parametrize("desc", list(CALLS))
def test_auto_shows_a_bar_on_a_terminal_and_results_match(monkeypatch, desc):
    quiet = CALLS[desc](progress=False)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    shown = CALLS[desc]()  # the default, "auto"
    assert desc in tty.getvalue()
    np.testing.assert_array_equal(np.asarray(shown), np.asarray(quiet))


def test_not_a_terminal_no_bar_and_true_forces_one(capsys):
    CALLS["trace"]()
    assert "trace" not in capsys.readouterr().err
    CALLS["trace"](progress=True)
    assert "trace" in capsys.readouterr().err


def test_lanczos_bar_and_bad_values():
    mv = lambda xs: xs @ H  # noqa: E731
    v0 = jnp.ones(6)
    a = lanczos(mv, v0, 4, progress=False)
    b = lanczos(mv, v0, 4, progress=True)
    np.testing.assert_array_equal(a.alpha, b.alpha)
    with pytest.raises(ValueError, match="`progress`"):
        trace(_quad, W0, data=YS, key=KEY, progress="on")


def test_one_compiled_call_takes_no_progress():
    assert "progress" not in inspect.signature(hvp).parameters
