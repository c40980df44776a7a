import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import visjax
from visjax.zoo import cnn

FORMS = ("nnx", "linen", "function")
LAYERS = ("conv1", "conv2", "fc")


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def layer_grad(model, x, layer, target=3):
    """Gradient of logit `target` (summed over the batch) w.r.t. a layer's activation."""
    shapes = model.layer_shapes(x)
    zero = jnp.zeros(shapes[layer].shape, shapes[layer].dtype)
    return jax.grad(lambda d: model.perturbed(x, {layer: d})[:, target].sum())(zero)


def test_forms_give_identical_outputs_activations_and_layer_grads(cnn_models, batch):
    ref = cnn_models["function"]
    ref_out, ref_acts = jax.jit(lambda m, x: m.activations(x, LAYERS))(ref, batch)
    jit_grad = jax.jit(layer_grad, static_argnums=2)
    ref_grads = {layer: jit_grad(ref, batch, layer) for layer in LAYERS}
    for form in ("nnx", "linen"):
        m = cnn_models[form]
        assert m.layers == LAYERS
        out, acts = jax.jit(lambda m, x: m.activations(x, LAYERS))(m, batch)
        assert rel_err(out, ref_out) <= 1e-6
        assert rel_err(jax.jit(lambda m, x: m(x))(m, batch), ref_out) <= 1e-6
        for layer in LAYERS:
            assert rel_err(acts[layer], ref_acts[layer]) <= 1e-6
            g = jax.jit(layer_grad, static_argnums=2)(m, batch, layer)
            assert rel_err(g, ref_grads[layer]) <= 1e-6


def test_layer_gradient_matches_hand_split_model(cnn_models, cnn_params, batch):
    # Independent reference: the head of the network after conv2, written by hand.
    p = cnn_params

    def head(a2):
        h = jax.nn.relu(a2).mean(axis=(1, 2))
        return (h @ p["fc"]["kernel"] + p["fc"]["bias"])[:, 3].sum()

    _, acts = cnn_models["function"].activations(batch, "conv2")
    expected = jax.grad(head)(acts["conv2"])
    for form in FORMS:
        assert rel_err(layer_grad(cnn_models[form], batch, "conv2"), expected) <= 1e-6


def test_perturbation_shifts_the_layer_value(cnn_models, batch):
    m = cnn_models["nnx"]
    delta = jnp.full((5, 10), 0.5)
    out, acts = m.run(batch, capture=["fc"], perturb={"fc": delta})
    assert rel_err(out, m(batch) + 0.5) <= 1e-6
    assert rel_err(acts["fc"], out) <= 1e-6


@pytest.mark.parametrize("form", FORMS)
def test_batch_equals_stack_of_single_examples(cnn_models, batch, form):
    m = cnn_models[form]
    f = jax.jit(lambda m, x: m.activations(x, LAYERS))
    out, acts = f(m, batch)
    singles = [f(m, batch[i : i + 1]) for i in range(batch.shape[0])]
    assert rel_err(out, jnp.concatenate([s[0] for s in singles])) <= 1e-6
    for layer in LAYERS:
        stacked = jnp.concatenate([s[1][layer] for s in singles])
        assert rel_err(acts[layer], stacked) <= 1e-6
    g = layer_grad(m, batch, "conv1")
    g_single = jnp.concatenate([layer_grad(m, batch[i : i + 1], "conv1") for i in range(5)])
    assert rel_err(g, g_single) <= 1e-6


def test_vmap_over_single_examples_equals_batch(cnn_models, batch):
    m = cnn_models["linen"]
    per_example = jax.vmap(lambda x: m.activations(x[None], "conv2")[1]["conv2"][0])(batch)
    assert rel_err(per_example, m.activations(batch, "conv2")[1]["conv2"]) <= 1e-6


@pytest.mark.parametrize("form", FORMS)
def test_jitted_layer_gradient_traces_once(cnn_models, batch, cnn_params, form):
    traces = []

    @jax.jit
    def f(m, x):
        traces.append(1)
        return layer_grad(m, x, "conv2")

    m = cnn_models[form]
    f(m, batch).block_until_ready()
    f(m, batch + 1.0).block_until_ready()
    # New weights are arguments, not constants: no retrace either.
    new = jax.tree.map(lambda a: a * 0.5, m.params)
    f(m.replace(params=new), batch).block_until_ready()
    assert len(traces) == 1


