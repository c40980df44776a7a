"""The setup the peer comparisons share: one trained digits CNN and its PyTorch twin."""

from typing import Any, NamedTuple

import numpy as np
import pytest


class PeerCNN(NamedTuple):
    model: Any  # the visjax digits CNN (plain-function form), trained 5 epochs
    torch_model: Any  # the same weights as a torch.nn.Module (benchmarks.peers.bridge)
    x: np.ndarray  # 16 test digits, NHWC
    t: np.ndarray  # their labels
    data: Any  # the digits splits


@pytest.fixture(scope="session")
def _peer_trained():
    from visjax.zoo import digits_cnn, load_digits, train

    data = load_digits()
    model, _ = train(digits_cnn("function", seed=5), data.train, epochs=5, seed=5)
    return model, data


@pytest.fixture(scope="module")
def peer_cnn(_peer_trained) -> PeerCNN:
    """A fresh torch twin per test module: peers leave hooks and attributes on modules."""
    pytest.importorskip(
        "torch", reason="the PyTorch peers are not installed (`make test-peers` installs them)"
    )
    from benchmarks.peers import bridge

    model, data = _peer_trained
    torch_model = bridge.torch_digits_cnn(model.params)
    return PeerCNN(model, torch_model, data.test.x[:16], data.test.y[:16], data)
