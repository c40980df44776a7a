from visjax.base.io import save_figure
from visjax.plot import training_curves
from visjax.report import Section, write_report
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