def test_apply_uses_given_params(cnn_models, batch):
    m = cnn_models["nnx"]
    zero = jax.tree.map(jnp.zeros_like, m.params)
    assert np.allclose(m.apply(zero, batch), 0.0)
    assert rel_err(m.apply(m.params, batch), m(batch)) <= 1e-6
    assert rel_err(jax.jit(lambda m, p, x: m.apply(p, x))(m, m.params, batch), m(batch)) <= 1e-6


def test_params_are_plain_nested_dicts_shared_by_all_forms(cnn_models):
    structures = {jax.tree.structure(m.params) for m in cnn_models.values()}
    assert len(structures) == 1
    assert isinstance(cnn_models["nnx"].params, dict)
    assert sum(a.size for a in jax.tree.leaves(cnn_models["nnx"].params)) == 5130


def test_as_model_returns_existing_model(cnn_models):
    m = cnn_models["linen"]
    assert visjax.as_model(m) is m


# -- NNX specifics


def test_nnx_user_classes_are_not_modified(cnn_params, batch):
    module = cnn.nnx_module(cnn_params)
    call_before = nnx.Conv.__call__
    m = visjax.as_model(module, input_shape=(8, 8, 1))
    m.activations(batch, "conv1")
    assert type(module.conv1) is nnx.Conv
    assert nnx.Conv.__call__ is call_before
    assert "_visjax_path" not in vars(module.conv1)


def test_nnx_subclass_inheriting_call_is_tagged_once():
    class MyConv(nnx.Conv):
        pass

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = MyConv(1, 2, (3, 3), rngs=rngs)
            self.inner = nnx.Sequential(nnx.Linear(2, 2, rngs=rngs))

        def __call__(self, x):
            return self.inner(self.conv(x).mean((1, 2)))

    m = visjax.as_model(Net(nnx.Rngs(0)), input_shape=(4, 4, 1))
    assert m.layers == ("conv", "inner.layers.0", "inner")
    assert type(Net(nnx.Rngs(0)).conv) is MyConv


def test_nnx_dropout_and_batchnorm_run_in_inference_mode():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(3, 4, rngs=rngs)
            self.bn = nnx.BatchNorm(4, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.bn(self.fc(x)))

    net = Net(nnx.Rngs(0))
    net.bn.mean[...] = jnp.arange(4.0)
    net.bn.var[...] = jnp.full((4,), 4.0)
    m = visjax.as_model(net)
    x = jnp.ones((2, 3))
    expected = (net.fc(x) - jnp.arange(4.0)) / jnp.sqrt(4.0 + net.bn.epsilon)
    assert rel_err(m(x), expected) <= 1e-6
    assert rel_err(m(x), m(x)) == 0.0  # no dropout noise
    assert not net.drop.deterministic  # the user's module keeps its own mode
    assert m.layers == ("bn", "drop", "fc")


# -- Linen specifics


def test_linen_batchnorm_with_apply_kwargs():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = True):
            h = nn.Dense(4, name="fc")(x)
            return nn.BatchNorm(use_running_average=not train, name="bn")(h)

    net = Net()
    variables = net.init(jax.random.key(0), jnp.ones((2, 3)), train=False)
    variables = {
        "params": variables["params"],
        "batch_stats": {"bn": {"mean": jnp.arange(4.0), "var": jnp.full((4,), 4.0)}},
    }
    m = visjax.as_model(net, variables, apply_kwargs={"train": False}, input_shape=(3,))
    x = jnp.ones((2, 3))
    fc = x @ variables["params"]["fc"]["kernel"] + variables["params"]["fc"]["bias"]
    expected = (fc - jnp.arange(4.0)) / jnp.sqrt(4.0 + 1e-5)
    assert rel_err(m(x), expected) <= 1e-6
    assert m.layers == ("fc", "bn")
    assert set(m.state) == {"batch_stats"}


# -- plain functions


