import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution import ablation as occ_module
from visjax.attribution.ablation import feature_ablation, occlusion
from visjax.attribution.masks import square_patches
from visjax.base import batching


def reference_occlusion(f, x, window, strides, baseline):
    """Captum's Occlusion rule in NumPy: windows at 0, s, 2s, ... (ceil count, cut at the edge)."""
    x = np.asarray(x, np.float64)
    b = np.broadcast_to(np.asarray(baseline, np.float64), x.shape)
    shape = x.shape[1:]
    counts = [int(np.ceil((d - w) / s)) + 1 for d, w, s in zip(shape, window, strides, strict=True)]
    total, cover = np.zeros_like(x), np.zeros(shape)
    f0 = f(x)
    for idx in itertools.product(*(range(c) for c in counts)):
        sl = tuple(slice(i * s, i * s + w) for i, s, w in zip(idx, strides, window, strict=True))
        xp = x.copy()
        xp[(slice(None), *sl)] = b[(slice(None), *sl)]
        total[(slice(None), *sl)] += (f0 - f(xp)).reshape((-1,) + (1,) * len(shape))
        cover[sl] += 1
    return total / cover


def linear_f(model, w, t):
    def f(x):
        return np.asarray(x).reshape(x.shape[0], -1) @ np.asarray(w, np.float64)[:, t]

    return f


