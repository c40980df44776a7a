"""Bad inputs, generated: every public method either refuses them by name or returns a finite
result of the documented shape.

Property (hypothesis): for each case of the conformance list (``tests/test_conformance.py``) and
each parameter-space tool (landscape ``plane``/``interpolate``, curvature ``top_eigenvalues``/
``trace``/``hessian_diag``/``spectral_density``, gradstats ``per_example_grads``/
``per_example_stats``), a generated input (wrong rank or H/W/C, integer or boolean dtype, NaN/Inf
at a random position, targets out of range, negative, float or of the wrong length, zero or
negative sizes, negative ``stdev``, NaN/Inf in ``params``/``v``/directions, bad ``tol``/``key``,
a ragged ``target``) raises ``ValueError``/``TypeError`` whose message names the
argument as the checks write it (backticked: "`x`"); a valid input (drawn values on a small fixed
set of shapes, so compiled programs are reused) gives a finite result of the documented shape.

Invalid inputs stop at the eager checks, so the default run is fast (``max_examples`` small,
``derandomize=True``: the same examples on every run); ``-m slow`` runs more examples.
Strings other than ``"auto"`` (the default batch size) are fuzzed as invalid sizes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_conformance import CASES, KEY, SLOW_CONFORMANCE, Case
from visjax import as_model, curvature, embed, evaluation, gradstats, inspect, landscape
from visjax import attribution as va
from visjax.attribution import cam, metrics
from visjax.zoo import digits_cnn

FAST = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

N_CLASSES = 10
VALID_N = (1, 2)  # the fixed set of valid batch sizes (compiled programs are reused)


def _refused(exc: BaseException, name: str) -> bool:
    return isinstance(exc, ValueError | TypeError) and f"`{name}" in str(exc)


def _check_outcome(call: Callable[[], Any], name: str, *, must_raise: bool, shape=None):
    """Either a ValueError/TypeError naming ``name`` or (unless ``must_raise``) a finite result
    of ``shape`` (a shape, or a tree of shapes)."""
    try:
        out = call()
    except (ValueError, TypeError) as e:
        assert _refused(e, name), f"message does not name `{name}`: {type(e).__name__}: {e}"
        return None
    assert not must_raise, f"bad `{name}` accepted"
    leaves = jax.tree.leaves(out)
    assert all(bool(np.isfinite(np.asarray(a)).all()) for a in leaves), "non-finite result"
    if shape is not None:
        assert jax.tree.map(np.shape, out) == shape
    return out


# ---------------------------------------------------------------------------------------------
# Attribution and model cases: bad `x`, bad `target`, bad sizes.


@st.composite
def bad_x(draw):
    """``(x, target, why)``: an ``x`` every case must refuse, with a valid target."""
    n = draw(st.sampled_from(VALID_N))
    t = np.arange(n) % N_CLASSES
    kind = draw(st.sampled_from(["rank", "hwc", "int", "bool", "nonfinite", "type"]))
    if kind == "type":
        return draw(st.sampled_from([None, "x", {"x": 1}, [[0.5] * 8] * 8])), t, kind
    if kind == "rank":
        shape = draw(st.sampled_from([(8, 8, 1), (n, 8, 8), (n, 8, 8, 1, 1), (n, 64), ()]))
        return np.full(shape, 0.5, np.float32), t, kind
    if kind == "hwc":
        h, w, c = draw(
            st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 4)).filter(
                lambda s: s != (8, 8, 1)
            )
        )
        return np.full((n, h, w, c), 0.5, np.float32), t, kind
    if kind == "int":
        return np.ones((n, 8, 8, 1), draw(st.sampled_from([np.int32, np.uint8]))), t, kind
    if kind == "bool":
        return np.ones((n, 8, 8, 1), bool), t, kind
    x = np.full((n, 8, 8, 1), 0.5, np.float32)
    x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return x, t, kind


@st.composite
def bad_target(draw):
    """``(x, target)``: a valid ``x`` and a ``target`` every case must refuse."""
    n = draw(st.sampled_from(VALID_N))
    x = np.full((n, 8, 8, 1), 0.5, np.float32)
    t = np.arange(n) % N_CLASSES
    kind = draw(
        st.sampled_from(["high", "negative", "float", "length", "bool", "rank", "scalar", "type"])
    )
    if kind == "scalar":
        return x, draw(st.integers(N_CLASSES, 10_000) | st.integers(-10_000, -1))
    if kind == "type":
        return x, draw(st.sampled_from([None, "3", 3.0, [1.5]]))
    i = draw(st.integers(0, n - 1))
    if kind == "high":
        t[i] = draw(st.integers(N_CLASSES, 10_000))
    elif kind == "negative":
        t[i] = draw(st.integers(-10_000, -1))
    elif kind == "float":
        t = t.astype(draw(st.sampled_from([np.float32, np.float16]))) + 0.5
    elif kind == "length":
        t = np.arange(draw(st.integers(0, 5).filter(lambda m: m != n))) % N_CLASSES
    elif kind == "bool":
        t = draw(st.sampled_from([True, np.ones(n, bool)]))
    else:
        t = t[:, None]
    return x, t


@st.composite
def valid_input(draw):
    n = draw(st.sampled_from(VALID_N))
    x = np.asarray(
        draw(st.lists(st.floats(0, 1, width=32), min_size=n * 64, max_size=n * 64)), np.float32
    ).reshape(n, 8, 8, 1)
    t = np.asarray(draw(st.lists(st.integers(0, N_CLASSES - 1), min_size=n, max_size=n)))
    return x, t


def _uses_target(case: Case) -> bool:
    return not case.name.startswith(
        ("Model.", "inspect.feature_maps", "attention.maps", "attention.rollout")
    )


def _checks_finite(case: Case) -> bool:
    # Model.__call__/apply/activations/perturbed check shapes and dtypes only (they run under
    # jit): a forward pass propagates NaN as jnp does.
    return not case.name.startswith("Model.")


@pytest.fixture(scope="module")
def model():
    return digits_cnn("nnx", seed=3)


def _x_property(case, model, data):
    x, t, kind = data
    if kind == "nonfinite" and not _checks_finite(case):
        return
    _check_outcome(lambda: case.fn(model, x, t), "x", must_raise=True)


def _target_property(case, model, data):
    x, t = data
    if t is None and case.name == "eigen_cam":
        return  # class-agnostic: `target=None` is documented
    _check_outcome(lambda: case.fn(model, x, t), "target", must_raise=True)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@FAST
@given(data=bad_x())
def test_bad_x_refused(case, model, data):
    _x_property(case, model, data)


@pytest.mark.parametrize("case", [c for c in CASES if _uses_target(c)], ids=lambda c: c.name)
@FAST
@given(data=bad_target())
def test_bad_target_refused(case, model, data):
    _target_property(case, model, data)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@SLOW
@given(data=bad_x())
def test_bad_x_refused_more(case, model, data):
    _x_property(case, model, data)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if _uses_target(c)], ids=lambda c: c.name)
@SLOW
@given(data=bad_target())
def test_bad_target_refused_more(case, model, data):
    _target_property(case, model, data)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@settings(SLOW, max_examples=5)
@given(data=valid_input())
def test_valid_input_finite(case, model, data):
    x, t = data
    _check_outcome(lambda: case.fn(model, x, t), "x", must_raise=False, shape=case.shape(x.shape))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_empty_batch(case, model):
    """An empty batch gives an empty result of the documented shape."""
    x = np.zeros((0, 8, 8, 1), np.float32)
    t = np.zeros((0,), np.int32)
    out = case.fn(model, x, t)
    assert out.shape == case.shape(x.shape)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("x", [None, "x", {"x": 1}], ids=["None", "str", "dict"])
def test_non_array_x_refused(case, model, x):
    _check_outcome(lambda: case.fn(model, x, np.array([0, 3])), "x", must_raise=True)


# The sanity checks (SLOW_CONFORMANCE): refused before anything compiles, so fast here.
@pytest.mark.parametrize("case", SLOW_CONFORMANCE, ids=lambda c: c.name)
@FAST
@given(data=bad_x())
def test_sanity_check_bad_x_refused(case, model, data):
    _x_property(case, model, data)


@pytest.mark.parametrize("case", SLOW_CONFORMANCE, ids=lambda c: c.name)
@FAST
@given(data=bad_target())
def test_sanity_check_bad_target_refused(case, model, data):
    _target_property(case, model, data)


@pytest.mark.parametrize("case", SLOW_CONFORMANCE, ids=lambda c: c.name)
def test_sanity_check_empty_batch_and_non_array_x(case, model):
    x = np.zeros((0, 8, 8, 1), np.float32)
    assert case.fn(model, x, np.zeros((0,), np.int32)).shape == case.shape(x.shape)
    for bad in (None, "x", {"x": 1}):
        _check_outcome(lambda bad=bad: case.fn(model, bad, np.array([0, 3])), "x", must_raise=True)


MAPS = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
BAD_NUMBER = st.sampled_from([0.0, -1.0, np.nan, np.inf, "1", True])
SIMILARITY_ARGS = [
    ("a", lambda v: metrics.spearman(v, MAPS), st.sampled_from([None, "x", MAPS[0], MAPS[:1]])),
    ("b", lambda v: metrics.ssim(MAPS, v, win_size=3), st.sampled_from([None, MAPS[..., None]])),
    ("absolute", lambda v: metrics.spearman(MAPS, MAPS, absolute=v), st.sampled_from(["yes", 1])),
    ("k1", lambda v: metrics.ssim(MAPS, MAPS, win_size=3, k1=v), BAD_NUMBER),
    ("k2", lambda v: metrics.ssim(MAPS, MAPS, win_size=3, k2=v), BAD_NUMBER),
    ("data_range", lambda v: metrics.ssim(MAPS, MAPS, win_size=3, data_range=v), BAD_NUMBER),
    ("win_size", lambda v: metrics.ssim(MAPS, MAPS, win_size=v), st.sampled_from([0, 4, 9, 3.0])),
    (
        "pixels_per_cell",
        lambda v: metrics.hog_similarity(MAPS, MAPS, pixels_per_cell=v, cells_per_block=(2, 2)),
        st.sampled_from([2, (2, 2, 2), (0, 2), (2.0, 2), (5, 5)]),
    ),
    (
        "cells_per_block",
        lambda v: metrics.hog_similarity(MAPS, MAPS, pixels_per_cell=(2, 2), cells_per_block=v),
        st.sampled_from([2, (2,), (-1, 2), (5, 5)]),
    ),
    ("orientations", lambda v: metrics.hog_similarity(MAPS, MAPS, orientations=v), BAD_NUMBER),
    ("block_norm", lambda v: metrics.hog_similarity(MAPS, MAPS, block_norm=v), st.just("L3")),
]


@pytest.mark.parametrize("arg", SIMILARITY_ARGS, ids=lambda a: a[0])
@FAST
@given(data=st.data())
def test_similarity_bad_argument_refused(arg, data):
    name, call, values = arg
    value = data.draw(values)
    # (5, 5) cells or blocks: "too small" names both arguments in one message
    too_small = isinstance(value, tuple) and value == (5, 5)
    _check_outcome(lambda: call(value), "" if too_small else name, must_raise=True)


@pytest.mark.parametrize("fn", [metrics.spearman, metrics.ssim, metrics.hog_similarity])
def test_similarity_nonfinite_maps_refused(fn):
    bad = MAPS.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="`b` contains NaN or Inf"):
        fn(MAPS, bad)


def test_ablation_cam_zero_score_finite(model):
    """All-zero input: every logit is 0, and Ablation-CAM's relative drop (s − s_c)/s was 0/0."""
    x = np.zeros((1, 8, 8, 1), np.float32)
    assert float(jnp.abs(model(x)).max()) == 0.0
    out = cam.ablation_cam(model, x, np.array([0]), layer="conv2", batch_size=40)
    assert out.shape == (1, 8, 8)
    assert bool(jnp.all(jnp.isfinite(out)))


