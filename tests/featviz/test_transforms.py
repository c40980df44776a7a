import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.featviz.transforms import (
    compose,
    jitter,
    output_shape,
    pad,
    random_rotate,
    random_scale,
    standard_transforms,
)

KEY = jax.random.key(0)


def _images(shape=(2, 9, 9, 3), seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def test_pad_constant_and_reflect():
    x = _images((2, 5, 6, 3))
    y = pad(2)(KEY, x)
    assert y.shape == (2, 9, 10, 3)
    np.testing.assert_array_equal(y[:, 2:-2, 2:-2], x)
    np.testing.assert_array_equal(
        y, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=0.5)
    )
    z = pad(3, mode="reflect")(KEY, x)
    np.testing.assert_array_equal(z, np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="reflect"))
    u = pad(1, value="uniform")(KEY, x)
    border = np.asarray(u[:, 0])
    assert 0 <= border.min() == border.max() <= 1
    np.testing.assert_array_equal(pad(0)(KEY, x), x)


def test_jitter_crops_with_offsets_zero_to_d():
    x = _images((2, 7, 8, 3))
    t = jitter(2)
    offsets = set()
    ys = jax.jit(jax.vmap(t, in_axes=(0, None)))(jax.random.split(KEY, 100), x)
    assert ys.shape == (100, 2, 5, 6, 3)
    for y in np.asarray(ys):
        found = [
            (i, j)
            for i in range(3)
            for j in range(3)
            if np.array_equal(y, np.asarray(x)[:, i : i + 5, j : j + 6])  # whole batch, one crop
        ]
        assert len(found) == 1
        offsets.add(found[0])
    assert offsets == {(i, j) for i in range(3) for j in range(3)}


def test_scale_one_and_angle_zero_are_identities():
    x = _images((2, 6, 7, 3))
    np.testing.assert_array_equal(random_scale([1.0])(KEY, x), x)
    np.testing.assert_allclose(random_rotate([0])(KEY, x), x, atol=1e-7)


@pytest.mark.parametrize("shape", [(1, 6, 6, 2), (2, 7, 7, 1)])
def test_rotation_by_90_is_rot90(shape):
    x = _images(shape)
    np.testing.assert_allclose(
        random_rotate([90])(KEY, x), np.rot90(x, k=1, axes=(1, 2)), atol=1e-5
    )
    np.testing.assert_allclose(
        random_rotate([-90])(KEY, x), np.rot90(x, k=-1, axes=(1, 2)), atol=1e-5
    )


def test_rotation_by_180_of_a_rectangle_flips_both_axes():
    x = _images((1, 5, 8, 1))
    np.testing.assert_allclose(random_rotate([180])(KEY, x), x[:, ::-1, ::-1], atol=1e-5)


def test_scale_zooms_about_the_centre():
    w = 9
    ramp = jnp.broadcast_to(jnp.arange(w, dtype=jnp.float32)[None, None, :, None], (1, 5, w, 1))
    zoomed = random_scale([2.0])(KEY, ramp)[0, 2, :, 0]
    np.testing.assert_allclose(zoomed, 4 + (np.arange(w) - 4) / 2, atol=1e-6)
    shrunk = random_scale([0.5])(KEY, jnp.ones((1, 8, 8, 1)))[0, :, :, 0]
    assert float(shrunk[0, 0]) == 0.0 and float(shrunk[4, 4]) == 1.0


