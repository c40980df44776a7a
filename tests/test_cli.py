from importlib import metadata
from pathlib import Path

import pytest

import visjax
from visjax import cli
from visjax.cli import CACHE_DEFAULT, _parser, main, version


@pytest.mark.slow  # end to end: trains and renders every demo section
def test_demo_quick_writes_report_and_reuses_cached_weights(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["demo", "--out", str(out), "--quick", "--seed", "1", "--cache", str(cache)]
    assert main(argv) == 0
    report = (out / "report.html").read_text()
    assert "training_curves.png" in report and "conv2" in report
    assert 'href="#landscape"' in report and 'id="landscape"' in report and 'id="run"' in report
    assert "<figcaption>" in report and 'class="failed"' not in report
    assert "featviz_classes.png" in report and "Feature visualisation" in report
    assert "gradstats_vanishing.png" in report and (out / "gradstats_cnn.csv").exists()
    assert (out / "training_curves.png").stat().st_size > 1000
    assert "5,130" in (out / "summary.txt").read_text()
    assert (out / "landscape" / "landscape.npz").exists()  # as `visjax demo --help` says
    assert "trained for 15 epochs" in capsys.readouterr().out
    assert not list(out.glob(".*.tmp"))
    # A second run loads the weights instead of training again.
    assert main([*argv, "--sections", "training"]) == 0
    assert "loaded from the cache" in capsys.readouterr().out
    assert "Model" not in (out / "report.html").read_text().split("<body>")[1].split("</h1>")[1]


def test_unknown_section_lists_known_ones(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--sections", "model,nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown report section(s) ['nope']" in err and "'training'" in err
    assert not (tmp_path / "report.html").exists()


def test_unwritable_cache_is_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["demo", "--out", str(tmp_path / "o"), "--quick", "--cache", str(blocker / "c")]
    assert main(argv) == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.parametrize(("value", "expected"), [(None, "auto"), ("auto", "auto"), ("64", 64)])
def test_landscape_batch_size_defaults_to_auto(value, expected):
    argv = ["landscape", "--out", "o"] + ([] if value is None else ["--batch-size", value])
    assert _parser().parse_args(argv).batch_size == expected


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--batch-size", "0"),
        ("--batch-size", "-3"),
        ("--batch-size", "many"),
        ("--resolution", "0"),
        ("--resolution", "-1"),
        ("--span", "0"),
        ("--span", "-0.5"),
        ("--span", "nan"),
        ("--span", "inf"),
    ],
)
def test_landscape_refuses_non_positive_sizes_before_running(tmp_path, capsys, option, value):
    out = tmp_path / "out"
    argv = ["landscape", "--out", str(out), "--cache", str(tmp_path / "c"), option, value]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "positive" in err
    assert not out.exists() and not (tmp_path / "c").exists()


def _help(argv, capsys) -> str:
    """The help text of ``argv``, with its line breaks and indents folded to single spaces."""
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"visjax {metadata.version('visjax')}"
    assert version() == metadata.version("visjax") == visjax.__version__


def test_version_falls_back_to_the_package_version(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cli.metadata, "version", missing)
    assert version() == visjax.__version__


def test_demo_help_lists_the_sections_of_the_registry(capsys):
    from visjax.report.demo import section_names

    out = _help(["demo"], capsys)
    assert "table of contents" in out
    listed = out.split("sections, in report order: ")[1].split(" --cache")[0]
    assert listed.split(", ") == section_names()


def test_demo_help_names_what_the_demo_writes(capsys):
    out = _help(["demo"], capsys)
    for written in ("report.html", "summary.txt", "gradstats_cnn.csv", "landscape/"):
        assert written in out
    assert "(default: out/demo)" in out and "(default: 0)" in out


@pytest.mark.parametrize("command", ["demo", "landscape"])
def test_cache_help_names_the_real_default(command, tmp_path, monkeypatch, capsys):
    from visjax.zoo.cache import cache_dir

    assert f"weight cache folder (default: {CACHE_DEFAULT})" in _help([command], capsys)
    # Each case the help names is the folder visjax.zoo.cache really uses.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VISJAX_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    home = CACHE_DEFAULT.split("else ")[-1]
    assert home == "~/.cache/visjax"
    assert cache_dir() == Path(home).expanduser() == tmp_path / "home" / ".cache" / "visjax"
    assert "$XDG_CACHE_HOME/visjax" in CACHE_DEFAULT
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "visjax"
    assert CACHE_DEFAULT.startswith("$VISJAX_CACHE if set")
    monkeypatch.setenv("VISJAX_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_landscape_help_lists_the_models_and_metrics(capsys):
    from visjax.landscape.losses import NAMES
    from visjax.report.sweep import ZOO_MODELS

    out = _help(["landscape"], capsys)
    assert f"zoo model (default: digits_cnn): {', '.join(ZOO_MODELS)}" in out
    assert f"comma-separated: {', '.join(NAMES)}" in out
    assert "(default: 21)" in out and "(default: auto)" in out


def test_demo_exits_1_after_writing_the_report_when_a_section_fails(tmp_path, monkeypatch, capsys):
    from visjax.report import Section
    from visjax.report import demo as report_demo

    def broken(ctx):
        raise RuntimeError("boom")

    specs = (
        report_demo.SectionSpec("broken", "Broken", broken),
        report_demo.SectionSpec("fine", "Fine", lambda ctx: Section("Fine", "ok")),
    )
    monkeypatch.setattr(report_demo, "SECTIONS", specs)
    assert main(["demo", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "broken: RuntimeError: boom" in err and "report.html" in err
    page = (tmp_path / "report.html").read_text()
    assert 'id="broken"' in page and 'id="fine"' in page