def test_plain_function_layers_need_input_shape(cnn_params):
    m = visjax.as_model(cnn.apply, cnn_params)
    with pytest.raises(ValueError, match="input_shape"):
        _ = m.layers
    # Capturing works without it: names are found when the call is traced.
    _, acts = m.activations(jnp.ones((1, 8, 8, 1)), "conv1")
    assert acts["conv1"].shape == (1, 8, 8, 16)


def test_layer_called_twice_gets_numbered_paths():
    def apply(p, x):
        h = x
        for _ in range(2):
            h = visjax.tag(jnp.tanh(h @ p), "shared")
        return h

    m = visjax.as_model(apply, jnp.eye(3), input_shape=(3,))
    assert m.layers == ("shared", "shared#1")
    x = jnp.ones((2, 3))
    _, acts = m.activations(x, ["shared", "shared#1"])
    assert rel_err(acts["shared"], jnp.tanh(x)) <= 1e-6
    assert rel_err(acts["shared#1"], jnp.tanh(jnp.tanh(x))) <= 1e-6
    out = m.perturbed(x, {"shared#1": jnp.ones((2, 3))})
    assert rel_err(out, jnp.tanh(jnp.tanh(x)) + 1.0) <= 1e-6


# -- bad input


def test_unknown_layer_lists_known_ones(cnn_models, batch):
    for m in cnn_models.values():
        with pytest.raises(ValueError, match=r"unknown layer.*conv1.*conv2.*fc"):
            m.activations(batch, "conv3")
        with pytest.raises(ValueError, match="`perturb`"):
            m.perturbed(batch, {"nope": jnp.zeros(1)})


def test_unknown_layer_fails_at_trace_time_before_compiling(cnn_models, batch):
    spec = jax.ShapeDtypeStruct(batch.shape, batch.dtype)
    with pytest.raises(ValueError, match="unknown layer"):
        jax.eval_shape(lambda m, x: m.activations(x, "conv9"), cnn_models["nnx"], spec)


def test_wrong_rank_and_dtype(cnn_models):
    m = cnn_models["linen"]
    with pytest.raises(ValueError, match=r"`x` must be a batch of shape \(N, 8, 8, 1\)"):
        m(jnp.ones((8, 8, 1)))
    with pytest.raises(ValueError, match="`x`"):
        m(jnp.ones((2, 9, 8, 1)))
    with pytest.raises(TypeError, match="`x` must have a floating dtype"):
        m(jnp.ones((2, 8, 8, 1), jnp.int32))
    with pytest.raises(TypeError, match="`x` must be an array"):
        m(object())


def test_perturbation_of_wrong_shape(cnn_models, batch):
    with pytest.raises(ValueError, match=r"perturb\['fc'\].*shape"):
        cnn_models["function"].perturbed(batch, {"fc": jnp.zeros((5, 3))})


def test_object_that_cannot_be_adapted():
    with pytest.raises(TypeError, match="`obj` must be"):
        visjax.as_model(42)
    with pytest.raises(TypeError, match="`params`"):
        visjax.as_model(cnn.linen_module(), None)
    with pytest.raises(TypeError, match="parameters"):
        visjax.as_model(cnn.apply)
    with pytest.raises(ValueError, match="`input_shape`"):
        visjax.as_model(cnn.apply, {}, input_shape=(8, -1))


def test_params_that_do_not_match(cnn_models, batch):
    m = cnn_models["nnx"]
    bad_tree = {k: v for k, v in m.params.items() if k != "fc"}
    with pytest.raises(ValueError, match="`params` must have the model's tree structure"):
        m.apply(bad_tree, batch)
    bad_shape = jax.tree.map(lambda a: a, m.params)
    bad_shape["fc"]["kernel"] = jnp.zeros((32, 11))
    with pytest.raises(ValueError, match=r"`params\['fc'\]\['kernel'\]` must have shape"):
        m.apply(bad_shape, batch)
    with pytest.raises(ValueError, match="`params`"):
        m.replace(params=bad_tree)


