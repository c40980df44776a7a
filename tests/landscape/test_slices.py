import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.landscape import surface
from visjax.landscape.losses import model_losses
from visjax.landscape.slices import interpolate, plane, plane_through
from visjax.landscape.surface import evaluate
from visjax.zoo import digits_cnn, load_digits

RNG = np.random.default_rng(0)
Y = RNG.normal(size=(37, 3)).astype(np.float32)  # the data: 37 points in R^3
P0 = {"w": np.array([0.5, -1.0, 2.0], np.float32), "b": np.array(0.3, np.float32)}
D1 = {"w": np.array([1.0, 0.0, 0.5], np.float32), "b": np.array(0.0, np.float32)}
D2 = {"w": np.array([0.0, 2.0, 0.0], np.float32), "b": np.array(1.0, np.float32)}


def quadratic(params, batch):
    """Mean over the batch of |w - y|² / 2 + b²."""
    return (0.5 * ((params["w"] - batch) ** 2).sum(-1)).mean() + params["b"] ** 2


def closed_form(x, y):
    w = P0["w"] + x * D1["w"] + y * D2["w"]
    b = P0["b"] + x * D1["b"] + y * D2["b"]
    return (0.5 * ((w - Y) ** 2).sum(-1)).mean() + b**2


XS = np.linspace(-1, 1, 5)
YS = np.linspace(-2, 1, 4)


@pytest.mark.parametrize("strategy", ["map", "vmap", "loop"])
@pytest.mark.parametrize("batch_size", [None, 1, 8, 37, 100])
def test_quadratic_plane_equals_closed_form(strategy, batch_size):
    out = plane(quadratic, P0, D1, D2, XS, YS, data=Y, batch_size=batch_size, strategy=strategy)
    assert list(out) == ["loss"]  # a single loss callable is keyed "loss"
    s = out["loss"]
    assert s.shape == (5, 4)
    expected = np.array([[closed_form(x, y) for y in YS] for x in XS])
    np.testing.assert_allclose(s, expected, rtol=2e-6)


def test_interpolation_with_extrapolation():
    p1 = {"w": P0["w"] + D1["w"], "b": P0["b"] + D1["b"]}
    alphas = np.array([-0.5, 0.0, 0.5, 1.0, 1.5])
    out = interpolate(quadratic, P0, p1, alphas, data=Y, batch_size=10)["loss"]
    np.testing.assert_allclose(out, [closed_form(a, 0.0) for a in alphas], rtol=2e-6)


def test_several_metrics_in_one_sweep_and_small_blocks():
    fns = {"q": quadratic, "b2": lambda p, batch: p["b"] ** 2}
    out = evaluate(fns, P0, (D1, D2), [[0, 0], [1, 1], [0.5, -1]], data=Y, block_size=2)
    assert set(out) == {"q", "b2"}
    np.testing.assert_allclose(out["b2"], [0.09, 1.69, 0.49], rtol=1e-6)
    np.testing.assert_allclose(out["q"][1], closed_form(1, 1), rtol=2e-6)


def test_a_repeated_sweep_does_not_trace_again():
    traces = []

    def loss(params, batch):
        traces.append(1)
        return quadratic(params, batch)

    plane(loss, P0, D1, D2, XS, YS, data=Y, batch_size=8)
    n = len(traces)
    other = jax.tree.map(lambda a: a + 1.0, P0)  # new weights: arguments, not constants
    plane(loss, other, D1, D2, XS + 0.5, YS, data=Y + 1.0, batch_size=8)
    assert len(traces) == n


def test_non_finite_points_become_nan_with_one_warning():
    def loss(params, batch):
        return jnp.log(params["b"]) + 0 * batch.sum()

    with pytest.warns(RuntimeWarning, match="non-finite loss at 2 of 4 points"):
        out = interpolate(
            loss, P0, {"w": P0["w"], "b": np.float32(-0.3)}, [0, 0.4, 0.6, 1], data=Y
        )["loss"]
    assert np.isnan(out[2:]).all() and np.isfinite(out[:2]).all()


def test_plane_through_three_models_hits_them():
    p1, p2 = P0, jax.tree.map(lambda a, d: a + d, P0, D1)
    p3 = jax.tree.map(lambda a, d: a + d, P0, D2)
    res = plane_through(quadratic, p1, p2, p3, data=Y, resolution=11, margin=0.0)
    assert list(res.surface) == ["loss"] and res.surface["loss"].shape == (11, 11)
    # corners of the grid: p1 at (min x, 0): check the values at the three models
    for k, p in enumerate((p1, p2, p3)):
        x, y = res.points[k]
        i, j = np.argmin(np.abs(res.xs - x)), np.argmin(np.abs(res.ys - y))
        if abs(res.xs[i] - x) < 1e-5 and abs(res.ys[j] - y) < 1e-5:
            np.testing.assert_allclose(res.surface["loss"][i, j], quadratic(p, Y), rtol=1e-5)
    np.testing.assert_allclose(res.points[1], [np.sqrt(1.25), 0.0], rtol=1e-6)


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_the_three_forms_of_the_digits_cnn_give_the_same_surface():
    data = load_digits().train
    batch = (data.x[:200], data.y[:200])
    surfaces = []
    for form in ("nnx", "linen", "function"):
        m = digits_cnn(form, seed=2)
        d1 = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), m.params)
        d2 = jax.tree.map(lambda p: -0.05 * jnp.ones_like(p), m.params)
        losses = model_losses(m, "cross_entropy", "accuracy")
        surfaces.append(
            plane(losses, m.params, d1, d2, [-1, 0, 1], [0, 1], data=batch, batch_size=64)
        )
    for s in surfaces[1:]:
        for k in ("cross_entropy", "accuracy"):
            np.testing.assert_allclose(s[k], surfaces[0][k], rtol=1e-5)


