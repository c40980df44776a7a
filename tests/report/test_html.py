from html.parser import HTMLParser

from visjax.base.io import save_figure
from visjax.plot import training_curves
from visjax.report import Figure, Section, Timing, write_report
from visjax.zoo import History


def test_training_curves_skips_empty_series_and_draws_nan_as_gap():
    h = History([1.0, float("nan"), 0.5], [0.5, 0.7, 0.9], [], [])
    fig = training_curves(h)
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train"]
    assert len(acc_ax.get_lines()[0].get_xdata()) == 3


def test_report_escapes_text_and_links_figures_relatively(tmp_path):
    png = save_figure(training_curves({"train_loss": [1.0, 0.5]}), tmp_path / "fig" / "c.png")
    out = write_report(
        tmp_path / "report.html",
        [Section("A <b>", "x < y & z", figures=[png], preformatted=["<pre>"])],
        title="t",
    )
    page = out.read_text()
    assert "A &lt;b&gt;" in page and "x &lt; y &amp; z" in page
    assert 'src="fig/c.png"' in page
    assert png.read_bytes()[:4] == b"\x89PNG"


class _Tags(HTMLParser):
    """Collects start tags with their attributes and checks that block tags are balanced."""

    def __init__(self):
        super().__init__()
        self.tags, self.open = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in {"section", "figure", "nav", "table", "ol", "p"}:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in {"section", "figure", "nav", "table", "ol", "p"}:
            assert self.open and self.open.pop() == tag, tag


def _parse(page):
    parser = _Tags()
    parser.feed(page)
    assert not parser.open
    return parser.tags


def test_report_has_contents_anchors_captions_and_a_run_section(tmp_path):
    a = save_figure(training_curves({"train_loss": [1.0, 0.5]}), tmp_path / "a_curve.png")
    b = save_figure(training_curves({"train_loss": [1.0, 0.5]}), tmp_path / "b.png")
    c = save_figure(training_curves({"train_loss": [1.0, 0.5]}), tmp_path / "c.png")
    sections = [
        Section("Model", "First paragraph.\n\nSecond paragraph.", figures=[a], anchor="model"),
        Section("Same", "t", figures=[(b, "B caption")]),
        Section("Same", "t", figures=[Figure(c, "C caption", alt="C alt")]),
    ]
    settings = {"seed": 3, "jax": "0.0"}
    timings = [Timing("model", 1.25), Timing("same", 0.5, "skipped: why")]
    page = write_report(
        tmp_path / "report.html", sections, settings=settings, timings=timings
    ).read_text()
    tags = _parse(page)
    ids = [attrs["id"] for tag, attrs in tags if tag == "section"]
    assert ids == ["model", "same", "same-2", "run"]
    links = [attrs["href"] for tag, attrs in tags if tag == "a" and attrs["href"] != "#contents"]
    assert links == [f"#{i}" for i in ids]
    alts = [attrs["alt"] for tag, attrs in tags if tag == "img"]
    assert alts == ["Model: a curve", "B caption", "C alt"]
    assert "<figcaption>B caption</figcaption>" in page and "C caption" in page
    assert "<p>First paragraph.</p>" in page and "<p>Second paragraph.</p>" in page
    assert "<th>seed</th><td>3</td>" in page and "skipped: why" in page
    assert '<td class="num">1.8</td>' in page  # the total (1.25 + 0.5)


def test_report_without_settings_has_no_run_section(tmp_path):
    page = write_report(tmp_path / "r.html", [Section("Run")]).read_text()
    assert [a["id"] for t, a in _parse(page) if t == "section"] == ["run"]
    assert "Timings" not in page