class Size(NamedTuple):
    name: str  # the argument
    fn: Callable  # (model, x, target, value) -> result
    shape: Callable = lambda s: s


REFS = jnp.zeros((2, 8, 8, 1)) + 0.5
GRID8 = np.arange(8).reshape(2, 4).repeat(4, 0).repeat(2, 1)[..., None]

SIZES = [
    Size("n_steps", lambda m, x, t, v: va.integrated_gradients(m, x, t, n_steps=v)),
    Size("batch_size", lambda m, x, t, v: va.integrated_gradients(m, x, t, batch_size=v)),
    Size("n_steps", lambda m, x, t, v: va.blur_integrated_gradients(m, x, t, n_steps=v)),
    Size(
        "n_samples",
        lambda m, x, t, v: va.expected_gradients(m, x, t, references=REFS, n_samples=v, key=KEY),
    ),
    Size(
        "batch_size",
        lambda m, x, t, v: va.expected_gradients(
            m, x, t, references=REFS, n_samples=4, key=KEY, batch_size=v
        ),
    ),
    Size(
        "n_samples",
        lambda m, x, t, v: va.noise_tunnel(va.saliency, n_samples=v, stdev=0.1)(m, x, t, key=KEY),
    ),
    Size("batch_size", lambda m, x, t, v: va.occlusion(m, x, t, window=(3, 3, 1), batch_size=v)),
    Size("batch_size", lambda m, x, t, v: va.feature_ablation(m, x, t, batch_size=v)),
    Size(
        "n_samples",
        lambda m, x, t, v: va.shapley_value_sampling(m, x, t, mask=GRID8, n_samples=v, key=KEY),
    ),
    Size(
        "batch_size",
        lambda m, x, t, v: va.exact_shapley(m, x, t, mask=GRID8, batch_size=v),
    ),
    Size("n_samples", lambda m, x, t, v: va.kernel_shap(m, x, t, mask=GRID8, n_samples=v, key=KEY)),
    Size("n_samples", lambda m, x, t, v: va.lime(m, x, t, mask=GRID8, n_samples=v, key=KEY)),
    Size("batch_size", lambda m, x, t, v: cam.score_cam(m, x, t, layer="conv2", batch_size=v)),
    Size("batch_size", lambda m, x, t, v: cam.ablation_cam(m, x, t, layer="conv2", batch_size=v)),
]

