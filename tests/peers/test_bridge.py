"""The PyTorch bridge: the digits CNN rebuilt in torch agrees with visjax, and the peers import."""

import jax
import numpy as np
import pytest

pytest.importorskip(
    "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
)

from benchmarks.peers import bridge
from visjax.zoo import digits_cnn, init_digits_cnn_params, load_digits, train

pytestmark = pytest.mark.peers

RTOL = 1e-5  # float32, relative to the largest magnitude of the visjax result


def rel_err(got, want) -> float:
    """max |got - want| / max |want|."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / np.abs(want).max())


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
