"""The scan-stacked digits ViT (``digits_vit(scan=True)``): the same weights as the unrolled ViT
stacked along a leading ``depth`` axis and run by ``nnx.scan``. Its logits equal the unrolled
model's, and the layer methods of the conformance suite (CAMs, at_layer, visjax.attention,
activations) give the unrolled model's results when a layer inside the scan is addressed as
``path[i]``. Gradients through scan are many times slower on XLA:CPU: one tiny example, and the
gradient cases are slow-marked (tests/conftest.py)."""

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import attention
from visjax.attribution import at_layer, cam, integrated_gradients
from visjax.zoo.vit import digits_vit, stack_blocks, unstack_blocks

DEPTH = 2


def _close(a, b, tol=1e-4):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol * 1e-2)


@cache
def _models():
    return digits_vit(seed=1), digits_vit(seed=1, scan=True)


@pytest.fixture(scope="module")
def x():
    return jax.random.normal(jax.random.key(0), (1, 8, 8, 1))


def path(model, sub, i):
    """Layer ``sub`` of block ``i``: ``blocks.{i}.sub`` unrolled, ``blocks.sub[i]`` scanned."""
    if model is _models()[0]:
        return f"blocks.{i}" + (f".{sub}" if sub else "")
    return "blocks" + (f".{sub}" if sub else "") + f"[{i}]"


def test_logits_and_parameters_shared_with_the_unrolled_model():
    u, s = _models()
    assert set(u.params["blocks"]) == set(range(DEPTH))  # the unrolled paths are unchanged
    assert s.params["blocks"]["attn"]["query"]["kernel"].shape == (DEPTH, 32, 32)
    x = jax.random.normal(jax.random.key(1), (5, 8, 8, 1))
    _close(s(x), u(x), 1e-5)
    _close(digits_vit(u.params, scan=True)(x), u(x), 1e-5)  # either layout is accepted
    assert jax.tree.all(jax.tree.map(jnp.array_equal, unstack_blocks(s.params), u.params))
    assert jax.tree.all(jax.tree.map(jnp.array_equal, stack_blocks(u.params), s.params))
    with pytest.raises(ValueError, match="params"):
        digits_vit(s.params, depth=3, scan=True)


def test_values_inside_the_scan_are_stacked(x):
    u, s = _models()
    shapes = s.layer_shapes(x)
    assert shapes["blocks.attn.attn_weights"].shape == (DEPTH, 1, 2, 17, 17)
    _, acts = s.activations(x, ["blocks.attn.attn_weights", "blocks"])
    _, ref = u.activations(x, u.layers)
    for sub in ("attn.attn_weights", ""):
        want = jnp.stack([ref[path(u, sub, i)] for i in range(DEPTH)])
        _close(acts["blocks" + (f".{sub}" if sub else "")], want)


FORWARD = {
    "Model.activations": lambda m, x, t: m.activations(x, path(m, "mlp.fc2", 1))[1][
        path(m, "mlp.fc2", 1)
    ],
    "attention_maps": lambda m, x, t: attention.attention_maps(m, x),
    "attention_maps(layers=block 1)": lambda m, x, t: attention.attention_maps(
        m, x, layers=path(m, "", 1)
    ),
    "attention_rollout": lambda m, x, t: attention.attention_rollout(m, x, discard_ratio=0.2),
}

SLOW = {  # gradients through the scan, and score_cam's many replaced forwards
    "score_cam": lambda m, x, t: cam.score_cam(m, x, t, layer=path(m, "", 0), batch_size=8),
    "grad_cam": lambda m, x, t: cam.grad_cam(m, x, t, layer=path(m, "", 1)),
    "layer_cam": lambda m, x, t: cam.layer_cam(m, x, t, layer=path(m, "mlp.fc2", 0)),
    "at_layer(integrated_gradients)": lambda m, x, t: at_layer(
        integrated_gradients, path(m, "mlp.fc2", 0)
    )(m, x, t, n_steps=4),
    "gradient_rollout": lambda m, x, t: attention.gradient_rollout(m, x, t),
}


def _check(fn, x):
    u, s = _models()
    want, got = fn(u, x, 3), fn(s, x, 3)
    assert got.shape == want.shape
    _close(got, want)


@pytest.mark.parametrize("name", FORWARD)
def test_forward_methods_match_the_unrolled_model(name, x):
    _check(FORWARD[name], x)


@pytest.mark.parametrize("name", SLOW)
def test_gradient_methods_match_the_unrolled_model(name, x):
    _check(SLOW[name], x)
