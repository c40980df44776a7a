"""The PyTorch bridge: the digits CNN and ResNet rebuilt in torch agree with visjax; peers load."""

import jax
import numpy as np
import optax
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from tests.peers import rel_err
from visjax.zoo import digits_cnn, digits_resnet, init_digits_cnn_params, load_digits, train

pytestmark = pytest.mark.peers

RTOL = 1e-5  # float32, relative to the largest magnitude of the visjax result


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def trained_params(digits):
    model, _ = train(digits_cnn("function", seed=3), digits.train, epochs=2, seed=3)
    return model.params


@pytest.fixture(scope="module")
def weights(trained_params):
    return {"random": init_digits_cnn_params(jax.random.key(11)), "trained": trained_params}


def inputs(digits):
    """Random inputs plus real test digits, NHWC float32."""
    rand = np.asarray(jax.random.uniform(jax.random.key(5), (16, 8, 8, 1)), np.float32)
    return np.concatenate([rand, digits.test.x[:16]])


def torch_forward(net, x_nhwc, layers=()):
    """Logits and the outputs of the named submodules (captured with forward hooks), NHWC."""
    torch = bridge.import_torch()
    acts = {}
    handles = [
        net.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: acts.__setitem__(name, bridge.from_torch(out))
        )
        for name in layers
    ]
    try:
        with torch.no_grad():
            logits = bridge.from_torch(net(bridge.to_torch_input(x_nhwc)))
    finally:
        for h in handles:
            h.remove()
    return logits, acts


@pytest.mark.parametrize("which", ["random", "trained"])
def test_digits_cnn_logits_match_visjax(which, weights, digits):
    params = weights[which]
    x = inputs(digits)
    want = np.asarray(digits_cnn("function", params)(x))
    got, _ = torch_forward(bridge.torch_digits_cnn(params), x)
    assert got.dtype == np.float32
    err = rel_err(got, want)
    print(f"digits CNN logits, {which} weights: max relative error {err:.2e}")
    assert err <= RTOL
    assert (got.argmax(-1) == want.argmax(-1)).all()


@pytest.mark.parametrize("which", ["random", "trained"])
def test_digits_cnn_activations_match_visjax(which, weights, digits):
    params = weights[which]
    x = inputs(digits)
    layers = ["conv1", "conv2", "fc"]
    model = digits_cnn("function", params)
    _, want = jax.jit(lambda m, x: m.activations(x, layers))(model, x)
    net = bridge.torch_digits_cnn(params)
    _, got = torch_forward(net, x, [bridge.DIGITS_CNN_LAYERS[p] for p in layers])
    for path in layers:
        err = rel_err(got[bridge.DIGITS_CNN_LAYERS[path]], want[path])
        print(f"digits CNN {path} activation, {which} weights: max relative error {err:.2e}")
        assert err <= RTOL, path
    # the activations are taken before the ReLU: both signs occur
    assert (np.asarray(want["conv1"]) < 0).any()


def test_torch_digits_cnn_structure(cnn_params):
    torch = bridge.import_torch()
    net = bridge.torch_digits_cnn(cnn_params)
    names = [name for name, _ in net.named_children()]
    assert names == ["conv1", "relu1", "conv2", "relu2", "pool", "flatten", "fc"]
    assert isinstance(net.relu1, torch.nn.ReLU) and isinstance(net.relu2, torch.nn.ReLU)
    assert isinstance(net.pool, torch.nn.AdaptiveAvgPool2d)
    assert not net.training
    assert net.conv1.weight.shape == (16, 1, 3, 3) and net.conv2.weight.shape == (32, 16, 3, 3)
    assert net.fc.weight.shape == (10, 32)
    np.testing.assert_array_equal(
        net.conv2.weight.detach().numpy()[5, 7],
        np.asarray(cnn_params["conv2"]["kernel"])[:, :, 7, 5],
    )
    np.testing.assert_array_equal(
        net.fc.weight.detach().numpy(), np.asarray(cnn_params["fc"]["kernel"]).T
    )
    with pytest.raises(ValueError, match="conv1/conv2/fc"):
        bridge.torch_digits_cnn({"conv1": cnn_params["conv1"]})