def test_compose_is_deterministic_per_key_and_differentiable():
    x = _images((1, 32, 32, 3))
    x = jnp.concatenate([x, x, _images((1, 32, 32, 3), seed=1)])
    t = jax.jit(standard_transforms())
    a, b = t(KEY, x), t(KEY, x)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 44, 44, 3)
    np.testing.assert_array_equal(a[0], a[1])  # one draw for the whole batch
    c = t(jax.random.key(1), x)
    assert not np.allclose(a, c)
    g = jax.jit(jax.grad(lambda y: jnp.sum(standard_transforms()(KEY, y) ** 2)))(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0
    np.testing.assert_array_equal(compose()(KEY, x), x)


def test_compose_splits_the_key():
    x = _images((1, 12, 12, 1))
    t = jitter(4)
    both = compose(t, t)(KEY, x)
    k1, k2 = jax.random.split(KEY)
    np.testing.assert_array_equal(both, t(k2, t(k1, x)))


def test_output_shape_and_too_small_images():
    assert output_shape(standard_transforms(), (128, 128, 3)) == (140, 140, 3)
    assert output_shape(compose(pad(1, mode="reflect"), jitter(3)), (5, 6, 2)) == (4, 5, 2)
    with pytest.raises(ValueError, match=r"jitter\(8\)"):
        output_shape(jitter(8), (6, 6, 3))
    with pytest.raises(ValueError, match=r"jitter\(8\)"):
        jax.jit(jitter(8))(KEY, jnp.zeros((1, 6, 6, 3)))
    with pytest.raises(ValueError, match=r"pad\(4\)"):
        output_shape(pad(4, mode="reflect"), (4, 9, 1))
    with pytest.raises(ValueError, match="shape"):
        output_shape(jitter(1), (6, 6))


def test_bad_arguments():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="`d`"):
            jitter(bad)
        with pytest.raises(ValueError, match="`width`"):
            pad(bad)
    with pytest.raises(ValueError, match="mode"):
        pad(2, mode="wrap")
    with pytest.raises(ValueError, match="value"):
        pad(2, value="random")
    for bad in ([], [0.0], [1.0, -1.0], [[1.0]], None):
        with pytest.raises(ValueError, match="scales"):
            random_scale(bad)
    for bad in ([], [float("nan")], "x"):
        with pytest.raises(ValueError, match="angles"):
            random_rotate(bad)
    with pytest.raises(TypeError, match="transforms"):
        compose(jitter(1), 3)
    with pytest.raises(ValueError, match="images"):
        random_rotate([1])(KEY, jnp.zeros((6, 6, 3)))


def _reference_bilinear(images, y, x):
    """The former four-gather bilinear sampler (zeros outside), whose gradient is a scatter."""
    h, w = images.shape[1:3]
    y0, x0 = jnp.floor(y), jnp.floor(x)
    wy, wx = y - y0, x - x0
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    out = jnp.zeros((images.shape[0], *y.shape, images.shape[3]), images.dtype)
    for dy, fy in ((0, 1 - wy), (1, wy)):
        for dx, fx in ((0, 1 - wx), (1, wx)):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            values = images[:, jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1), :]
            out = out + values * jnp.where(inside, fy * fx, 0)[None, :, :, None]
    return out


def _reference(kind, value, images):
    h, w = images.shape[1:3]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    u = jnp.arange(h, dtype=jnp.float32)[:, None] - cy
    v = jnp.arange(w, dtype=jnp.float32)[None, :] - cx
    if kind == "scale":
        y, x = cy + u / value + 0 * v, cx + v / value + 0 * u
    else:
        theta = jnp.float32(np.deg2rad(value))  # as the transform draws it
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        y, x = cy + cos * u + sin * v, cx - sin * u + cos * v
    return _reference_bilinear(images, y, x)


# Two shapes (a batch, and a non-square odd-sized image) in make test; the others with -m slow.
@pytest.mark.parametrize(
    "shape",
    [
        (2, 9, 9, 3),
        pytest.param((1, 10, 10, 2), marks=pytest.mark.slow),
        (1, 7, 12, 1),
        pytest.param((1, 16, 11, 3), marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("kind", ["scale", "rotate"])
def test_scale_and_rotate_equal_a_reference_in_values_and_gradients(kind, shape):
    rng = np.random.default_rng(sum(shape))
    if kind == "scale":
        values = [*rng.uniform(0.5, 2.0, 4), 0.9, 1.1]
    else:
        values = [*rng.uniform(-180, 180, 4), 7.0, 90.0, 180.0]
    x = _images(shape, seed=1)
    cotangent = _images(shape, seed=2)
    for value in values:
        t = (random_scale if kind == "scale" else random_rotate)([float(value)])
        out, vjp = jax.vjp(jax.jit(lambda y, t=t: t(KEY, y)), x)
        ref, ref_vjp = jax.vjp(lambda y, value=value: _reference(kind, value, y), x)
        # float32 coordinates (rounded differently once fused) bound the agreement to ~1e-6
        np.testing.assert_allclose(out, ref, atol=2e-6, err_msg=f"{kind} {value}")
        np.testing.assert_allclose(vjp(cotangent)[0], ref_vjp(cotangent)[0], atol=1e-5)
    # vmapped over keys with different draws, as in a render
    t = (random_scale if kind == "scale" else random_rotate)([float(v) for v in values])
    keys = jax.random.split(KEY, 8)
    grads = jax.jit(jax.vmap(jax.grad(lambda y, k: jnp.sum(t(k, y) * cotangent)), (None, 0)))
    loop = [jax.grad(lambda y, k=k: jnp.sum(t(k, y) * cotangent))(x) for k in keys]
    np.testing.assert_allclose(grads(x, keys), np.stack(loop), atol=1e-5)