def test_tags_inside_modules_are_relative_to_the_module_path():
    import flax.linen as nn

    class Attn(nnx.Module):
        def __init__(self, rngs):
            self.q = nnx.Linear(3, 3, rngs=rngs)

        def __call__(self, x):
            w = visjax.tag(jax.nn.softmax(self.q(x)), "weights")
            return w * x

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.blocks = nnx.List([Attn(rngs), Attn(rngs)])

        def __call__(self, x):
            for b in self.blocks:
                x = b(x)
            return x

    m = visjax.as_model(Net(nnx.Rngs(0)), input_shape=(3,))
    assert m.layers == (
        "blocks.0.q",
        "blocks.0.weights",
        "blocks.0",
        "blocks.1.q",
        "blocks.1.weights",
        "blocks.1",
    )
    x = jnp.ones((2, 3))
    _, acts = m.activations(x, ["blocks.1.weights"])
    np.testing.assert_allclose(acts["blocks.1.weights"].sum(-1), 1.0, rtol=1e-6)

    class LAttn(nn.Module):
        @nn.compact
        def __call__(self, x):
            return visjax.tag(jax.nn.softmax(nn.Dense(3, name="q")(x)), "weights") * x

    class LNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            return LAttn(name="attn")(x)

    variables = LNet().init(jax.random.key(0), x)
    lm = visjax.as_model(LNet(), variables, input_shape=(3,))
    assert lm.layers == ("attn.q", "attn.weights", "attn")
    # Outside any module, tag is checkpoint_name with the name as given.
    assert visjax.as_model(lambda p, x: visjax.tag(x * p, "y"), 2.0, input_shape=(3,)).layers == (
        "y",
    )


def test_replace_sets_the_layer_value_and_cuts_the_path_before_it(cnn_models, batch):
    m = cnn_models["linen"]
    _, acts = m.activations(batch, "conv2")
    out = m.run(batch, replace={"conv2": acts["conv2"]})[0]
    assert rel_err(out, m(batch)) <= 1e-6
    # d out / d x through a replaced layer is zero: nothing upstream reaches the output
    g = jax.grad(lambda x: m.run(x, replace={"conv2": acts["conv2"]})[0].sum())(batch)
    assert float(jnp.abs(g).max()) == 0.0
    with pytest.raises(ValueError, match=r"`replace\['conv2'\]` must have"):
        m.run(batch, replace={"conv2": jnp.zeros(3)})


def test_models_of_one_architecture_share_their_forward(cnn_params):
    # Same architecture, other weights: equal static data, so jit reuses the compiled program.
    for form in FORMS:
        a = cnn.digits_cnn(form, cnn_params)
        b = cnn.digits_cnn(form, seed=5)
        assert a.forward == b.forward
        assert jax.tree.structure(a) == jax.tree.structure(b)


@pytest.mark.parametrize("form", FORMS)
def test_trace_and_output_shape_without_evaluating(cnn_models, batch, form):
    m = cnn_models[form]
    spec = jax.ShapeDtypeStruct(batch.shape, batch.dtype)
    tr = m.trace(spec)
    assert tr.layers == m.layers
    assert set(LAYERS) <= set(tr.layers)
    assert jax.tree.structure(m(batch)) == tr.out_tree
    assert m.trace(batch) == tr  # cached per shapes
    out = m.output_shape(batch)
    assert isinstance(out, jax.ShapeDtypeStruct)
    assert out.shape == m(batch).shape and out.dtype == m(batch).dtype


def test_public_checks(cnn_models, batch):
    m = cnn_models["nnx"]
    assert m.check_x(np.asarray(batch)).shape == batch.shape
    with pytest.raises(ValueError, match=r"`x` must be a batch of shape"):
        m.check_x(batch[0])
    m.check_params(m.params)
    with pytest.raises(ValueError, match=r"`params"):
        m.check_params(jax.tree.map(lambda a: a[..., :1], m.params))


def test_replace_refuses_integer_params_and_tag_a_non_string_name():
    model = visjax.as_model(lambda p, x: x @ p["w"], {"w": jnp.eye(2)}, input_shape=(2,))
    with pytest.raises(TypeError, match=r"`params\['w'\]`.*floating"):
        model.replace(params={"w": jnp.eye(2, dtype=jnp.int32)})
    with pytest.raises(TypeError, match="`name`"):
        visjax.tag(jnp.ones(2), 3)