# Zero, negative, fractional and boolean sizes; batch sizes also refuse strings other than "auto".
BAD_SIZE = st.one_of(st.integers(-1_000, 0), st.sampled_from([2.5, 3.0, True, np.float32(4.0)]))
BAD_BATCH = BAD_SIZE | st.sampled_from(["Auto", "big", ""])


@pytest.mark.parametrize("size", SIZES, ids=[f"{i}-{s.name}" for i, s in enumerate(SIZES)])
@FAST
@given(value=BAD_SIZE)
def test_bad_size_refused(size, model, value):
    x = np.full((2, 8, 8, 1), 0.5, np.float32)
    t = np.array([0, 3])
    _check_outcome(lambda: size.fn(model, x, t, value), size.name, must_raise=True)


BATCH_SIZES = [s for s in SIZES if s.name == "batch_size"]


@pytest.mark.parametrize("size", BATCH_SIZES, ids=[f"{i}" for i in range(len(BATCH_SIZES))])
@pytest.mark.parametrize("value", ["Auto", "big", ""])
def test_string_batch_size_refused(size, model, value):
    x = np.full((2, 8, 8, 1), 0.5, np.float32)
    t = np.array([0, 3])
    _check_outcome(lambda: size.fn(model, x, t, value), "batch_size", must_raise=True)


@FAST
@given(stdev=st.floats(-100, 0, exclude_max=True, allow_nan=False) | st.just(float("nan")))
def test_negative_stdev_refused(model, stdev):
    x = np.full((2, 8, 8, 1), 0.5, np.float32)

    def call():
        fn = va.noise_tunnel(va.saliency, n_samples=2, stdev=stdev)
        return fn(model, x, np.array([0, 3]), key=KEY)

    _check_outcome(call, "stdev", must_raise=True)


# ---------------------------------------------------------------------------------------------
# Parameter-space tools: bad `data`, sizes, grids and directions on a small linear classifier.

PARAMS = {"w": jnp.full((3, 4), 0.1), "b": jnp.zeros(4)}


def LOSS(params, batch):
    x, y = batch
    logits = x @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(np.float32), (np.arange(n) % 4).astype(np.int32)


GRID = np.linspace(-1.0, 1.0, 3)


def _plane(data, batch_size=None, xs=GRID, d1=PARAMS):
    return landscape.plane(LOSS, PARAMS, d1, PARAMS, xs, GRID, data=data, batch_size=batch_size)