def test_bad_input_is_refused_before_work():
    calls = []

    def loss(params, batch):
        calls.append(1)
        return quadratic(params, batch)

    with pytest.raises(ValueError, match="`xs` must be strictly increasing"):
        plane(loss, P0, D1, D2, [0, 0], YS, data=Y)
    with pytest.raises(ValueError, match="`ys` must be a non-empty 1-D grid"):
        plane(loss, P0, D1, D2, XS, [], data=Y)
    with pytest.raises(ValueError, match="`d2` must have the model's tree structure"):
        plane(loss, P0, D1, {"w": D2["w"]}, XS, YS, data=Y)
    with pytest.raises(ValueError, match=r"`d1\['w'\]` must have shape"):
        plane(loss, P0, {"w": np.zeros(4), "b": np.float32(0)}, D2, XS, YS, data=Y)
    with pytest.raises(ValueError, match="unknown loss name"):
        plane((digits_cnn("function"), "hinge"), P0, D1, D2, XS, YS, data=Y)
    with pytest.raises(ValueError, match="`strategy`"):
        plane(loss, P0, D1, D2, XS, YS, data=Y, strategy="pmap")
    with pytest.raises(ValueError, match="`data`"):
        plane(loss, P0, D1, D2, XS, YS, data=(Y, Y[:3]))
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="`block_size`"):
            plane(loss, P0, D1, D2, XS, YS, data=Y, block_size=bad)
        with pytest.raises(ValueError, match="`point_chunk`"):
            evaluate(loss, P0, (D1,), [[0.0]], data=Y, point_chunk=bad)
    with pytest.raises(ValueError, match="one line"):
        plane_through(
            loss, P0, jax.tree.map(lambda a: a + 1, P0), jax.tree.map(lambda a: a + 2, P0), data=Y
        )
    assert not calls


def test_loss_mistakes_are_refused_before_the_sweep(monkeypatch):
    # defect 7 of issue 26: they surfaced after the whole sweep, or as an all-NaN surface
    def no_sweep(*args, **kwargs):
        raise AssertionError("the sweep started")

    monkeypatch.setattr(surface, "_block", no_sweep)

    def per_example(params, batch):
        return 0.5 * ((params["w"] - batch) ** 2).sum(-1)

    with pytest.raises(ValueError, match=r"`loss_fn` must return a scalar.*\(37,\)"):
        plane(per_example, P0, D1, D2, XS, YS, data=Y)
    with pytest.raises(ValueError, match=r"`loss_fn\['e'\]` must return a scalar.*\(8,\)"):
        plane({"q": quadratic, "e": per_example}, P0, D1, D2, XS, YS, data=Y, batch_size=8)
    m = digits_cnn("function")
    digits = load_digits().train
    x, y = digits.x[:50], digits.y[:50]
    with pytest.raises(ValueError, match="`data` does not suit `loss_fn`"):
        plane((m, "cross_entropy"), m.params, m.params, m.params, XS, YS, data=(x, y * 1.0))
    with pytest.raises(ValueError, match=r"`loss_fn\['cross_entropy'\]` is nan at the origin"):
        losses = model_losses(m, "accuracy", "cross_entropy")
        plane(losses, m.params, m.params, m.params, XS, YS, data=(x, y + 10), batch_size=16)

    def infinite(params, batch):
        return jnp.log(params["b"] - 0.3) + 0 * batch.sum()

    with pytest.raises(ValueError, match="`loss_fn` is -inf at the origin"):
        plane(infinite, P0, D1, D2, XS, YS, data=Y)


def test_labels_out_of_range_past_the_first_chunk_name_the_chunk():
    # defect 7 of issue 26: the probe sees only the first chunk; a loss that is non-finite at every
    # point was an all-NaN surface with a generic warning, now an error naming the loss and chunk
    m = digits_cnn("function")
    digits = load_digits().train
    x, y = digits.x[:48], np.array(digits.y[:48])
    y[40] = 12  # in the third chunk of 16
    losses = model_losses(m, "cross_entropy", "accuracy")
    with pytest.raises(
        ValueError,
        match=r"`loss_fn\['cross_entropy'\]` is not finite at any of the 20 points "
        r"\(first on data chunk \[32:48\] at the origin\)",
    ):
        plane(losses, m.params, m.params, m.params, XS, YS, data=(x, y), batch_size=16)
