"""Named values inside ``lax.scan``: captured stacked ``(L, N, ...)``, perturbed and replaced, per
iteration as ``path[i]``; plain JAX, NNX ``nnx.scan`` and Linen ``nn.scan`` against unrolled twins
that share the weights. Gradients inside scan are slow on XLA:CPU: the models are tiny."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import visjax
from visjax.attribution import at_layer, grad_cam, integrated_gradients, saliency

L, D = 3, 4


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def _params():
    k = jax.random.split(jax.random.key(0), 3)
    return {
        "w": jax.random.normal(k[0], (L, D, D)) / 2,
        "v": jax.random.normal(k[1], (L, D, D)) / 2,
        "out": jax.random.normal(k[2], (D, 3)),
    }


def _scanned(p, x):
    def body(h, wv):
        w, v = wv
        a = visjax.tag(jnp.tanh(h @ w), "blocks.fc")
        b = visjax.tag(jnp.tanh(a @ v), "blocks.fc")  # the layer's second call: "blocks.fc#1"
        return b, None

    return jax.lax.scan(body, x, (p["w"], p["v"]))[0] @ p["out"]


def _unrolled(p, x):
    h = x
    for i in range(L):
        a = visjax.tag(jnp.tanh(h @ p["w"][i]), f"blocks.{i}.fc")
        h = visjax.tag(jnp.tanh(a @ p["v"][i]), f"blocks.{i}.fc2")
    return h @ p["out"]


@pytest.fixture(scope="module")
def twins():
    p = _params()
    x = jax.random.normal(jax.random.key(1), (5, D))
    return (
        visjax.as_model(_scanned, p, input_shape=(D,)),
        visjax.as_model(_unrolled, p, input_shape=(D,)),
        x,
    )


def _stack(acts, fmt):
    return jnp.stack([acts[fmt.format(i)] for i in range(L)])


def test_capture_is_stacked_over_the_scan(twins):
    m, u, x = twins
    assert m.layers == ("blocks.fc", "blocks.fc#1")
    assert m.layer_shapes(x)["blocks.fc"].shape == (L, 5, D)
    assert m.scan_lengths(x) == {"blocks.fc": (L,), "blocks.fc#1": (L,)}
    out, acts = m.activations(x, ["blocks.fc", "blocks.fc#1", "blocks.fc[2]", "blocks.fc#1[0]"])
    out_u, ref = u.activations(x, u.layers)
    _close(out, out_u)
    _close(acts["blocks.fc"], _stack(ref, "blocks.{}.fc"))
    _close(acts["blocks.fc#1"], _stack(ref, "blocks.{}.fc2"))
    _close(acts["blocks.fc[2]"], ref["blocks.2.fc"])
    _close(acts["blocks.fc#1[0]"], ref["blocks.0.fc2"])


def test_replace_and_perturb_inside_scan_match_the_unrolled_twin(twins):
    m, u, x = twins
    new = jax.random.normal(jax.random.key(2), (L, 5, D))
    got = m.run(x, replace={"blocks.fc": new})[0]
    want = u.run(x, replace={f"blocks.{i}.fc": new[i] for i in range(L)})[0]
    _close(got, want)
    # One iteration: `path[i]` takes an (N, ...) value used at that iteration only.
    _close(
        m.run(x, replace={"blocks.fc#1[1]": new[0]})[0],
        u.run(x, replace={"blocks.1.fc2": new[0]})[0],
    )
    # Layer gradients through the scan: the gradient of a zero perturbation.
    g = jax.grad(lambda d: m.perturbed(x, {"blocks.fc": d})[:, 0].sum())(jnp.zeros((L, 5, D)))
    g_u = jax.grad(
        lambda d: u.perturbed(x, {f"blocks.{i}.fc": d[i] for i in range(L)})[:, 0].sum()
    )(jnp.zeros((L, 5, D)))
    _close(g, g_u)


def test_layer_method_on_one_iteration_matches_the_unrolled_twin(twins):
    m, u, x = twins
    ig = at_layer(integrated_gradients, "blocks.fc[1]")(m, x, 2, n_steps=8, batch_size=None)
    ig_u = at_layer(integrated_gradients, "blocks.1.fc")(u, x, 2, n_steps=8, batch_size=None)
    _close(ig, ig_u)
    _close(saliency(m, x, 0), saliency(u, x, 0))


def test_grad_cam_on_a_conv_inside_scan():
    k = jax.random.split(jax.random.key(3), 2)
    p = {"k": jax.random.normal(k[0], (2, 3, 3, 2, 2)) / 3, "out": jax.random.normal(k[1], (2, 3))}

    def conv(h, w):
        return jax.lax.conv_general_dilated(
            h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def scanned(p, x):
        def body(h, w):
            return visjax.tag(jax.nn.relu(conv(h, w)), "blocks.conv"), None

        return jax.lax.scan(body, x, p["k"])[0].mean((1, 2)) @ p["out"]

    def unrolled(p, x):
        for i in range(2):
            x = visjax.tag(jax.nn.relu(conv(x, p["k"][i])), f"blocks.{i}.conv")
        return x.mean((1, 2)) @ p["out"]

    x = jax.random.normal(k[1], (2, 6, 6, 2))
    m = visjax.as_model(scanned, p, input_shape=(6, 6, 2))
    u = visjax.as_model(unrolled, p, input_shape=(6, 6, 2))
    _close(grad_cam(m, x, 1, layer="blocks.conv[1]"), grad_cam(u, x, 1, layer="blocks.1.conv"))


def test_fori_loop_with_static_bounds_is_a_scan():
    def apply(p, x):
        return jax.lax.fori_loop(0, 3, lambda i, h: visjax.tag(jnp.tanh(h @ p), "step"), x)

    m = visjax.as_model(apply, jnp.eye(D) / 2, input_shape=(D,))
    x = jnp.ones((2, D))
    acts = m.activations(x, "step")[1]["step"]
    assert acts.shape == (3, 2, D)
    _close(acts[-1], m(x))


class _Block(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(D, D, rngs=rngs)

    def __call__(self, h):
        return jnp.tanh(self.fc(h))


class _NNXScanned(nnx.Module):
    def __init__(self, rngs):
        @nnx.split_rngs(splits=L)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make(rngs):
            return _Block(rngs)

        self.blocks = make(rngs)
        self.head = nnx.Linear(D, 3, rngs=rngs)

    def __call__(self, x):
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def body(h, block):
            return block(h)

        return self.head(body(x, self.blocks))


def test_nnx_scan_matches_an_unrolled_twin():
    module = _NNXScanned(nnx.Rngs(0))
    m = visjax.as_model(module, input_shape=(D,))
    w = m.params["blocks"]["fc"]

    def unrolled(p, x):
        for i in range(L):
            h = x @ w["kernel"][i] + w["bias"][i]
            x = jnp.tanh(visjax.tag(h, f"blocks.{i}.fc"))
        return x @ p["kernel"] + p["bias"]

    u = visjax.as_model(unrolled, m.params["head"], input_shape=(D,))
    x = jax.random.normal(jax.random.key(4), (3, D))
    assert m.layer_shapes(x)["blocks.fc"].shape == (L, 3, D)
    acts = m.activations(x, ["blocks.fc", "blocks"])[1]
    _, ref = u.activations(x, u.layers)
    _close(acts["blocks.fc"], _stack(ref, "blocks.{}.fc"))
    new = jax.random.normal(jax.random.key(5), (L, 3, D))
    _close(
        m.run(x, replace={"blocks.fc": new})[0],
        u.run(x, replace={f"blocks.{i}.fc": new[i] for i in range(L)})[0],
    )


class _LinenBlock(nn.Module):
    @nn.compact
    def __call__(self, h, _):
        return jnp.tanh(nn.Dense(D, name="fc")(h)), None


class _LinenScanned(nn.Module):
    @nn.compact
    def __call__(self, x):
        blocks = nn.scan(
            _LinenBlock, variable_axes={"params": 0}, split_rngs={"params": True}, length=L
        )
        return nn.Dense(3, name="head")(blocks(name="blocks")(x, None)[0])


def test_linen_scan_matches_an_unrolled_twin():
    x = jax.random.normal(jax.random.key(6), (3, D))
    variables = _LinenScanned().init(jax.random.key(0), x)
    m = visjax.as_model(_LinenScanned(), variables, input_shape=(D,))
    p = variables["params"]

    def unrolled(p, x):
        for i in range(L):
            fc = p["blocks"]["fc"]
            x = jnp.tanh(visjax.tag(x @ fc["kernel"][i] + fc["bias"][i], f"blocks.{i}.fc"))
        return x @ p["head"]["kernel"] + p["head"]["bias"]

    u = visjax.as_model(unrolled, p, input_shape=(D,))
    assert "blocks.fc" in m.layers
    _, acts = m.activations(x, ["blocks.fc", "blocks.fc[2]"])
    out_u, ref = u.activations(x, u.layers)
    _close(m(x), out_u)
    _close(acts["blocks.fc"], _stack(ref, "blocks.{}.fc"))
    _close(acts["blocks.fc[2]"], ref["blocks.2.fc"])
    new = jax.random.normal(jax.random.key(7), (3, D))
    _close(m.run(x, replace={"blocks.fc[0]": new})[0], u.run(x, replace={"blocks.0.fc": new})[0])


def test_while_and_cond_stay_refused():
    def looped(p, x):
        return jax.lax.while_loop(
            lambda c: c[0] < 3, lambda c: (c[0] + 1, visjax.tag(c[1] @ p, "step")), (0, x)
        )[1]

    def branched(p, x):
        return jax.lax.cond(x.sum() > 0, lambda h: visjax.tag(h @ p, "b"), lambda h: h, x)

    x = jnp.ones((2, D))
    for apply, name in ((looped, "step"), (branched, "b")):
        m = visjax.as_model(apply, jnp.eye(D), input_shape=(D,))
        assert name in m.layers
        with pytest.raises(ValueError, match="not inside `while` or `cond`"):
            m.activations(x, name)


def test_bad_iteration_names_and_shapes_are_refused(twins):
    m, _, x = twins
    with pytest.raises(ValueError, match=r"0 <= i < length"):
        m.activations(x, "blocks.fc[3]")
    with pytest.raises(ValueError, match="unknown layer"):
        m.activations(x, "nope[0]")
    with pytest.raises(ValueError, match=r"shape \(3, 5, 4\)"):
        m.run(x, replace={"blocks.fc": jnp.zeros((5, D))})
    u = visjax.as_model(_unrolled, _params(), input_shape=(D,))
    with pytest.raises(ValueError, match="not inside a `scan`"):
        u.activations(x, "blocks.0.fc[0]")
