import pytest

from visjax.cli import main


def test_demo_quick_writes_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quick", "--seed", "1"]) == 0
    report = (tmp_path / "report.html").read_text()
    assert "training_curves.png" in report and "conv2" in report
    assert (tmp_path / "training_curves.png").stat().st_size > 1000
    assert "5,130" in (tmp_path / "summary.txt").read_text()
    assert "epoch" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out
