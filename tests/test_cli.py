import pytest

from visjax.cli import _parser, main


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


def test_demo_help_lists_the_sections(capsys):
    from visjax.report.demo import section_names

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "table of contents" in out and ", ".join(section_names()) in out


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