TOOLS = {
    "plane": (lambda data, bs: _plane(data, bs), {"loss": (3, 3)}),
    "interpolate": (
        lambda data, bs: landscape.interpolate(
            LOSS, PARAMS, jax.tree.map(lambda a: a + 1, PARAMS), GRID, data=data, batch_size=bs
        ),
        {"loss": (3,)},
    ),
    "top_eigenvalues": (
        lambda data, bs: (
            curvature.top_eigenvalues(
                LOSS, PARAMS, data=data, k=2, n_iter=8, key=KEY, batch_size=bs
            ).eigenvalues
        ),
        (2,),
    ),
    "trace": (
        lambda data, bs: (
            curvature.trace(LOSS, PARAMS, data=data, n_probes=4, key=KEY, batch_size=bs).estimate
        ),
        (),
    ),
    "hessian_diag": (
        lambda data, bs: curvature.hessian_diag(
            LOSS, PARAMS, data=data, n_probes=4, key=KEY, batch_size=bs
        ),
        {"b": (4,), "w": (3, 4)},
    ),
    "spectral_density": (
        lambda data, bs: (
            curvature.spectral_density(
                LOSS, PARAMS, data=data, n_iter=6, key=KEY, grid=GRID, sigma=0.1, batch_size=bs
            ).density
        ),
        (3,),
    ),
    "per_example_grads": (
        lambda data, bs: gradstats.per_example_grads(LOSS, PARAMS, data=data, batch_size=bs),
        None,  # (N, ...) per leaf: checked below
    ),
    "per_example_stats": (
        lambda data, bs: {  # noise_scale is +inf by design when the batch cannot resolve |G|²
            k: v
            for k, v in gradstats.per_example_stats(LOSS, PARAMS, data=data, batch_size=bs)
            .total._asdict()
            .items()
            if k != "noise_scale"
        },
        None,
    ),
}


@st.composite
def bad_data(draw):
    kind = draw(st.sampled_from(["empty", "nonfinite", "ragged", "dtype", "scalar", "none"]))
    if kind == "none":
        return draw(st.sampled_from([None, (), {}]))
    x, y = _data(4)
    if kind == "empty":
        return x[:0], y[:0]
    if kind == "nonfinite":
        x = x.copy()
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return x, y
    if kind == "ragged":
        return x, y[: draw(st.integers(0, 3))]
    if kind == "dtype":
        return x, y.astype(draw(st.sampled_from([np.complex64, np.str_, object])))
    return np.float32(1.0), y


@pytest.mark.parametrize("tool", TOOLS)
@FAST
@given(data=bad_data())
def test_bad_data_refused(tool, data):
    fn, _ = TOOLS[tool]
    _check_outcome(lambda: fn(data, None), "data", must_raise=True)


@pytest.mark.parametrize("tool", TOOLS)
@FAST
@given(value=BAD_BATCH)
def test_bad_batch_size_refused(tool, value):
    fn, _ = TOOLS[tool]
    _check_outcome(lambda: fn(_data(4), value), "batch_size", must_raise=True)


@pytest.mark.parametrize("tool", TOOLS)
def test_empty_data_refused(tool):
    fn, _ = TOOLS[tool]
    x, y = _data(0)
    with pytest.raises(ValueError, match="`data`"):
        fn((x, y), None)


# the other entry points that take `data` (TOOLS above covers the rest): zero examples refused
# naming `data` on the host, before anything compiles
EMPTY_DATA_ARGS = {
    "evaluate": lambda d: landscape.evaluate(LOSS, PARAMS, (PARAMS,), GRID[:, None], data=d),
    "dataset_mean": lambda d: landscape.dataset_mean((LOSS,), PARAMS, data=d),
    "plane_through": lambda d: landscape.plane_through(LOSS, *SOL, data=d, resolution=2),
    "runs_surface": lambda d: landscape.runs_surface(LOSS, SOL_PLANE, data=d, resolution=2),
    "side_by_side": lambda d: landscape.side_by_side(
        {"a": landscape.SurfaceSpec(LOSS, PARAMS)}, GRID, GRID, data=d, key=KEY
    ),
    "batch_spread": lambda d: curvature.batch_spread(
        lambda b: b[0].mean(), data=d, n_batches=2, key=KEY
    ),
    "block_curvature": lambda d: curvature.block_curvature(
        LOSS, PARAMS, data=d, groups="layers", key=KEY
    ),
    "hvp": lambda d: curvature.hvp(LOSS, PARAMS, PARAMS, data=d),
    "ggn_vp": lambda d: curvature.ggn_vp(
        as_model(lambda p, x: x @ p["w"], PARAMS), PARAMS, PARAMS, data=d
    ),
    "sharpness": lambda d: curvature.sharpness(LOSS, PARAMS, data=d),
}


@pytest.mark.parametrize("entry", EMPTY_DATA_ARGS)
def test_empty_data_refused_everywhere(entry):
    with pytest.raises(ValueError, match="`data`"):
        EMPTY_DATA_ARGS[entry](_data(0))


@pytest.mark.parametrize("tool", TOOLS)
@settings(FAST, max_examples=3)
@given(seed=st.integers(0, 2**16), batch_size=st.sampled_from([None, 2, 3]))
def test_valid_data_finite(tool, seed, batch_size):
    fn, shape = TOOLS[tool]
    out = _check_outcome(
        lambda: fn(_data(4, seed), batch_size), "data", must_raise=False, shape=shape
    )
    if tool == "per_example_grads":
        assert jax.tree.map(np.shape, out) == {"b": (4, 4), "w": (4, 3, 4)}


TOOL_ARGS = [
    ("n_iter", lambda v: curvature.top_eigenvalues(LOSS, PARAMS, data=_data(4), n_iter=v, key=KEY)),
    ("k", lambda v: curvature.top_eigenvalues(LOSS, PARAMS, data=_data(4), k=v, key=KEY)),
    ("n_probes", lambda v: curvature.trace(LOSS, PARAMS, data=_data(4), n_probes=v, key=KEY)),
    (
        "probe_batch",
        lambda v: curvature.trace(LOSS, PARAMS, data=_data(4), probe_batch=v, key=KEY),
    ),
    (
        "n_probes",
        lambda v: curvature.hessian_diag(LOSS, PARAMS, data=_data(4), n_probes=v, key=KEY),
    ),
    (
        "n_probes",
        lambda v: curvature.spectral_density(LOSS, PARAMS, data=_data(4), n_probes=v, key=KEY),
    ),
    (
        "n_iter",
        lambda v: curvature.spectral_density(LOSS, PARAMS, data=_data(4), n_iter=v, key=KEY),
    ),
    ("k", lambda v: curvature.top_eigenvalues(LOSS, PARAMS, data=_data(4), k=abs(v) + 17, key=KEY)),
    ("key", lambda v: curvature.trace(LOSS, PARAMS, data=_data(4), n_probes=2, key=None)),
    ("key", lambda v: curvature.top_eigenvalues(LOSS, PARAMS, data=_data(4), key=None)),
    (
        "grid",
        lambda v: curvature.spectral_density(
            LOSS, PARAMS, data=_data(4), n_iter=4, key=KEY, grid=np.array([0.0, np.nan, v])
        ),
    ),
    (
        "block_size",
        lambda v: landscape.interpolate(LOSS, PARAMS, PARAMS, GRID, data=_data(4), block_size=v),
    ),
]


