"""The BatchNorm digits ResNet as a PyTorch twin, and Zennit's ResNet canonizers for it.

``torch_resnet_bn(model)`` copies the weights and batch statistics of
``visjax.zoo.digits_resnet(norm=True)`` into a torch network whose basic blocks register their
submodules in the order of the forward pass (``conv1, bn1, relu1, conv2, bn2, [proj, proj_bn,]
relu2``), so that Zennit's ``SequentialMergeBatchNorm`` pairs every convolution with the BatchNorm
after it. ``resnet_canonizers()`` is Zennit's ``ResNetCanonizer`` for these blocks: the merge, and
the residual sum routed through a ``zennit.layer.Sum`` module (which Zennit's composites give the
``Norm`` rule), exactly as ``zennit.torchvision.ResNetBasicBlockCanonizer`` does for torchvision's
``BasicBlock`` (importing ``zennit.torchvision`` needs a working torchvision, which the peers
environment does not guarantee).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from benchmarks.peers import bridge

_EPS = 1e-5  # Flax's and torch's BatchNorm default


def _value(a: Any) -> np.ndarray:
    return np.asarray(a[...])  # an NNX BatchStat or an array


@functools.cache
def _classes() -> tuple[type, type]:
    torch = bridge.import_torch()
    nn = torch.nn

    class TorchBNBlock(nn.Module):
        """``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``, shortcut ``proj_bn(proj(x))``
        or the identity."""

        def __init__(self, conv1, bn1, conv2, bn2, proj=None, proj_bn=None):
            super().__init__()
            self.conv1, self.bn1, self.relu1 = conv1, bn1, nn.ReLU()
            self.conv2, self.bn2 = conv2, bn2
            self.proj, self.proj_bn = proj, proj_bn
            self.relu2 = nn.ReLU()

        def shortcut(self, x):
            return x if self.proj is None else self.proj_bn(self.proj(x))

        def forward(self, x):
            h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            return self.relu2(h + self.shortcut(x))

    class TorchBNResNet(nn.Module):
        """The BatchNorm digits ResNet on NCHW ``(N, 1, 8, 8)``."""

        def __init__(self, stem, stem_bn, blocks, fc):
            super().__init__()
            self.stem, self.stem_bn, self.relu = stem, stem_bn, nn.ReLU()
            self.blocks = nn.ModuleList(blocks)
            self.pool, self.flatten, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc

        def forward(self, x):
            h = self.relu(self.stem_bn(self.stem(x)))
            for block in self.blocks:
                h = block(h)
            return self.fc(self.flatten(self.pool(h)))

    return TorchBNBlock, TorchBNResNet


def _bn(p: Any, st: Any, dtype: Any):
    torch = bridge.import_torch()
    c = np.shape(p["scale"])[0]
    bn = torch.nn.BatchNorm2d(c, eps=_EPS, dtype=dtype)
    with torch.no_grad():
        for name, a in (("weight", p["scale"]), ("bias", p["bias"])):
            getattr(bn, name).copy_(torch.from_numpy(np.array(a)).to(dtype))
        bn.running_mean.copy_(torch.from_numpy(np.array(_value(st["mean"]))).to(dtype))
        bn.running_var.copy_(torch.from_numpy(np.array(_value(st["var"]))).to(dtype))
    return bn


def torch_resnet_bn(model: Any, *, dtype: Any = None):
    """The torch twin (eval mode) of ``model``, a ``digits_resnet(norm=True)`` (depth 8), with
    weights in ``dtype`` (``torch.float32`` by default)."""
    torch = bridge.import_torch()
    dtype = torch.float32 if dtype is None else dtype
    conv2d = functools.partial(bridge.conv2d, dtype=dtype)
    block_cls, net_cls = _classes()
    p, st = model.params, model.state
    blocks = []
    for s in range(3):
        b, bs = p["stages"][s]["blocks"][0], st["stages"][s]["blocks"][0]
        stride = 1 if s == 0 else 2
        proj = None if "proj" not in b else conv2d(b["proj"], stride=stride, padding=0)
        blocks.append(
            block_cls(
                conv2d(b["conv1"], stride=stride, padding=1),
                _bn(b["bn1"], bs["bn1"], dtype),
                conv2d(b["conv2"], stride=1, padding=1),
                _bn(b["bn2"], bs["bn2"], dtype),
                proj,
                None if proj is None else _bn(b["proj_bn"], bs["proj_bn"], dtype),
            )
        )
    net = net_cls(
        conv2d(p["stem"], padding=1),
        _bn(p["stem_bn"], st["stem_bn"], dtype),
        blocks,
        bridge.linear(p["fc"], dtype=dtype),
    )
    return net.eval()


def resnet_canonizers(*, exact: bool = True) -> list:
    """Zennit's ``ResNetCanonizer`` for :func:`torch_resnet_bn`'s blocks (a fresh list per
    attribution: canonizers hold the modules they modified).

    Zennit's merge leaves each BatchNorm with variance 1, so the merged BatchNorm still divides
    by ``sqrt(1 + eps)`` (and, having no rule, scales the relevance by it too); visjax leaves
    variance ``1 - eps``, the exact identity. ``exact=True`` (the default) gives Zennit's merge
    with visjax's identity; ``exact=False`` Zennit's own.
    """
    torch = bridge.import_torch()
    canonizers = bridge.import_peer("zennit.canonizers")
    layer = bridge.import_peer("zennit.layer")
    block_cls, _ = _classes()

    def forward(self, x):  # ResNetBasicBlockCanonizer.forward, for these blocks
        h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        out = self.canonizer_sum(torch.stack([self.shortcut(x), h], dim=-1))
        return self.relu2(out)

    def attributes(name, module):
        if isinstance(module, block_cls):
            return {"forward": forward.__get__(module), "canonizer_sum": layer.Sum()}
        return None

    merge = canonizers.SequentialMergeBatchNorm
    if exact:

        class ExactMerge(canonizers.SequentialMergeBatchNorm):
            @staticmethod
            def merge_batch_norm(modules, batch_norm):
                canonizers.SequentialMergeBatchNorm.merge_batch_norm(modules, batch_norm)
                batch_norm.running_var.data.fill_(1.0 - batch_norm.eps)

        merge = ExactMerge
    return [
        merge(),
        canonizers.AttributeCanonizer(attributes),
    ]
