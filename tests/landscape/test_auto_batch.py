"""``batch_size="auto"`` (the default) in landscape sweeps: resolved once, before the sweep, to the
int that the probe, the error messages, the run folder and the compiled blocks all use."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.base import batching
from visjax.base.data import chunk_ranges
from visjax.landscape import surface
from visjax.landscape.losses import model_losses
from visjax.landscape.slices import interpolate, plane, plane_through
from visjax.landscape.surface import dataset_mean, evaluate
from visjax.report.sweep import sweep_trained
from visjax.zoo import digits_cnn, load_digits

RNG = np.random.default_rng(0)
Y = RNG.normal(size=(37, 3)).astype(np.float32)
P0 = {"w": np.array([0.5, -1.0, 2.0], np.float32), "b": np.array(0.3, np.float32)}
D1 = {"w": np.array([1.0, 0.0, 0.5], np.float32), "b": np.array(0.0, np.float32)}
D2 = {"w": np.array([0.0, 2.0, 0.0], np.float32), "b": np.array(1.0, np.float32)}
XS, YS = np.linspace(-1, 1, 5), np.linspace(-2, 1, 4)


def quadratic(params, batch):
    return (0.5 * ((params["w"] - batch) ** 2).sum(-1)).mean() + params["b"] ** 2


@pytest.fixture
def small_chunks(monkeypatch):
    """A tiny CPU budget, so that "auto" splits even small data into several chunks."""
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 1)


def _sizes_used(monkeypatch):
    """The data chunk size every compiled block is called with."""
    sizes = []
    inner = surface._block

    def spy(*args, **kwargs):
        sizes.append(args[5])
        return inner(*args, **kwargs)

    monkeypatch.setattr(surface, "_block", spy)
    return sizes


@pytest.mark.parametrize("strategy", ["map", "vmap"])
def test_default_equals_explicit_and_one_batch(small_chunks, monkeypatch, strategy):
    sizes = _sizes_used(monkeypatch)
    auto = plane(quadratic, P0, D1, D2, XS, YS, data=Y, strategy=strategy)["loss"]
    used = set(sizes)
    assert len(used) == 1
    (size,) = used
    assert isinstance(size, int) and 1 < len(chunk_ranges(37, size)) <= batching.AUTO_MAX_UNROLLED
    for other in (size, 8, None):
        explicit = plane(quadratic, P0, D1, D2, XS, YS, data=Y, batch_size=other)["loss"]
        np.testing.assert_allclose(auto, explicit, rtol=1e-5)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_default_on_the_digits_cnn_equals_explicit_sizes(small_chunks, monkeypatch):
    m = digits_cnn("function", seed=1)
    digits = load_digits().train
    batch = (digits.x[:100], digits.y[:100])
    d1 = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), m.params)
    d2 = jax.tree.map(lambda p: -0.05 * jnp.ones_like(p), m.params)
    losses = model_losses(m, "cross_entropy", "accuracy")
    sizes = _sizes_used(monkeypatch)
    auto = plane(losses, m.params, d1, d2, [-1, 0, 1], [0, 1], data=batch)
    assert sizes and sizes[0] is not None and sizes[0] < 100
    for other in (32, None):
        explicit = plane(losses, m.params, d1, d2, [-1, 0, 1], [0, 1], data=batch, batch_size=other)
        for k in auto:
            np.testing.assert_allclose(auto[k], explicit[k], rtol=1e-5)


def test_default_without_splitting_is_one_batch(monkeypatch):
    sizes = _sizes_used(monkeypatch)
    plane(quadratic, P0, D1, D2, XS, YS, data=Y)
    assert sizes == [None]  # 37 tiny rows fit the CPU budget: one chunk


def test_vmap_shares_the_budget_among_the_points_of_a_chunk(monkeypatch):
    row = batching.tree_bytes_per_row(lambda b: quadratic(P0, b), Y)
    # a budget of 8 rows per point: map takes chunks of 8 (evened out), vmap of 1 row x 8 points
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 8 * row)
    sizes = _sizes_used(monkeypatch)
    coords = np.stack(np.meshgrid(XS, YS, indexing="ij"), -1).reshape(-1, 2)
    kw = dict(data=Y, block_size=8, point_chunk=8)
    evaluate(quadratic, P0, (D1, D2), coords, strategy="map", **kw)
    evaluate(quadratic, P0, (D1, D2), coords, strategy="vmap", **kw)
    assert sizes[0] == 8
    assert sizes[-1] == batching.auto_rows(37, 8 * row, max_chunks=batching.AUTO_MAX_UNROLLED)
    assert sizes[-1] < sizes[0]


def test_error_message_names_the_chunk_auto_chose(small_chunks, monkeypatch):
    m = digits_cnn("function")
    digits = load_digits().train
    x, y = digits.x[:48], np.array(digits.y[:48])
    y[40] = 12
    losses = model_losses(m, "cross_entropy", "accuracy")
    sizes = _sizes_used(monkeypatch)
    with pytest.raises(ValueError, match=r"is not finite at any of the 20 points") as e:
        plane(losses, m.params, m.params, m.params, XS, YS, data=(x, y))
    (start, stop) = next((a, b) for a, b in chunk_ranges(48, sizes[0]) if a <= 40 < b)
    assert f"first on data chunk [{start}:{stop}] at the origin" in str(e.value)
    assert start > 0  # not the first chunk: the probe (on the first chunk) did not see it


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "Auto", "none", "128"])
def test_bad_batch_size_is_refused(bad):
    with pytest.raises(ValueError, match="`batch_size`"):
        plane(quadratic, P0, D1, D2, XS, YS, data=Y, batch_size=bad)
    with pytest.raises(ValueError, match="`batch_size`"):
        interpolate(quadratic, P0, D1, [0.0, 1.0], data=Y, batch_size=bad)
    with pytest.raises(ValueError, match="`batch_size`"):
        plane_through(quadratic, P0, D1, D2, data=Y, batch_size=bad)
    with pytest.raises(ValueError, match="`batch_size`"):
        evaluate(quadratic, P0, (D1,), [[0.0]], data=Y, batch_size=bad)
    with pytest.raises(ValueError, match="`batch_size`"):
        dataset_mean((quadratic,), P0, data=Y, batch_size=bad)


def test_sweep_runner_refuses_bad_batch_size_before_work(tmp_path):
    with pytest.raises(ValueError, match="`batch_size`"):
        sweep_trained(tmp_path / "o", None, None, batch_size=0)
    assert not (tmp_path / "o").exists()


def test_run_folder_stores_the_resolved_size(small_chunks, tmp_path):
    run = tmp_path / "run"
    plane(quadratic, P0, D1, D2, XS, YS, data=Y, run_dir=run)
    stored = json.loads((run / "sweep.json").read_text())["batch_size"]
    assert isinstance(stored, int) and 1 < len(chunk_ranges(37, stored))