@pytest.mark.parametrize(
    ("name", "fn"), TOOL_ARGS, ids=[f"{i}-{a[0]}" for i, a in enumerate(TOOL_ARGS)]
)
@FAST
@given(value=BAD_SIZE)
def test_bad_tool_argument_refused(name, fn, value):
    _check_outcome(lambda: fn(value), name, must_raise=True)


@st.composite
def bad_grid(draw):
    kind = draw(st.sampled_from(["decreasing", "nonfinite", "empty", "rank"]))
    g = np.linspace(-1, 1, 4)
    if kind == "decreasing":
        i = draw(st.integers(1, 3))
        g[i] = g[i - 1] - draw(st.floats(0, 1))
    elif kind == "nonfinite":
        g[draw(st.integers(0, 3))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "empty":
        g = g[:0]
    else:
        g = g.reshape(2, 2)
    return g


@FAST
@given(grid=bad_grid())
def test_bad_grid_refused(grid):
    _check_outcome(lambda: _plane(_data(4), xs=grid), "xs", must_raise=True)
    _check_outcome(
        lambda: landscape.interpolate(LOSS, PARAMS, PARAMS, grid, data=_data(4)),
        "alphas",
        must_raise=True,
    )


@FAST
@given(
    shape=st.sampled_from([(3,), (4, 3), (3, 4, 1), (), (0, 4)]),
    leaf=st.sampled_from(["w", "b"]),
)
def test_bad_direction_refused(shape, leaf):
    d1 = dict(PARAMS)
    if np.shape(d1[leaf]) == shape:
        return
    d1[leaf] = jnp.zeros(shape)
    _check_outcome(lambda: _plane(_data(4), d1=d1), "d1", must_raise=True)


@FAST
@given(sigma=st.floats(-10, 0, allow_nan=False) | st.just(float("nan")))
def test_bad_sigma_refused(sigma):
    _check_outcome(
        lambda: curvature.spectral_density(
            LOSS, PARAMS, data=_data(4), n_iter=4, key=KEY, grid=GRID, sigma=sigma
        ),
        "sigma",
        must_raise=True,
    )


@st.composite
def nonfinite_params(draw):
    """``PARAMS`` with one NaN/Inf entry at a random leaf and position."""
    leaf = draw(st.sampled_from(["w", "b"]))
    a = np.array(PARAMS[leaf])
    a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return {**PARAMS, leaf: jnp.asarray(a)}


def _ggn(params, v):
    def forward(p, x):
        return x @ p["w"] + p["b"]

    return curvature.ggn_vp(as_model(forward, PARAMS), params, v, data=_data(4))


# (name the error must give, call on a tree shaped like PARAMS): refused before anything compiles
TREE_ARGS = [
    ("params", lambda p: curvature.hvp(LOSS, p, PARAMS, data=_data(4))),
    ("v", lambda p: curvature.hvp(LOSS, PARAMS, p, data=_data(4))),
    ("params", lambda p: _ggn(p, PARAMS)),
    ("v", lambda p: _ggn(PARAMS, p)),
    ("params", lambda p: curvature.sharpness(LOSS, p, data=_data(4))),
    (
        "params",
        lambda p: curvature.block_curvature(LOSS, p, data=_data(4), groups="layers", key=KEY),
    ),
    ("params", lambda p: gradstats.per_example_grads(LOSS, p, data=_data(4))),
    ("params", lambda p: gradstats.per_example_stats(LOSS, p, data=_data(4))),
    ("params_a", lambda p: landscape.interpolate(LOSS, p, PARAMS, GRID, data=_data(4))),
    ("params_b", lambda p: landscape.interpolate(LOSS, PARAMS, p, GRID, data=_data(4))),
    ("params", lambda p: landscape.plane(LOSS, p, PARAMS, PARAMS, GRID, GRID, data=_data(4))),
    ("d2", lambda p: landscape.plane(LOSS, PARAMS, PARAMS, p, GRID, GRID, data=_data(4))),
    ("origin", lambda p: landscape.evaluate(LOSS, p, (PARAMS,), GRID[:, None], data=_data(4))),
]

# three points in general position shaped like PARAMS, and the plane through them
SOL = [
    {
        k: jnp.asarray(np.random.default_rng(i).normal(size=np.shape(a)), jnp.float32)
        for k, a in PARAMS.items()
    }
    for i in range(3)
]
SOL_PLANE = landscape.solutions_plane(SOL)
# landscape's direction and plane helpers: refused on the host, before anything compiles
LANDSCAPE_TREE_ARGS = [
    ("params", lambda p: landscape.random_direction(p, key=KEY)),
    ("params", lambda p: landscape.random_plane(p, key=KEY)),
    ("direction", lambda p: landscape.normalize_direction(p, PARAMS)),
    ("params", lambda p: landscape.normalize_direction(PARAMS, p)),
    ("d1", lambda p: landscape.orthogonalize(p, PARAMS)),
    ("d2", lambda p: landscape.orthogonalize(PARAMS, p)),
    ("solutions[2]", lambda p: landscape.solutions_plane([SOL[0], SOL[1], p])),
    ("runs[0][1]", lambda p: landscape.runs_pca_plane([[SOL[0], p, SOL[2]]])),
    ("origin", lambda p: landscape.runs_pca_plane([SOL], origin=p)),
    ("checkpoints[1]", lambda p: landscape.pca_directions([SOL[0], p, SOL[2]])),
    ("final", lambda p: landscape.pca_directions(SOL, final=p)),
    ("points[0]", lambda p: landscape.project(SOL_PLANE, [p])),
    ("p3", lambda p: landscape.plane_through(LOSS, *SOL[:2], p, data=_data(4), resolution=2)),
    (
        "specs['b'].params",
        lambda p: landscape.side_by_side(
            {"a": landscape.SurfaceSpec(_untouchable, PARAMS), "b": landscape.SurfaceSpec(LOSS, p)},
            GRID,
            GRID,
            data=_data(4),
            key=KEY,
        ),
    ),
    (
        "specs['a'].checkpoints[1]",
        lambda p: landscape.side_by_side(
            {"a": landscape.SurfaceSpec(_untouchable, SOL[2], checkpoints=[SOL[0], p, SOL[2]])},
            GRID,
            GRID,
            data=_data(4),
            directions="pca",
        ),
    ),
]


def _untouchable(params, batch):
    raise AssertionError("the loss ran before every argument was checked")


TREE_ARGS += LANDSCAPE_TREE_ARGS


@pytest.mark.parametrize(
    ("name", "fn"), TREE_ARGS, ids=[f"{i}-{a[0]}" for i, a in enumerate(TREE_ARGS)]
)
@FAST
@given(params=nonfinite_params())
def test_nonfinite_params_refused(name, fn, params):
    _check_outcome(lambda: fn(params), name, must_raise=True)


@pytest.mark.parametrize(
    ("name", "fn"),
    LANDSCAPE_TREE_ARGS,
    ids=[f"{i}-{a[0]}" for i, a in enumerate(LANDSCAPE_TREE_ARGS)],
)
def test_landscape_non_floating_tree_refused(name, fn):
    ints = {"w": jnp.ones((3, 4), jnp.int32), "b": jnp.zeros(4, jnp.float32)}
    with pytest.raises(TypeError, match=re.escape(f"`{name}")):
        fn(ints)


@pytest.mark.parametrize("name", ["params", "v"])
def test_hvp_non_floating_params_refused(name):
    ints = jax.tree.map(lambda a: a.astype(jnp.int32), PARAMS)
    p, v = (ints, PARAMS) if name == "params" else (PARAMS, ints)
    _check_outcome(lambda: curvature.hvp(LOSS, p, v, data=_data(4)), name, must_raise=True)
    _check_outcome(
        lambda: gradstats.per_example_grads(LOSS, ints, data=_data(4)), "params", must_raise=True
    )


BAD_TOL = st.sampled_from([-1.0, -1e-9, np.nan, np.inf, "1e-3"])
BAD_KEY = st.sampled_from([None, 3, np.zeros(3, np.uint32), "key"])
ONES3 = jnp.ones(3)
PARAM_ARGS = [
    (
        "tol",
        BAD_TOL,
        lambda v: curvature.top_eigenvalues(LOSS, PARAMS, data=_data(4), tol=v, key=KEY),
    ),
    (
        "tol",
        BAD_TOL,
        lambda v: curvature.block_curvature(
            LOSS, PARAMS, data=_data(4), groups="layers", key=KEY, tol=v
        ),
    ),
    ("tol", BAD_TOL, lambda v: curvature.lanczos(lambda x: x, ONES3, 2, tol=v)),
    ("n_iter", BAD_SIZE, lambda v: curvature.lanczos(lambda x: x, ONES3, v)),
    (
        "v0",
        st.sampled_from([jnp.zeros(3), jnp.array([1.0, np.nan, 0.0]), jnp.array([np.inf] * 3)]),
        lambda v: curvature.lanczos(lambda x: x, v, 2),
    ),
    (
        "key",
        BAD_KEY,
        lambda v: curvature.block_curvature(LOSS, PARAMS, data=_data(4), groups="layers", key=v),
    ),
    (
        "key",
        BAD_KEY.filter(lambda k: k is not None),
        lambda v: curvature.sharpness(LOSS, PARAMS, data=_data(4), key=v),
    ),
    (
        "key",
        BAD_KEY.filter(lambda k: k is not None),
        lambda v: curvature.batch_spread(lambda d: d[0].mean(), data=_data(4), n_batches=2, key=v),
    ),
    (
        "step_size",
        st.sampled_from(["a", 0.0, -1.0, np.nan, [1.0]]),
        lambda v: curvature.sharpness(LOSS, PARAMS, data=_data(4), step_size=v),
    ),
    ("loss", st.sampled_from(["hinge", "", None, 3]), lambda v: _ggn_loss(v)),
]


def _ggn_loss(loss):
    return curvature.ggn_vp(
        as_model(lambda p, x: x @ p["w"], PARAMS), PARAMS, PARAMS, data=_data(4), loss=loss
    )


@pytest.mark.parametrize(
    ("name", "values", "fn"), PARAM_ARGS, ids=[f"{i}-{a[0]}" for i, a in enumerate(PARAM_ARGS)]
)
@FAST
@given(data=st.data())
def test_bad_curvature_argument_refused(name, values, fn, data):
    value = data.draw(values)
    _check_outcome(lambda: fn(value), name, must_raise=True)


@pytest.mark.parametrize("n", [2, 0])
def test_ragged_target_refused(model, n):
    x = np.full((n, 8, 8, 1), 0.5, np.float32)
    for case in [c for c in CASES if _uses_target(c)]:
        _check_outcome(
            lambda case=case: case.fn(model, x, [[1, 2], [3]]), "target", must_raise=True
        )


# ---------------------------------------------------------------------------------------------
# Other attribution arguments: baselines, references, masks, windows, layers, keys.

X2 = np.full((2, 8, 8, 1), 0.5, np.float32)
T2 = np.array([0, 3])


def _nonfinite(shape):
    return st.builds(
        lambda i, v: (
            np.where(np.arange(int(np.prod(shape))) == i, v, 0.5).reshape(shape).astype(np.float32)
        ),
        st.integers(0, int(np.prod(shape)) - 1),
        st.sampled_from([np.nan, np.inf, -np.inf]),
    )


BAD_BASELINE = st.one_of(
    _nonfinite((2, 8, 8, 1)),
    _nonfinite((8, 8, 1)),
    st.sampled_from([np.float32(np.nan), float("inf")]),
    st.sampled_from([(2, 7, 8, 1), (3, 8, 8, 1), (8, 8, 2), (5,)]).map(
        lambda s: np.zeros(s, np.float32)
    ),
)
BAD_REFERENCES = st.one_of(
    _nonfinite((2, 8, 8, 1)),
    st.sampled_from([(0, 8, 8, 1), (2, 8, 8), (2, 7, 8, 1), (2, 8, 8, 2)]).map(
        lambda s: np.zeros(s, np.float32)
    ),
)
BAD_MASK = st.one_of(
    st.sampled_from([(8, 8), (7, 8, 1), (2, 2, 8, 8, 1), (8, 8, 2)]).map(
        lambda s: np.zeros(s, np.int32)
    ),
    st.just(GRID8.astype(np.float32) + 0.5),
    st.just(GRID8 - 1),  # a negative feature id
)
BAD_WINDOW = st.one_of(
    st.integers(-5, 0),
    st.tuples(st.integers(-3, 0), st.integers(1, 3), st.integers(1, 1)),
    st.just((2, 2, 1, 1, 1)),
    st.just((9, 2, 1)),
)

EMBED_X = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
EMBED_LABELS = np.arange(12) % 3
X4 = np.full((4, 8, 8, 1), 0.5, np.float32)

OTHER_ARGS = [
    ("baseline", BAD_BASELINE, lambda m, v: va.deeplift(m, X2, T2, baseline=v)),
    ("baseline", BAD_BASELINE, lambda m, v: va.integrated_gradients(m, X2, T2, baseline=v)),
    ("baseline", BAD_BASELINE, lambda m, v: va.occlusion(m, X2, T2, window=2, baseline=v)),
    ("baseline", BAD_BASELINE, lambda m, v: va.feature_ablation(m, X2, T2, baseline=v)),
    (
        "references",
        BAD_REFERENCES,
        lambda m, v: va.expected_gradients(m, X2, T2, references=v, n_samples=2, key=KEY),
    ),
    ("references", BAD_REFERENCES, lambda m, v: va.deeplift_shap(m, X2, T2, references=v)),
    (
        "composite",
        st.sampled_from(["nope", "epsilon_gamma_box", 3, None, "EPSILON_PLUS"]),
        lambda m, v: va.lrp(m, X2, T2, composite=v),
    ),
    ("mask", BAD_MASK, lambda m, v: va.feature_ablation(m, X2, T2, mask=v)),
    ("mask", BAD_MASK, lambda m, v: va.exact_shapley(m, X2, T2, mask=v)),
    ("mask", BAD_MASK, lambda m, v: va.kernel_shap(m, X2, T2, mask=v, n_samples=8, key=KEY)),
    ("window", BAD_WINDOW, lambda m, v: va.occlusion(m, X2, T2, window=v)),
    ("strides", st.integers(-5, 0), lambda m, v: va.occlusion(m, X2, T2, window=2, strides=v)),
    (
        "max_sigma",
        st.floats(-10, 0, exclude_max=True) | st.just(float("nan")) | st.just(float("inf")),
        lambda m, v: va.blur_integrated_gradients(m, X2, T2, max_sigma=v),
    ),
    (
        "layer",
        st.sampled_from(["conv9", "", "CONV2"]),
        lambda m, v: cam.grad_cam(m, X2, T2, layer=v),
    ),
    (
        "layer",
        st.sampled_from(["conv9", "dense_x"]),
        lambda m, v: va.at_layer(va.saliency, v)(m, X2, T2),
    ),
    (
        "stdev",
        st.floats(-10, 0, exclude_max=True) | st.just(float("nan")),
        lambda m, v: va.expected_gradients(
            m, X2, T2, references=REFS, n_samples=2, stdev=v, key=KEY
        ),
    ),
    (
        "key",
        st.just(None),
        lambda m, v: va.shapley_value_sampling(m, X2, T2, mask=GRID8, n_samples=2, key=v),
    ),
    (
        "key",
        st.just(None),
        lambda m, v: va.noise_tunnel(va.saliency, n_samples=2, stdev=0.1)(m, X2, T2, key=v),
    ),
    ("batch_size", BAD_BATCH, lambda m, v: evaluation.predict(m, X2, batch_size=v)),
    # inspect: every argument named; NaN/Inf, a wrong shape and an empty batch refused
    (
        "batch_size",
        BAD_BATCH,
        lambda m, v: inspect.activation_stats(m, X2, layers="conv1", batch_size=v),
    ),
    (
        "layers",
        st.sampled_from(["conv9", "dense_x"]),
        lambda m, v: inspect.activation_stats(m, X2, layers=v),
    ),
    (
        "x",
        st.sampled_from(
            [
                np.full((2, 8, 8, 1), np.nan, np.float32),
                np.zeros((2, 5, 8, 1), np.float32),
                np.zeros((0, 8, 8, 1), np.float32),
            ]
        ),
        lambda m, v: inspect.activation_stats(m, v, layers="conv1"),
    ),
    (
        "layers",
        st.sampled_from(["conv9", "dense_x"]),
        lambda m, v: inspect.saturated_units(m, X2, layers=v),
    ),
    ("depth", st.integers(-100, -1), lambda m, v: inspect.summary(m, X2, depth=v)),
    ("depth", st.integers(-100, -1), lambda m, v: inspect.graph(m, X2, depth=v)),
    (
        "x",
        st.sampled_from([np.zeros((2, 5, 8, 1), np.float32)]),
        lambda m, v: inspect.summary(m, v),
    ),
    ("bins", st.integers(-5, 0), lambda m, v: inspect.weight_histograms(m, bins=v)),
    # embed: k out of range, bad data, layers and options named
    ("k", st.integers(-5, 0) | st.integers(3, 99), lambda m, v: embed.pca(X2.reshape(2, -1), k=v)),
    (
        "k",
        st.integers(-5, 0) | st.integers(6, 99),
        lambda m, v: embed.trustworthiness(EMBED_X, EMBED_X[:, :2], k=v),
    ),
    (
        "k",
        st.integers(-5, 0) | st.integers(12, 99),
        lambda m, v: embed.knn_accuracy(EMBED_X, EMBED_LABELS, k=v),
    ),
    (
        "batch_size",
        BAD_BATCH,
        lambda m, v: embed.trustworthiness(EMBED_X, EMBED_X, k=2, batch_size=v),
    ),
    (
        "x",
        st.sampled_from(
            [
                np.where(EMBED_X > 1.0, np.nan, EMBED_X),
                np.zeros((3, 5), np.float32),
                np.zeros((12,), np.float32),
            ]
        ),
        lambda m, v: embed.trustworthiness(v, EMBED_X[:, :2], k=2),
    ),
    (
        "layer",
        st.sampled_from(["conv9", "dense_x"]),
        lambda m, v: embed.embed_layer(m, X4, layer=v, algorithm="pca"),
    ),
    (
        "algorithm",
        st.sampled_from(["TSNE", "isomap", ""]),
        lambda m, v: embed.embed_layer(m, X4, layer="conv1", algorithm=v),
    ),
    (
        "pool",
        st.sampled_from(["max", "", "Mean"]),
        lambda m, v: embed.embed_layer(m, X4, layer="conv1", algorithm="pca", pool=v),
    ),
    ("key", st.just(None), lambda m, v: embed.embed_layer(m, X4, layer="conv1", key=v)),
    # attribution metrics
    ("n_steps", st.integers(-5, 0), lambda m, v: metrics.deletion(m, X2, T2, X2, n_steps=v)),
    ("attributions", BAD_REFERENCES, lambda m, v: metrics.deletion(m, X2, T2, v)),
    ("attributions", BAD_REFERENCES, lambda m, v: metrics.infidelity(m, X2, T2, v, key=KEY)),
    ("mask", BAD_MASK, lambda m, v: metrics.insertion(m, X2, T2, X2, mask=v)),
    ("baseline", BAD_BASELINE, lambda m, v: metrics.deletion(m, X2, T2, X2, baseline=v)),
    (
        "n_perturb_samples",
        st.integers(-3, 0),
        lambda m, v: metrics.infidelity(m, X2, T2, X2, key=KEY, n_perturb_samples=v),
    ),
    ("key", st.just(None), lambda m, v: metrics.sensitivity_max(va.saliency, m, X2, T2, key=v)),
    (
        "percentages",
        st.just((0.5, 2.0)),
        lambda m, v: metrics.road(m, X2, T2, X2, key=KEY, percentages=v),
    ),
]


@pytest.mark.parametrize(
    ("name", "values", "fn"), OTHER_ARGS, ids=[f"{i}-{a[0]}" for i, a in enumerate(OTHER_ARGS)]
)
@FAST
@given(data=st.data())
def test_bad_argument_refused(model, name, values, fn, data):
    value = data.draw(values)
    _check_outcome(lambda: fn(model, value), name, must_raise=True)


# ---------------------------------------------------------------------------------------------
# Evaluation metrics: labels and probabilities.

METRICS = {
    "roc_auc": evaluation.roc_auc,
    "average_precision": evaluation.average_precision,
    "expected_calibration_error": evaluation.expected_calibration_error,
    "most_confident_errors": evaluation.most_confident_errors,
}


@st.composite
def bad_probs(draw):
    """(labels, probs, the argument the error must name)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = draw(st.integers(1, 6))
    p = rng.dirichlet(np.ones(3), size=n)
    y = rng.integers(0, 3, n)
    kind = draw(st.sampled_from(["sum", "range", "nonfinite", "rank", "length", "label"]))
    if kind == "sum":
        p[draw(st.integers(0, n - 1))] *= draw(st.sampled_from([0.5, 1.01, 2.0]))
    elif kind == "range":
        p[0] = [1.5, -0.25, -0.25]
    elif kind == "nonfinite":
        p[0, draw(st.integers(0, 2))] = draw(st.sampled_from([np.nan, np.inf]))
    elif kind == "rank":
        p = p[0]
    elif kind == "length":
        y = np.concatenate([y, [0]])
    else:
        y[0] = draw(st.sampled_from([3, -1]))
    return y, p, "y_true" if kind in ("length", "label") else "probs"


@pytest.mark.parametrize("metric", METRICS)
@FAST
@given(case=bad_probs())
def test_bad_probabilities_refused(metric, case):
    y, p, name = case
    _check_outcome(lambda: METRICS[metric](y, p), name, must_raise=True)


@pytest.mark.parametrize("metric", ["roc_auc", "average_precision", "expected_calibration_error"])
@FAST
@given(seed=st.integers(0, 2**16))
def test_valid_probabilities_finite(metric, seed):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(3), rng.integers(0, 3, 5)])
    p = rng.dirichlet(np.ones(3), size=8)
    _check_outcome(lambda: METRICS[metric](y, p), "probs", must_raise=False, shape=())