def test_one_by_one_window_and_per_element_ablation_are_closed_form(linear, images):
    model, w = linear
    b = 0.3
    want = (images - b) * w[:, 1].reshape(4, 4, 1)
    got = occlusion(model, images, 1, window=(1, 1, 1), baseline=b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    got = feature_ablation(model, images, 1, baseline=b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_feature_ablation_sums_each_feature(linear, images):
    model, w = linear
    mask = square_patches((4, 4, 1), 2)
    contrib = np.asarray((images - 0.1) * w[:, 2].reshape(4, 4, 1))
    want = np.zeros_like(contrib)
    for k in range(4):
        sel = np.broadcast_to(mask == k, contrib.shape)
        per = (contrib * sel).reshape(3, -1).sum(1)
        want += sel * per[:, None, None, None]
    got = feature_ablation(model, images, 2, mask=mask, baseline=0.1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_per_example_mask_with_absent_features(linear, images):
    model, _ = linear
    masks = np.stack(
        [square_patches((4, 4, 1), 2), np.zeros((4, 4, 1), np.int32), square_patches((4, 4, 1), 4)]
    )
    got = feature_ablation(model, images, 0, mask=masks)
    for i in range(3):
        single = feature_ablation(model, images[i : i + 1], 0, mask=masks[i])
        np.testing.assert_allclose(got[i : i + 1], single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "window, strides",
    [
        ((2, 2, 1), 1),
        ((3, 3, 1), 1),
        ((2, 2, 1), 2),
        ((3, 3, 1), 2),
        ((3, 2, 1), (1, 2, 1)),
        ((4, 4, 1), 1),
    ],
)
def test_occlusion_matches_reference(linear, images, window, strides):
    model, w = linear
    s = (strides,) * 3 if isinstance(strides, int) else strides
    baseline = np.linspace(-1, 1, 16).reshape(4, 4, 1)
    want = reference_occlusion(linear_f(model, w, 1), images, window, s, baseline)
    got = occlusion(model, images, 1, window=window, strides=strides, baseline=baseline)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_occlusion_on_a_cnn_matches_reference(trained_cnn, digits):
    x = jnp.asarray(digits.test.x[:4])
    t = 3

    def f(xx):
        return np.asarray(trained_cnn(jnp.asarray(xx, jnp.float32)))[:, t]

    want = reference_occlusion(f, x, (3, 3, 1), (2, 2, 1), 0.5)
    got = occlusion(trained_cnn, x, t, window=(3, 3), strides=2, baseline=0.5)
    assert float(np.abs(got - want).max() / np.abs(want).max()) < 1e-4


def test_window_shorthands(trained_cnn, digits):
    x = jnp.asarray(digits.test.x[:2])
    full = occlusion(trained_cnn, x, 1, window=(3, 3, 1), strides=(2, 2, 1))
    np.testing.assert_allclose(occlusion(trained_cnn, x, 1, window=3, strides=2), full, rtol=1e-6)
    np.testing.assert_allclose(
        occlusion(trained_cnn, x, 1, window=(3, 3), strides=(2, 2)), full, rtol=1e-6
    )


@pytest.mark.parametrize("method", ["occlusion", "ablation"])
def test_chunked_jit_batch_and_no_retrace(trained_cnn, digits, method):
    x = jnp.asarray(digits.test.x[:5])
    t = jnp.array([0, 3, 5, 7, 9])
    if method == "occlusion":

        def fn(m, x, t, batch_size=None):
            return occlusion(m, x, t, window=(3, 3, 1), strides=2, batch_size=batch_size)

        core = occ_module._occlusion
    else:
        mask = square_patches((8, 8, 1), 3)

        def fn(m, x, t, batch_size=None):
            return feature_ablation(m, x, t, mask=mask, baseline=0.2, batch_size=batch_size)

        core = occ_module._ablation
    whole = fn(trained_cnn, x, t)
    np.testing.assert_allclose(fn(trained_cnn, x, t, batch_size=7), whole, rtol=1e-5, atol=1e-6)
    traces = []

    def traced(m, x, t):
        traces.append(1)
        return fn(m, x, t)

    jitted = jax.jit(traced)
    np.testing.assert_allclose(jitted(trained_cnn, x, t), whole, rtol=1e-5, atol=1e-6)
    singles = [fn(trained_cnn, x[i : i + 1], t[i : i + 1]) for i in range(5)]
    np.testing.assert_allclose(jnp.concatenate(singles), whole, rtol=1e-5, atol=1e-6)
    jitted(trained_cnn, x + 0.5, t[::-1]).block_until_ready()
    assert len(traces) == 1
    size = core._cache_size()
    fn(trained_cnn, x * 2.0, t).block_until_ready()
    assert core._cache_size() == size


@pytest.mark.parametrize("pick", [None, 5])
@pytest.mark.parametrize("method", ["occlusion", "ablation"])
def test_auto_default_splits_and_equals_explicit_sizes(
    trained_cnn, digits, method, pick, monkeypatch
):
    # pick None: a 1-byte chunk budget, so "auto" (the default) runs every row in its own chunk;
    # pick 5: chunks of 5 that do not divide the rows (27 or 12), so the rows are padded.
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 1)
    monkeypatch.setattr(batching, "CPU_FORWARD_CHUNK_BYTES", 1)
    monkeypatch.setattr(batching, "ACCELERATOR_CHUNK_BYTES", 1)
    picks = []
    real = batching.auto_rows
    monkeypatch.setattr(
        batching, "auto_rows", lambda *a, **k: picks.append(pick or real(*a, **k)) or picks[-1]
    )
    x = jnp.asarray(digits.test.x[:3])
    t = jnp.array([1, 4, 7])
    if method == "occlusion":
        core = occ_module._occlusion
        fn = functools.partial(occlusion, window=(3, 3, 1), strides=3)  # 9 windows: 27 rows
    else:
        core = occ_module._ablation
        fn = functools.partial(feature_ablation, mask=square_patches((8, 8, 1), 4))  # 12 rows
    core.clear_cache()
    default = fn(trained_cnn, x, t)
    core.clear_cache()
    assert picks == [pick or 1]
    for size in (None, 5):
        want = fn(trained_cnn, x, t, batch_size=size)
        # Elements whose windows change nothing are differences of equal logits computed in
        # batches of other sizes: float32 reordering, compared to the attributions' scale.
        scale = float(jnp.abs(want).max())
        np.testing.assert_allclose(default, want, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "big"])
def test_bad_batch_size_names_it(trained_cnn, digits, bad):
    x = jnp.asarray(digits.test.x[:2])
    with pytest.raises(ValueError, match="batch_size"):
        occlusion(trained_cnn, x, 1, window=3, batch_size=bad)
    with pytest.raises(ValueError, match="batch_size"):
        feature_ablation(trained_cnn, x, 1, batch_size=bad)


def test_number_baseline_checked_and_equal_to_array(trained_cnn, digits):
    x = jnp.asarray(digits.test.x[:2])
    for bad in (float("nan"), np.inf, 10**400):
        with pytest.raises(ValueError, match="baseline"):
            feature_ablation(trained_cnn, x, 1, baseline=bad)
    np.testing.assert_allclose(
        feature_ablation(trained_cnn, x, 1, baseline=0.3),
        feature_ablation(trained_cnn, x, 1, baseline=jnp.full(x.shape, 0.3)),
        rtol=1e-6,
    )


def test_mask_checks_are_remembered_by_content(trained_cnn, digits):
    x = jnp.asarray(digits.test.x[:2])
    mask = square_patches((8, 8, 1), 4)
    first = feature_ablation(trained_cnn, x, 1, mask=mask)
    np.testing.assert_array_equal(feature_ablation(trained_cnn, x, 1, mask=mask.copy()), first)
    changed = mask.copy()
    changed[0, 0, 0] = 7  # no longer 0..K-1: checked again, not taken from the cache
    with pytest.raises(ValueError, match="mask"):
        feature_ablation(trained_cnn, x, 1, mask=changed)
    merged = np.minimum(mask, 1)  # 2 features: a different result
    assert not np.allclose(feature_ablation(trained_cnn, x, 1, mask=merged), first)


def test_callable_target(trained_cnn, digits):
    x = jnp.asarray(digits.test.x[:3])
    t = jnp.array([1, 4, 7])

    def pick(out):
        return out[4]

    np.testing.assert_allclose(
        occlusion(trained_cnn, x, pick, window=2, strides=2),
        occlusion(trained_cnn, x, 4, window=2, strides=2),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        feature_ablation(trained_cnn, x, pick),
        feature_ablation(trained_cnn, x, jnp.full((3,), 4)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert occlusion(trained_cnn, x, t, window=2).shape == x.shape


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window": (9, 3, 1)}, "window"),
        ({"window": (0, 3, 1)}, "window"),
        ({"window": (3, 3, 1, 1)}, "window"),
        ({"window": (3,)}, "window"),
        ({"window": 3, "strides": 0}, "strides"),
        ({"window": 3, "strides": (1, 1, 1, 1)}, "strides"),
        ({"window": 2, "strides": 3}, "strides"),
        ({"window": 3, "baseline": np.zeros((3, 3))}, "baseline"),
        ({"window": 3, "batch_size": 0}, "batch_size"),
    ],
)
def test_occlusion_bad_input(trained_cnn, digits, kwargs, match):
    x = jnp.asarray(digits.test.x[:2])
    with pytest.raises(ValueError, match=match):
        occlusion(trained_cnn, x, 1, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match, error",
    [
        ({"mask": np.zeros((7, 8, 1), np.int32)}, "mask", ValueError),
        ({"mask": np.full((8, 8, 1), 2, np.int32)}, "mask", ValueError),
        ({"mask": np.zeros((8, 8, 1), np.float32)}, "mask", TypeError),
        ({"baseline": np.zeros((5, 8, 8, 1))}, "baseline", ValueError),
        ({"baseline": "zeros"}, "baseline", TypeError),
    ],
)
def test_feature_ablation_bad_input(trained_cnn, digits, kwargs, match, error):
    x = jnp.asarray(digits.test.x[:2])
    with pytest.raises(error, match=match):
        feature_ablation(trained_cnn, x, 1, **kwargs)


def test_nan_input_raises(trained_cnn, digits):
    x = jnp.asarray(digits.test.x[:2]).at[0, 0, 0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="x"):
        occlusion(trained_cnn, x, 1, window=3)
    with pytest.raises(ValueError, match="x"):
        feature_ablation(trained_cnn, x, 1)


@pytest.mark.slow
def test_many_chunks_use_the_grouped_driver(linear, images):
    model, w = linear
    # 6 examples x 16 windows in chunks of 1: more chunks than batching.MAX_UNROLL (64)
    x = jnp.concatenate([images, 1 - images])
    got = occlusion(model, x, 0, window=(1, 1, 1), batch_size=1)
    np.testing.assert_allclose(got, x * w[:, 0].reshape(4, 4, 1), rtol=1e-5, atol=1e-6)