# ----------------------------------------------------------------------------- the digits ResNet

SKIPS = {"skip": True, "noskip": False}


def with_random_biases(params, key):
    """``params`` with every bias drawn from N(0, 0.1^2) (fresh ResNet biases are all zero)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    keys = iter(jax.random.split(key, len(leaves)))
    return jax.tree_util.tree_map_with_path(
        lambda path, a: (
            0.1 * jax.random.normal(next(keys), a.shape, a.dtype) if path[-1].key == "bias" else a
        ),
        params,
    )


@pytest.fixture(scope="module")
def resnet_weights(digits):
    """(skip, which) -> ResNet params (depth 8), built on first use."""
    cache = {}

    def get(skip, which):
        if (skip, which) not in cache:
            model = digits_resnet(skip=skip, seed=7)
            if which == "random":
                params = with_random_biases(model.params, jax.random.key(13))
            else:
                trained, _ = train(
                    model, digits.train, epochs=2, optimizer=optax.adam(3e-3), seed=7
                )
                params = trained.params
            cache[skip, which] = params
        return cache[skip, which]

    return get


@pytest.mark.parametrize("which", ["random", "trained"])
@pytest.mark.parametrize("skip", list(SKIPS), ids=list(SKIPS))
def test_resnet_logits_match_visjax(skip, which, resnet_weights, digits):
    skip = SKIPS[skip]
    params = resnet_weights(skip, which)
    x = inputs(digits)
    want = np.asarray(digits_resnet(params, skip=skip)(x))
    got, _ = torch_forward(bridge.torch_resnet(params, skip=skip), x)
    assert got.dtype == np.float32
    err = rel_err(got, want)
    print(f"ResNet (skip={skip}) logits, {which} weights: max relative error {err:.2e}")
    assert err <= RTOL
    assert (got.argmax(-1) == want.argmax(-1)).all()
    if which == "trained":  # two epochs already classify most test digits
        labels = digits.test.y[:16]
        assert (want[16:].argmax(-1) == labels).mean() >= 0.75


@pytest.mark.parametrize("which", ["random", "trained"])
@pytest.mark.parametrize("skip", list(SKIPS), ids=list(SKIPS))
def test_resnet_activations_match_visjax(skip, which, resnet_weights, digits):
    skip = SKIPS[skip]
    params = resnet_weights(skip, which)
    x = inputs(digits)
    model = digits_resnet(params, skip=skip)
    layer_map = bridge.resnet_layers(skip=skip)
    layers = list(model.layers)  # every layer: convolutions, projections, blocks, stages, fc
    assert layers == list(layer_map)
    _, want = jax.jit(lambda m, x: m.activations(x, layers))(model, x)
    net = bridge.torch_resnet(params, skip=skip)
    _, got = torch_forward(net, x, [layer_map[p] for p in layers])
    errs = {path: rel_err(got[layer_map[path]], want[path]) for path in layers}
    worst = max(errs, key=errs.get)
    print(
        f"ResNet (skip={skip}) activations, {which} weights: max relative error "
        f"{errs[worst]:.2e} ({worst}; {len(layers)} layers)"
    )
    for path, err in errs.items():
        assert err <= RTOL, (path, err)
    # convolutions are taken before their ReLU, blocks and stages after it
    assert (np.asarray(want["stages.1.blocks.0.conv1"]) < 0).any()
    assert (np.asarray(want["stages.1.blocks.0"]) >= 0).all()


def test_resnet_deeper_and_narrower_match_visjax(digits):
    x = inputs(digits)
    layers = ["stages.0.blocks.1", "stages.1.blocks.1.conv2", "stages.2", "fc"]
    for skip in (True, False):
        model = digits_resnet(skip=skip, depth=14, width=4, seed=2)
        params = with_random_biases(model.params, jax.random.key(3))
        model = digits_resnet(params, skip=skip, depth=14, width=4)
        layer_map = bridge.resnet_layers(skip=skip, depth=14)
        assert list(layer_map) == list(model.layers)
        _, want = jax.jit(lambda m, x: m.activations(x, layers))(model, x)
        net = bridge.torch_resnet(params, skip=skip, depth=14, width=4)
        _, got = torch_forward(net, x, [layer_map[p] for p in layers])
        for path in layers:
            assert rel_err(got[layer_map[path]], want[path]) <= RTOL, (skip, path)


def test_torch_resnet_structure():
    torch = bridge.import_torch()
    params = digits_resnet(seed=4).params
    net = bridge.torch_resnet(params)
    assert not net.training
    assert [n for n, _ in net.named_children()] == [
        "stem",
        "relu",
        "stages",
        "pool",
        "flatten",
        "fc",
    ]
    assert isinstance(net.pool, torch.nn.AdaptiveAvgPool2d)
    block = net.get_submodule("stages.1.blocks.0")
    assert [n for n, _ in block.named_children()] == ["conv1", "relu1", "conv2", "proj", "relu2"]
    assert isinstance(block.relu1, torch.nn.ReLU) and isinstance(block.relu2, torch.nn.ReLU)
    assert not block.relu1.inplace and not block.relu2.inplace
    assert block.conv1.stride == (2, 2) and block.conv1.padding == (1, 1)
    assert block.proj.stride == (2, 2) and block.proj.padding == (0, 0)
    assert block.proj.weight.shape == (32, 16, 1, 1)
    np.testing.assert_array_equal(
        block.conv2.weight.detach().numpy()[5, 7],
        np.asarray(params["stages"][1]["blocks"][0]["conv2"]["kernel"])[:, :, 7, 5],
    )
    assert net.get_submodule("stages.0.blocks.0").proj is None
    assert net.fc.weight.shape == (10, 64)
    assert bridge.RESNET_LAYERS == bridge.resnet_layers(skip=True, depth=8)
    assert "stages.1.blocks.0.proj" in bridge.RESNET_LAYERS
    for name in bridge.RESNET_LAYERS.values():
        net.get_submodule(name)  # every mapped name exists
    plain = bridge.torch_resnet(digits_resnet(skip=False).params, skip=False)
    assert plain.get_submodule("stages.1.blocks.0").proj is None
    assert "stages.1.blocks.0.proj" not in bridge.resnet_layers(skip=False)
    with pytest.raises(ValueError, match="skip=False"):
        bridge.torch_resnet(params, skip=False)
    with pytest.raises(ValueError, match="width=8"):
        bridge.torch_resnet(params, width=8)
    with pytest.raises(ValueError, match="depth"):
        bridge.torch_resnet(params, depth=9)


def test_layout_helpers_round_trip():
    torch = bridge.import_torch()
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # N, H, W, C
    t = bridge.to_torch_input(x)
    assert tuple(t.shape) == (2, 5, 3, 4) and t.is_contiguous() and t.dtype == torch.float32
    assert t[1, 4, 2, 3] == x[1, 2, 3, 4]
    np.testing.assert_array_equal(bridge.from_torch(t), x)
    assert bridge.to_torch_input(x, dtype=torch.float64).dtype == torch.float64
    np.testing.assert_array_equal(bridge.from_torch(torch.ones(2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="rank 4"):
        bridge.to_torch_input(x[0])
    # NumPy views of JAX arrays are read-only; the torch tensors own writable copies (torch warns
    # once per process about read-only arrays, so this is checked directly).
    xj = jax.numpy.asarray(x[..., :1])
    assert not np.asarray(xj).flags.writeable
    assert bridge.to_torch_input(xj).numpy().flags.writeable


def test_import_torch_is_idempotent():
    torch = bridge.import_torch()
    assert bridge.import_torch() is torch
    if torch.version.cuda is None:
        assert hasattr(torch.ops.torchvision, "nms") and hasattr(torch.ops.torchvision, "qnms")


@pytest.mark.parametrize(
    "name",
    [
        "torchvision",
        "captum.attr",
        "pytorch_grad_cam",
        "zennit.composites",
        "lucent.optvis.render",
        "loss_landscapes",
        "pyhessian",
        "openTSNE",
        "cv2",
    ],
)
def test_peers_import_after_the_workaround(name):
    module = bridge.import_peer(name)
    assert module.__name__ == name
