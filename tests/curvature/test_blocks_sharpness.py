import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from visjax.curvature import trace
from visjax.curvature.blocks import BlockCurvature, block_curvature, layer_groups
from visjax.curvature.sharpness import Sharpness, sharpness
from visjax.zoo import digits_cnn

KEY = jax.random.key(0)
DATA = jnp.zeros((4, 1))


def _quadratic():
    """``½ wᵀ H w`` with a block-diagonal ``H``: blocks "a" (2x2) and "b" (3x3), exact values."""
    rng = np.random.default_rng(0)
    blocks = {}
    for name, n in (("a", 2), ("b", 3)):
        m = rng.normal(size=(n, n))
        blocks[name] = jnp.asarray(m @ m.T + np.eye(n), jnp.float32)

    def loss(p, x):
        return sum(0.5 * p[k] @ blocks[k] @ p[k] for k in blocks) + 0.0 * x.sum()

    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    return loss, params, {k: np.asarray(v, np.float64) for k, v in blocks.items()}


def test_blocks_of_a_block_diagonal_quadratic_are_exact():
    loss, params, blocks = _quadratic()
    out = block_curvature(
        loss, params, data=DATA, groups={"first": "a", "second": ["b"]}, key=KEY, n_probes=200
    )
    assert list(out) == ["first", "second"]
    for name, k in (("first", "a"), ("second", "b")):
        c = out[name]
        assert isinstance(c, BlockCurvature) and c.n_params == blocks[k].shape[0]
        np.testing.assert_allclose(c.top_eigenvalue, np.linalg.eigvalsh(blocks[k])[-1], rtol=1e-4)
        np.testing.assert_allclose(c.trace, np.trace(blocks[k]), atol=4 * c.trace_stderr + 1e-4)
    # "layers" on top-level leaves: one group per leaf, named by it
    layers = block_curvature(loss, params, data=DATA, groups="layers", key=KEY, n_probes=2)
    assert list(layers) == ["a", "b"]


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_layer_groups_of_the_digits_cnn_partition_the_trace():
    model = digits_cnn("function")
    x = jax.random.uniform(jax.random.key(1), (8, 8, 8, 1))
    y = jax.random.randint(jax.random.key(2), (8,), 0, 10)

    def loss(p, batch):
        xb, yb = batch
        return optax.softmax_cross_entropy_with_integer_labels(model.apply_fn(p, xb), yb).mean()

    assert list(layer_groups(model.params)) == ["conv1", "conv2", "fc"]
    out = block_curvature(
        loss, model.params, data=(x, y), groups="layers", key=KEY, n_probes=20, n_iter=4
    )
    assert {g: c.n_params for g, c in out.items()} == {"conv1": 160, "conv2": 4640, "fc": 330}
    full = trace(loss, model.params, data=(x, y), n_probes=20, key=KEY, probe_batch=10)
    total = sum(c.trace for c in out.values())
    err = np.sqrt(full.stderr**2 + sum(c.trace_stderr**2 for c in out.values()))
    assert abs(total - full.estimate) <= 4 * err + 1e-6
    for c in out.values():
        assert np.isfinite(c.top_eigenvalue) and np.isfinite(c.trace)


def test_bad_groups_raise():
    loss, params, _ = _quadratic()
    with pytest.raises(ValueError, match="'missing'"):
        block_curvature(loss, params, data=DATA, groups={"ok": "a", "missing": "z*"}, key=KEY)
    with pytest.raises(ValueError, match="layers"):
        block_curvature(loss, params, data=DATA, groups="modules", key=KEY)
    with pytest.raises(ValueError, match="non-empty"):
        block_curvature(loss, params, data=DATA, groups={}, key=KEY)
    with pytest.raises(TypeError):
        block_curvature(loss, params, data=DATA, groups={"g": 3}, key=KEY)
    with pytest.raises(ValueError, match="n_probes"):
        block_curvature(loss, params, data=DATA, groups="layers", key=KEY, n_probes=0)


@pytest.mark.parametrize("a, r", [(1.0, 0.1), (4.0, 0.01)])
def test_sharpness_of_a_quadratic_in_a_ball_is_the_closed_form(a, r):
    def loss(w, x):
        return 0.5 * a * (w**2).sum() + 0.0 * x.sum()

    s = sharpness(loss, jnp.ones(1), data=DATA, radius=r, relative=False, batch_size=3)
    assert isinstance(s, Sharpness)
    base, top = 0.5 * a, 0.5 * a * (1 + r) ** 2
    np.testing.assert_allclose([s.loss, s.max_loss], [base, top], rtol=1e-5)
    np.testing.assert_allclose(s.value, 100 * (top - base) / (1 + base), rtol=1e-4)
    np.testing.assert_allclose(s.delta, [r], rtol=1e-5)


def test_sharpness_in_keskars_box():
    def loss(w, x):
        return 0.5 * (w**2).sum() + 0.0 * x.sum()

    w = jnp.array([1.0, -3.0])
    s = sharpness(loss, w, data=DATA, radius=0.01)
    corner = w + 0.01 * (jnp.abs(w) + 1) * jnp.sign(w)  # the box's farthest corner
    np.testing.assert_allclose(s.max_loss, float(loss(corner, DATA)), rtol=1e-5)
    np.testing.assert_allclose(s.delta, corner - w, rtol=1e-5)


def test_sharpness_is_nonnegative_and_zero_for_a_constant_loss():
    const = sharpness(lambda w, x: 2.0 + 0.0 * (w.sum() + x.sum()), jnp.ones(3), data=DATA)
    assert const.value == 0.0 and const.loss == const.max_loss == 2.0

    def bumpy(w, x):
        return jnp.cos(3 * w).sum() + 0.0 * x.sum()

    for key in (None, jax.random.key(3)):
        s = sharpness(bumpy, jnp.zeros(2), data=DATA, radius=0.05, key=key, n_steps=5)
        assert s.value >= 0 or key is not None
        assert np.isfinite(s.value)


def test_sharpness_bad_inputs_raise():
    loss = lambda w, x: (w**2).sum() + 0.0 * x.sum()  # noqa: E731
    for radius in (0.0, -1.0, float("nan"), "big"):
        with pytest.raises(ValueError, match="radius"):
            sharpness(loss, jnp.ones(2), data=DATA, radius=radius)
    with pytest.raises(ValueError, match="n_steps"):
        sharpness(loss, jnp.ones(2), data=DATA, n_steps=0)
    with pytest.raises(ValueError, match="step_size"):
        sharpness(loss, jnp.ones(2), data=DATA, step_size=-1.0)
