import numpy as np
import pytest

from visjax.cli import main
from visjax.landscape import load_npz


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_cli_landscape_writes_arrays_and_plots(tmp_path, capsys):
    out = tmp_path / "ls"
    argv = ["landscape", "--out", str(out), "--resolution", "3", "--metrics", "cross_entropy"]
    assert main([*argv, "--cache", str(tmp_path / "cache")]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "contour.png",
        "landscape.npz",
        "landscape_cross_entropy.vtp",
        "line.png",
        "surface3d.png",
        "sweep",
    ]
    saved = load_npz(out / "landscape.npz")
    assert saved["surface_cross_entropy"].shape == (3, 3)
    assert np.isfinite(saved["surface_cross_entropy"]).all()
    # the centre of the plane is the trained model, the line's alpha = 1 too
    i = int(np.argmin(np.abs(saved["alphas"] - 1.0)))
    np.testing.assert_allclose(
        saved["surface_cross_entropy"][1, 1], saved["line_cross_entropy"][i], rtol=1e-5
    )
    assert "swept" in capsys.readouterr().out
    # a re-run resumes from the finished blocks; other settings in the folder are refused
    assert main([*argv, "--cache", str(tmp_path / "cache")]) == 0
    assert "resuming" in capsys.readouterr().out
    again = load_npz(out / "landscape.npz")
    np.testing.assert_array_equal(again["surface_cross_entropy"], saved["surface_cross_entropy"])
    other = [*argv, "--cache", str(tmp_path / "cache"), "--span", "0.5"]
    assert main(other) == 2
    assert "another configuration" in capsys.readouterr().err
    assert main([*other, "--no-resume"]) == 0
    assert "resuming" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--metrics", "hinge"], "unknown loss name"),
        (["--resolution", "1"], "`resolution`"),
    ],  # non-positive sizes are refused by the argument parser: tests/test_cli.py
)
def test_cli_landscape_bad_settings_fail_before_training(tmp_path, capsys, argv, message):
    cache = tmp_path / "cache"
    assert main(["landscape", "--out", str(tmp_path), "--cache", str(cache), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not cache.exists()
