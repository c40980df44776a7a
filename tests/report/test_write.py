"""visjax.report.write: the report for a user's own model and data."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import visjax.report
from visjax.report import Section
from visjax.report import demo as report_demo
from visjax.report.demo import SectionError, SectionSpec
from visjax.zoo import Split, train


def _data(n_train=96, n_test=48, seed=0):
    """4 classes of 8x8 images: the bright quadrant is the class, plus noise."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 4, n).astype(np.int32)
        x = rng.uniform(0, 0.3, (n, 8, 8, 1)).astype(np.float32)
        for i, c in enumerate(y):
            r, s = divmod(int(c), 2)
            x[i, 4 * r : 4 * r + 4, 4 * s : 4 * s + 4] += 0.7
        return Split(x, y)

    return split(n_train), split(n_test)


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.fc = nnx.Linear(8 * 8 * 4, 4, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.conv(x))
        return self.fc(h.reshape(h.shape[0], -1))


class _LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(4, name="fc")(x.reshape(x.shape[0], -1))


def _ok_section(ctx):
    return Section("Custom", f"{ctx.num_classes} classes, {len(ctx.test.y)} test examples")


def _failing_section(ctx):
    raise RuntimeError("boom")


def test_write_report_for_an_nnx_model(tmp_path):
    tr, te = _data()
    model, history = train(_Net(nnx.Rngs(0)), tr, epochs=2, batch_size=32, test_data=te)
    lines = []
    report = visjax.report.write(
        tmp_path / "out",
        model=model,
        data=(tr.x, tr.y, te.x, te.y),
        history=history,
        sections=["model", "training", "dream", SectionSpec("custom", "Custom", _ok_section)],
        quick=True,
        log=lines.append,
    )
    page = report.read_text()
    for anchor in ("model", "training", "custom", "run"):
        assert f'id="{anchor}"' in page and f'href="#{anchor}"' in page
    assert 'id="dream"' not in page  # demo-only: skipped, with the reason
    assert any("'dream' skipped: needs the demo's own models" in line for line in lines)
    assert "skipped: needs the demo" in page
    assert "4 classes, 48 test examples" in page
    assert 'src="training_curves.png"' in page and "<figcaption>" in page
    assert (tmp_path / "out" / "training_curves.png").stat().st_size > 1000
    assert "conv" in (tmp_path / "out" / "summary.txt").read_text()
    assert f"<th>jax</th><td>{jax.__version__}</td>" in page and "<th>seed</th>" in page


def test_write_accepts_a_linen_module_and_a_digits_like_object(tmp_path):
    tr, te = _data(32, 16)

    class Data:  # a Digits-like object without num_classes: taken from the model's output
        train, test = tr, te

    module = _LinenNet()
    variables = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    lines = []
    report = visjax.report.write(
        tmp_path,
        model=module,
        params=variables,
        data=Data(),
        sections=["model", "training"],
        log=lines.append,
    )
    page = report.read_text()
    assert 'id="model"' in page and 'id="training"' not in page  # no history: skipped
    assert any("'training' skipped: no training history" in line for line in lines)
    assert "4 classes" in page  # the settings' data line


def test_failing_section_is_recorded_and_raised_after_the_report_is_written(tmp_path):
    tr, te = _data(32, 16)
    model = _Net(nnx.Rngs(0))
    specs = [SectionSpec("bad", "Bad", _failing_section), SectionSpec("ok", "OK", _ok_section)]
    with pytest.raises(SectionError, match="bad: RuntimeError: boom") as e:
        visjax.report.write(tmp_path, model=model, data=(*tr, *te), sections=specs, log=print)
    page = (tmp_path / "report.html").read_text()
    assert e.value.report == tmp_path / "report.html" and e.value.failed == {
        "bad": "RuntimeError: boom"
    }
    assert 'id="bad"' in page and "Traceback" in page and "failed: RuntimeError: boom" in page
    assert 'id="ok"' in page  # the other sections still run


def test_default_sections_leave_out_the_demo_only_ones(tmp_path, monkeypatch):
    specs = (
        SectionSpec("generic", "Generic", _ok_section),
        SectionSpec("zoo", "Zoo", _failing_section, demo_only=True),
    )
    monkeypatch.setattr(report_demo, "SECTIONS", specs)
    tr, te = _data(32, 16)
    lines = []
    page = visjax.report.write(
        tmp_path, model=_Net(nnx.Rngs(0)), data=(*tr, *te), log=lines.append
    ).read_text()
    assert 'id="generic"' in page and 'id="zoo"' not in page and "Zoo" not in page
    assert "demo-only sections left out: zoo" in lines


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ((np.zeros((4, 8, 8, 1)), np.zeros(4, int)), "got 2 arrays"),
        (
            (np.zeros((4, 8, 8, 1)), np.zeros(3, int), np.zeros((2, 8, 8, 1)), np.zeros(2, int)),
            "train split needs labels",
        ),
        (
            (np.zeros((4, 8, 8, 1)), np.zeros(4), np.zeros((2, 8, 8, 1)), np.zeros(2, int)),
            "class indices",
        ),
    ],
)
def test_malformed_data_is_refused_before_anything_runs(tmp_path, data, match):
    with pytest.raises(ValueError, match=match):
        visjax.report.write(tmp_path / "o", model=_Net(nnx.Rngs(0)), data=data)
    assert not (tmp_path / "o").exists()


def test_unknown_section_is_refused(tmp_path):
    tr, te = _data(32, 16)
    with pytest.raises(ValueError, match="unknown report section"):
        visjax.report.write(tmp_path, model=_Net(nnx.Rngs(0)), data=(*tr, *te), sections=["x"])
