"""Pytree inputs (``as_model(..., wrt=)``): the model as a function of one leaf, the others held
fixed; integer tokens attributed through the embedding output."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import visjax
from visjax.attribution import at_layer, integrated_gradients, saliency
from visjax.model import per_example

N, T, D, V = 4, 5, 3, 7


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def _head(p, e, mask):
    h = jnp.tanh(e @ p["w"]) * mask[..., None]
    return visjax.tag(h.sum(-2), "pooled") @ p["out"]


def _apply(p, x):
    return _head(p, x["emb"], x["mask"])


def _closed_apply(q, e):
    return _head(q["p"], e, q["mask"])


def _closed(p, mask):
    """The function of the one leaf, ``mask`` closed over (as params: one compile for all)."""
    return visjax.as_model(_closed_apply, {"p": p, "mask": mask})


def _token_apply(p, x):
    return _head(p, visjax.tag(p["embed"][x["tokens"]], "embed"), x["mask"])


@pytest.fixture(scope="module")
def data():
    k = jax.random.split(jax.random.key(0), 5)
    p = {
        "w": jax.random.normal(k[0], (D, D)),
        "out": jax.random.normal(k[1], (D, 3)),
        "embed": jax.random.normal(k[2], (V, D)),
    }
    mask = (jax.random.uniform(k[3], (N, T)) > 0.3).astype(jnp.float32)
    tokens = jax.random.randint(k[4], (N, T), 0, V)
    return p, {"emb": p["embed"][tokens], "mask": mask}, {"tokens": tokens, "mask": mask}


def test_gradient_and_ig_via_wrt_equal_the_closed_over_function(data):
    p, x, _ = data
    m = visjax.as_model(_apply, p, wrt="emb", input_shape=(T, D))
    _close(m(x), _apply(p, x))
    target = jnp.array([0, 1, 2, 0])
    g = per_example(saliency)(m, x, target)
    want = jax.vmap(jax.grad(lambda e, mk, t: _head(p, e[None], mk[None])[0, t]))(
        x["emb"], x["mask"], target
    )
    _close(g, jnp.abs(want))
    ig = per_example(integrated_gradients)(m, x, target, n_steps=8)
    for i in range(N):
        closed = _closed(p, x["mask"][i])
        ref = integrated_gradients(closed, x["emb"][i : i + 1], int(target[i]), n_steps=8)
        _close(ig[i], ref[0])


def test_a_shared_fixed_leaf_serves_every_method_directly(data):
    p, x, _ = data
    m = visjax.as_model(_apply, p, wrt="emb", input_shape=(T, D))
    shared = {"emb": x["emb"], "mask": x["mask"][:1]}
    _close(saliency(m, shared, 1), saliency(_closed(p, x["mask"][0]), x["emb"], 1))


def test_tokens_are_attributed_through_the_embedding_output(data):
    p, _, x = data
    m = visjax.as_model(_token_apply, p, wrt="tokens", input_shape=(T,), input_dtype=jnp.integer)
    assert m.trace(x).layers == ("embed", "pooled")
    ig = per_example(at_layer(integrated_gradients, "embed"))(m, x, 2, n_steps=8)
    assert ig.shape == (N, T, D)
    emb = p["embed"][x["tokens"]]
    # The baseline is an input, token 0 by default, mapped through the embedding (Captum's
    # LayerIntegratedGradients does the same).
    base = jnp.broadcast_to(p["embed"][0], (1, T, D))
    for i in range(N):
        ref = integrated_gradients(
            _closed(p, x["mask"][i]), emb[i : i + 1], 2, n_steps=8, baseline=base
        )
        _close(ig[i], ref[0])
    # Padding (mask 0) gets no attribution.
    assert np.all(np.asarray(ig)[np.asarray(x["mask"]) == 0] == 0)


def test_tuple_input_and_capture_on_the_pytree(data):
    p, x, _ = data
    m = visjax.as_model(lambda p, x: _head(p, *x), p, wrt=0, input_shape=(T, D))
    xt = (x["emb"], x["mask"])
    out, acts = m.activations(xt, "pooled")
    _close(out, _apply(p, x))
    assert acts["pooled"].shape == (N, D)
    bound, leaf = m.bind(xt)
    _close(bound(leaf), out)  # N rows pair with the N fixed rows


def test_nnx_module_with_a_dict_input():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(V, D, rngs=rngs)
            self.out = nnx.Linear(D, 2, rngs=rngs)

        def __call__(self, x):
            e = self.embed(x["tokens"]) * x["mask"][..., None]
            return self.out(e.sum(1))

    m = visjax.as_model(Net(nnx.Rngs(0)), wrt="tokens", input_dtype=jnp.integer)
    x = {"tokens": jnp.arange(2 * T).reshape(2, T) % V, "mask": jnp.ones((2, T))}
    assert m.layer_shapes(x)["embed"].shape == (2, T, D)
    g = per_example(at_layer(saliency, "embed"))(m, x, 1)
    assert g.shape == (2, T, D)


def test_errors_name_wrt(data):
    p, x, _ = data
    plain = visjax.as_model(_apply, p)
    with pytest.raises(TypeError, match="`wrt=`"):
        saliency(plain, x, 0)
    m = visjax.as_model(_apply, p, wrt="emb")
    with pytest.raises(ValueError, match="`wrt` names 'nope'"):
        visjax.as_model(_apply, p, wrt="nope").check_x(x)
    with pytest.raises(TypeError, match="`wrt` leaf"):
        saliency(m, x["emb"], 0)
    with pytest.raises(ValueError, match="leading axis of 4"):
        m.check_x({"emb": x["emb"], "mask": x["mask"][:2]})
    with pytest.raises(ValueError, match="per_example"):
        saliency(m, x, 0)  # per-example fixed leaves need per_example
    with pytest.raises(TypeError, match="`wrt` must be"):
        visjax.as_model(_apply, p, wrt=1.5)
