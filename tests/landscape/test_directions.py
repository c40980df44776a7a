import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.base.trees import param_paths, select
from visjax.landscape.directions import (
    normalize_direction,
    orthogonalize,
    random_direction,
    random_plane,
    tree_dot,
    tree_norm,
)
from visjax.zoo import digits_resnet

KEY = jax.random.key(0)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(np.abs(b), 1e-12)))


def _with_biases(params, seed=1):
    """Params as NumPy arrays whose 1-D leaves are non-zero (zoo biases start at zero)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda w: (
            np.asarray(w) + (0.1 * rng.standard_normal(w.shape) if w.ndim <= 1 else 0)
        ).astype(w.dtype),
        params,
    )


def _norm(x):
    return np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2) for v in jax.tree.leaves(x)))


@pytest.fixture(scope="module")
def resnet_params():
    return _with_biases(digits_resnet().params)


@pytest.fixture(scope="module")
def cnn(cnn_params):
    return _with_biases(cnn_params)


@pytest.fixture(scope="module", params=["cnn", "resnet"])
def params(request, cnn, resnet_params):
    return cnn if request.param == "cnn" else resnet_params


def _filter_norms(x):
    x = np.asarray(x, np.float64)
    return np.linalg.norm(x.reshape(-1, x.shape[-1]), axis=0)


# --------------------------------------------------------------------------- paths


def test_param_paths_and_select(cnn, resnet_params):
    assert param_paths(cnn) == [
        "conv1.bias",
        "conv1.kernel",
        "conv2.bias",
        "conv2.kernel",
        "fc.bias",
        "fc.kernel",
    ]
    paths = param_paths(resnet_params)
    assert len(paths) == len(jax.tree.leaves(resnet_params))
    assert "stages.1.blocks.0.proj.kernel" in paths
    assert select(cnn, "conv1.*") == {
        "conv1": {"bias": True, "kernel": True},
        "conv2": {"bias": False, "kernel": False},
        "fc": {"bias": False, "kernel": False},
    }
    sel = select(resnet_params, ["*.bias", "stem.*"])
    assert [p for p, s in zip(paths, jax.tree.leaves(sel), strict=True) if s] == [
        p for p in paths if p.endswith(".bias") or p.startswith("stem.")
    ]
    assert not any(jax.tree.leaves(select(cnn, "nothing.*")))
    with pytest.raises(TypeError, match="`patterns`"):
        select(cnn, 3)


# --------------------------------------------------------------------------- normalisations


def test_filter_norms_match_the_parameters(params):
    d = random_direction(params, key=KEY)
    assert jax.tree.structure(d) == jax.tree.structure(params)
    for path, v, w in zip(
        param_paths(params), jax.tree.leaves(d), jax.tree.leaves(params), strict=True
    ):
        assert v.shape == w.shape and v.dtype == w.dtype, path
        if w.ndim >= 2:
            assert _rel(_filter_norms(v), _filter_norms(w)) < 1e-5, path
        else:
            assert not np.any(np.asarray(v)), path  # biasbn: zero


def test_filter_normalisation_matches_li_et_al_in_torch_layout(cnn):
    """Their loop over ``d`` in PyTorch layout (filters first), on Flax kernels moved there."""
    rng = np.random.default_rng(0)
    raw = jax.tree.map(lambda w: rng.standard_normal(w.shape).astype(np.float32), cnn)
    d = normalize_direction(raw, cnn)
    for v, r, w in zip(jax.tree.leaves(d), jax.tree.leaves(raw), jax.tree.leaves(cnn), strict=True):
        if w.ndim <= 1:
            continue
        rt, wt = np.moveaxis(r, -1, 0), np.moveaxis(np.asarray(w), -1, 0)  # (out, ...)
        ref = np.stack(
            [
                df * (np.linalg.norm(wf) / (np.linalg.norm(df) + 1e-10))
                for df, wf in zip(rt, wt, strict=True)
            ]
        )
        np.testing.assert_allclose(np.moveaxis(np.asarray(v), -1, 0), ref, rtol=1e-5, atol=1e-8)


def test_layer_and_model_norms(resnet_params):
    params = resnet_params
    raw = random_direction(params, key=KEY, normalization=None)
    layer = random_direction(params, key=KEY, normalization="layer")
    model = random_direction(params, key=KEY, normalization="model")
    big = [i for i, w in enumerate(jax.tree.leaves(params)) if w.ndim >= 2]
    leaves = [jax.tree.leaves(t) for t in (params, raw, layer, model)]
    for i in big:
        w, r, lay = leaves[0][i], leaves[1][i], leaves[2][i]
        assert _rel(_norm(lay), _norm(w)) < 1e-5
        np.testing.assert_allclose(lay, r * (_norm(w) / _norm(r)), rtol=1e-5, atol=1e-7)
    total = lambda ls: _norm([ls[i] for i in big])  # noqa: E731
    assert _rel(total(leaves[3]), total(leaves[0])) < 1e-5
    scale = total(leaves[0]) / total(leaves[1])
    for i in big:
        np.testing.assert_allclose(leaves[3][i], leaves[1][i] * scale, rtol=1e-5, atol=1e-7)
    assert all(
        not np.any(np.asarray(leaves[k][i]))
        for k in (1, 2, 3)
        for i in range(len(leaves[0]))
        if i not in big
    )


def test_zero_filters_stay_zero():
    w = {"k": jnp.arange(6.0).reshape(3, 2)}
    d = normalize_direction({"k": jnp.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])}, w)
    assert np.all(np.isfinite(d["k"])) and not np.any(np.asarray(d["k"][:, 1]))
    assert _rel(jnp.linalg.norm(d["k"][:, 0]), jnp.linalg.norm(w["k"][:, 0])) < 1e-6


# --------------------------------------------------------------------------- ignore


def test_ignore_none_copies_params_and_keeps_kernels(cnn):
    d0 = random_direction(cnn, key=KEY)
    d1 = random_direction(cnn, key=KEY, ignore=None)
    for w, a, b in zip(jax.tree.leaves(cnn), jax.tree.leaves(d0), jax.tree.leaves(d1), strict=True):
        if w.ndim <= 1:
            np.testing.assert_array_equal(b, w)
        else:
            np.testing.assert_array_equal(a, b)  # a leaf's draw does not depend on `ignore`


def test_ignore_patterns_zero_exactly_the_matching_leaves(cnn, resnet_params):
    d = random_direction(cnn, key=KEY, ignore=("conv1.*",))
    assert not np.any(np.asarray(d["conv1"]["kernel"])) and not np.any(
        np.asarray(d["conv1"]["bias"])
    )
    np.testing.assert_array_equal(d["conv2"]["bias"], cnn["conv2"]["bias"])  # as ignore=None
    assert _rel(_filter_norms(d["fc"]["kernel"]), _filter_norms(cnn["fc"]["kernel"])) < 1e-5
    # with no norm layers, "*.bias" is "biasbn"
    a = random_direction(resnet_params, key=KEY, ignore=["*.bias"])
    b = random_direction(resnet_params, key=KEY)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    d = random_direction(resnet_params, key=KEY, ignore=("stages.0.*", "*.bias"))
    for path, v in zip(param_paths(resnet_params), jax.tree.leaves(d), strict=True):
        assert (not np.any(np.asarray(v))) == (
            path.startswith("stages.0.") or path.endswith("bias")
        )


# --------------------------------------------------------------------------- planes


def test_orthogonal_plane(cnn):
    params = cnn
    d1, d2 = random_plane(params, key=KEY)
    e1, e2 = random_plane(params, key=KEY, orthogonal=True)
    jax.tree.map(np.testing.assert_array_equal, d1, e1)
    assert abs(float(tree_dot(e1, e2))) < 1e-5 * _norm(e1) * _norm(e2)
    assert _rel(_norm(e2), _norm(d2)) < 1e-5
    for w, v in zip(jax.tree.leaves(params), jax.tree.leaves(e2), strict=True):
        if w.ndim <= 1:
            assert not np.any(np.asarray(v))
        else:  # filter norms only approximately
            assert _rel(_filter_norms(v), _filter_norms(w)) < 0.5
    k1, k2 = jax.random.split(KEY)
    jax.tree.map(np.testing.assert_array_equal, d1, random_direction(params, key=k1))
    jax.tree.map(np.testing.assert_array_equal, d2, random_direction(params, key=k2))


def test_orthogonalize_edge_cases():
    d1, d2 = {"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([3.0, 4.0])}
    np.testing.assert_allclose(orthogonalize(d1, d2)["w"], [0.0, 5.0], atol=1e-6)
    np.testing.assert_allclose(orthogonalize(d1, d2, keep_norm=False)["w"], [0.0, 4.0], atol=1e-6)
    zero = {"w": jnp.zeros(2)}
    np.testing.assert_array_equal(orthogonalize(zero, d2)["w"], d2["w"])
    np.testing.assert_array_equal(orthogonalize(d1, {"w": jnp.array([2.0, 0.0])})["w"], [0.0, 0.0])


def test_tree_helpers_accumulate_in_float32():
    a = {"x": jnp.ones(2**16, jnp.bfloat16), "y": [jnp.full((2, 2), 2.0, jnp.bfloat16)]}
    assert tree_dot(a, a).dtype == jnp.float32
    assert float(tree_dot(a, a)) == 2**16 + 16
    assert float(tree_norm(a)) == pytest.approx(np.sqrt(2**16 + 16))
    assert float(tree_dot({}, {})) == 0.0
    d = random_direction(a, key=KEY, normalization="layer", ignore=None)
    assert d["y"][0].dtype == jnp.bfloat16 and d["x"].dtype == jnp.bfloat16


# --------------------------------------------------------------------------- keys and jit


def test_same_key_same_direction_different_key_different(cnn):
    a, b = random_direction(cnn, key=KEY), random_direction(cnn, key=jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    c = random_direction(cnn, key=jax.random.key(1))
    assert not np.allclose(a["conv2"]["kernel"], c["conv2"]["kernel"])
    legacy = random_direction(cnn, key=jax.random.PRNGKey(1))
    assert _rel(_filter_norms(legacy["fc"]["kernel"]), _filter_norms(cnn["fc"]["kernel"])) < 1e-5


@pytest.mark.parametrize(
    ("normalization", "ignore"), [("filter", "biasbn"), ("model", None), ("layer", ("conv1.*",))]
)
def test_jit_equals_eager_and_traces_once(cnn, normalization, ignore):
    traces = []

    def f(p, k, normalization, ignore):
        traces.append(1)
        return random_direction(p, key=k, normalization=normalization, ignore=ignore)

    jitted = jax.jit(f, static_argnames=("normalization", "ignore"))
    got = jitted(cnn, KEY, normalization, ignore)
    want = random_direction(cnn, key=KEY, normalization=normalization, ignore=ignore)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)
    jitted(jax.tree.map(lambda w: 2 * w, cnn), jax.random.key(5), normalization, ignore)
    assert len(traces) == 1
    if ignore == "biasbn":  # the documented spelling, on the public function itself
        direct = jax.jit(random_direction, static_argnames=("normalization", "ignore"))
        d = direct(cnn, key=KEY, normalization=normalization, ignore=ignore)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), d, want)


# --------------------------------------------------------------------------- errors


def test_bad_arguments_raise(cnn):
    with pytest.raises(
        ValueError, match=r"`normalization` must be one of 'filter', 'layer', 'model' or None"
    ):
        random_direction(cnn, key=KEY, normalization="filters")
    with pytest.raises(ValueError, match="`normalization`"):
        normalize_direction(cnn, cnn, normalization="weight")
    for key in (0, jax.random.split(KEY, 3), jnp.zeros(2), np.zeros(2, np.uint32)[None]):
        with pytest.raises(TypeError, match="`key` must be one PRNG key"):
            random_direction(cnn, key=key)
    with pytest.raises(TypeError, match="`key`"):
        random_plane(cnn, key=None)
    for ignore in (3, {"conv1.*": True}, ("conv1.*", 1)):
        with pytest.raises(TypeError, match="`ignore` must be"):
            random_direction(cnn, key=KEY, ignore=ignore)
    with pytest.raises(ValueError, match=r"pass a tuple, e.g. \('conv1.\*',\)"):
        random_direction(cnn, key=KEY, ignore="conv1.*")
    with pytest.raises(ValueError, match=r"pattern 'conv9\.\*' matches no parameter path"):
        random_direction(cnn, key=KEY, ignore=("conv1.*", "conv9.*"))
    with pytest.raises(TypeError, match="'step'"):
        random_direction({"step": jnp.zeros((2, 2), jnp.int32)}, key=KEY)


def test_direction_tree_and_shape_mismatch_raise(cnn):
    missing = {k: dict(v) for k, v in cnn.items()}
    del missing["conv2"]["bias"]
    with pytest.raises(ValueError, match=r"`direction`.*'conv2\.bias' of `params` is missing"):
        normalize_direction(missing, cnn)
    extra = {**cnn, "conv0": {"kernel": jnp.ones((2, 2))}}
    with pytest.raises(ValueError, match=r"`direction` has a leaf 'conv0\.kernel'"):
        normalize_direction(extra, cnn)
    wrong = {**cnn, "fc": {"bias": cnn["fc"]["bias"], "kernel": jnp.ones((10, 32))}}
    with pytest.raises(ValueError, match=r"`direction` leaf 'fc\.kernel' must have .* \(32, 10\)"):
        normalize_direction(wrong, cnn)
    listed = {**cnn, "fc": [cnn["fc"]["bias"], cnn["fc"]["kernel"]]}
    with pytest.raises(ValueError, match="`direction`"):
        normalize_direction(listed, cnn)
    with pytest.raises(ValueError, match="`d2`"):
        orthogonalize(cnn, missing)


def test_empty_params():
    assert random_direction({}, key=KEY) == {}
    assert random_plane({}, key=KEY, orthogonal=True) == ({}, {})
