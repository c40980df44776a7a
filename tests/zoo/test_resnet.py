import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from visjax.zoo import digits_resnet, evaluate, load_digits, train
from visjax.zoo.resnet import nnx_module


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@jax.jit
def forward(model, x):
    return model(x)


@pytest.fixture(scope="module")
def x():
    return jax.random.uniform(jax.random.key(3), (5, 8, 8, 1))


# An independent forward, written from the architecture's description with lax and the params.
def conv(x, p, stride=1):
    k = p["kernel"].shape[0]
    pad = ((k // 2, k // 2),) * 2
    y = jax.lax.conv_general_dilated(
        x, p["kernel"], (stride, stride), pad, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["bias"]


def block_by_hand(p, x, *, stride, skip):
    h = conv(jax.nn.relu(conv(x, p["conv1"], stride)), p["conv2"])
    if skip:
        h = h + (conv(x, p["proj"], stride) if "proj" in p else x)
    return jax.nn.relu(h)


@functools.partial(jax.jit, static_argnames="skip")
def forward_by_hand(params, x, *, skip):
    h = jax.nn.relu(conv(x, params["stem"]))
    for s, stage in sorted(params["stages"].items()):
        for b, block in sorted(stage["blocks"].items()):
            h = block_by_hand(block, h, stride=2 if s > 0 and b == 0 else 1, skip=skip)
    return h.mean(axis=(1, 2)) @ params["fc"]["kernel"] + params["fc"]["bias"]


def without_proj(tree):
    if isinstance(tree, dict):
        return {k: without_proj(v) for k, v in tree.items() if k != "proj"}
    return tree


def conv_params(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def test_parameter_count_and_shapes(x):
    m = digits_resnet(depth=8, width=16)
    n = sum(p.size for p in jax.tree.leaves(m.params))
    blocks = (
        2 * conv_params(3, 16, 16)
        + conv_params(3, 16, 32)
        + conv_params(3, 32, 32)
        + conv_params(1, 16, 32)
        + conv_params(3, 32, 64)
        + conv_params(3, 64, 64)
        + conv_params(1, 32, 64)
    )
    assert n == conv_params(3, 1, 16) + blocks + 64 * 10 + 10 == 77_418
    assert forward(m, x).shape == (5, 10)
    shapes = m.layer_shapes(x)
    assert shapes["stem"].shape == (5, 8, 8, 16)
    assert shapes["stages.0"].shape == (5, 8, 8, 16)
    assert shapes["stages.1"].shape == (5, 4, 4, 32)
    assert shapes["stages.2.blocks.0.proj"].shape == (5, 2, 2, 64)
    assert shapes["stages.2"].shape == (5, 2, 2, 64)
    # no skip: the two projections (544 + 2,112 parameters) are gone
    m0 = digits_resnet(depth=8, width=16, skip=False)
    assert sum(p.size for p in jax.tree.leaves(m0.params)) == n - 544 - 2112
    # depth 14: two blocks per stage, twice the block parameters less the projections
    m14 = digits_resnet(depth=14, width=8)
    n14 = sum(p.size for p in jax.tree.leaves(m14.params))
    assert n14 == conv_params(3, 1, 8) + (
        4 * conv_params(3, 8, 8)
        + conv_params(3, 8, 16)
        + 3 * conv_params(3, 16, 16)
        + conv_params(1, 8, 16)
        + conv_params(3, 16, 32)
        + 3 * conv_params(3, 32, 32)
        + conv_params(1, 16, 32)
    ) + (32 * 10 + 10)


def test_layer_paths():
    def block(s, b, proj):
        p = f"stages.{s}.blocks.{b}"
        return (f"{p}.conv1", f"{p}.conv2", *((f"{p}.proj",) if proj else ()), p)

    expected = (
        "stem",
        *block(0, 0, False),
        "stages.0",
        *block(1, 0, True),
        "stages.1",
        *block(2, 0, True),
        "stages.2",
        "fc",
    )
    assert digits_resnet().layers == expected
    assert digits_resnet(skip=False).layers == tuple(p for p in expected if not p.endswith("proj"))
    layers14 = digits_resnet(depth=14).layers
    assert "stages.2.blocks.1.conv2" in layers14 and "stages.2.blocks.2" not in layers14
    assert "stages.1.blocks.1.proj" not in layers14  # same channels and stride: identity
    assert layers14[-1] == "fc"


@pytest.mark.parametrize("skip", [True, False])
def test_whole_forward_equals_independent_implementation(x, skip):
    m = digits_resnet(depth=14, width=8, skip=skip, seed=1)
    expected = forward_by_hand(m.params, x, skip=skip)
    assert rel_err(forward(m, x), expected) <= 1e-5


def test_skip_false_removes_exactly_the_identity_path(x):
    with_skip = digits_resnet(depth=8, seed=2)
    # the same weights in the no-skip network (it has no projections)
    no_skip = digits_resnet(without_proj(with_skip.params), depth=8, skip=False)
    layers = ["stem", "stages.0.blocks.0", "stages.0", "stages.1.blocks.0"]
    acts = jax.jit(lambda m, x: m.activations(x, layers)[1])
    a, a0 = acts(with_skip, x), acts(no_skip, x)
    np.testing.assert_allclose(a["stem"], a0["stem"], rtol=1e-6, atol=1e-6)
    p = with_skip.params["stages"][0]["blocks"][0]
    h = jax.nn.relu(a["stem"])
    residual = conv(jax.nn.relu(conv(h, p["conv1"])), p["conv2"])
    assert rel_err(a["stages.0.blocks.0"], jax.nn.relu(residual + h)) <= 1e-5
    assert rel_err(a0["stages.0.blocks.0"], jax.nn.relu(residual)) <= 1e-5
    assert rel_err(a["stages.0.blocks.0"], a0["stages.0.blocks.0"]) > 0.1
    # a downsampling block: the 1x1 strided projection is the shortcut, or nothing
    p1 = with_skip.params["stages"][1]["blocks"][0]
    expected = block_by_hand(p1, a["stages.0"], stride=2, skip=True)
    assert rel_err(a["stages.1.blocks.0"], expected) <= 1e-5
    expected0 = block_by_hand(p1, a0["stages.0"], stride=2, skip=False)
    assert rel_err(a0["stages.1.blocks.0"], expected0) <= 1e-5
    # with zero weights in the block, the skip block passes its (non-negative) input through and
    # the plain block outputs zeros
    zero = jax.tree.map(jnp.zeros_like, p)
    h_pos = jax.nn.relu(a["stem"])
    zeroed = jax.tree.map(lambda v: v, with_skip.params)
    zeroed["stages"][0]["blocks"][0] = zero
    az = acts(with_skip.replace(params=zeroed), x)
    np.testing.assert_allclose(az["stages.0.blocks.0"], h_pos, rtol=1e-6, atol=1e-6)
    zeroed0 = without_proj(zeroed)
    az0 = acts(no_skip.replace(params=zeroed0), x)
    np.testing.assert_array_equal(az0["stages.0.blocks.0"], 0.0)


@pytest.mark.parametrize("skip", [True, False])
def test_jit_and_batch_equals_stack_of_singles(x, skip):
    m = digits_resnet(skip=skip)
    f = jax.jit(lambda m, x: m.activations(x, ["stages.1.blocks.0", "fc"]))
    out, acts = f(m, x)
    assert rel_err(out, forward(m, x)) <= 1e-6
    singles = [f(m, x[i : i + 1]) for i in range(x.shape[0])]
    assert rel_err(out, jnp.concatenate([s[0] for s in singles])) <= 1e-6
    stacked = jnp.concatenate([s[1]["stages.1.blocks.0"] for s in singles])
    assert rel_err(acts["stages.1.blocks.0"], stacked) <= 1e-6


def test_params_round_trip_and_checks(x):
    m = digits_resnet(seed=4)
    out = forward(m, x)
    np.testing.assert_array_equal(forward(digits_resnet(m.params), x), out)
    module = nnx_module(m.params)
    loaded = nnx.to_pure_dict(nnx.state(module, nnx.Param))
    jax.tree.map(np.testing.assert_array_equal, loaded, m.params)
    assert not np.allclose(forward(digits_resnet(seed=5), x), out)
    with pytest.raises(ValueError, match="params"):
        digits_resnet(m.params, skip=False)  # the no-skip network has no projections
    with pytest.raises(ValueError, match="shape"):
        digits_resnet(m.params, width=8)
    for depth in (7, 10, 0):
        with pytest.raises(ValueError, match="`depth`"):
            digits_resnet(depth=depth)
    with pytest.raises(ValueError, match="`width`"):
        digits_resnet(width=0)


def test_quick_training_reaches_85_percent():
    # 2 epochs give 91-94 % (seeds 0-2); the module docstring's 10 epochs give 96-98 %
    digits = load_digits()
    model, history = train(
        digits_resnet(seed=0), digits.train, epochs=2, optimizer=optax.adam(3e-3), seed=0
    )
    _, acc = evaluate(model, digits.test)
    assert acc >= 0.85, acc
    assert history.train_loss[-1] < history.train_loss[0]
