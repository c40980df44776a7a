"""The bridge to the PyTorch peers: a safe torch import, and visjax zoo models rebuilt in PyTorch.

``import_torch()`` imports torch and, on a CPU build of torch, defines the two torchvision operator
schemas that the registry's (CUDA-only) ``torchvision==0.28.0`` expects from its compiled extension,
so that torchvision, and the peers that import it (pytorch-grad-cam, Zennit, Lucent), import at all
(``docs/peers.md``). ``import_peer(name)`` imports a peer module after that, silencing only the
warnings listed for that peer in ``PEER_IMPORT_WARNINGS``.

``torch_digits_cnn(params)`` builds the digits CNN of :mod:`visjax.zoo.cnn` as a ``torch.nn.Module``
with the same weights. Every operation the peers must see is a module: the ReLUs are separate
``nn.ReLU`` modules (Captum's and Zennit's hooks act on modules) and the global average pool is
``nn.AdaptiveAvgPool2d(1)`` + ``nn.Flatten()`` (Zennit spreads relevance evenly through a pool
written as ``x.mean(...)``). ``DIGITS_CNN_LAYERS`` maps each visjax layer path to the torch module
whose output is the same activation (visjax's activations are taken before the ReLU).

Layouts: visjax is NHWC with Flax kernels (conv ``HWIO``, dense ``(in, out)``); torch is NCHW with
conv ``OIHW`` and dense ``(out, in)``. ``to_torch_input`` / ``from_torch`` convert batches,
``conv2d`` / ``linear`` convert one layer's ``{"kernel", "bias"}`` parameters. A new zoo model
needs a torch class built from these two, a ``torch_<model>(params)`` that fills it, and a
``<MODEL>_LAYERS`` path map.

``torch_resnet(params, skip=..., depth=..., width=...)`` builds the digits ResNet of
:mod:`visjax.zoo.resnet` that way. Its modules repeat the NNX module's structure and names
(``stem``, ``stages.{s}.blocks.{b}.conv1`` / ``conv2`` / ``proj``, ``fc``), with separate
``nn.ReLU`` modules (``relu`` after the stem, ``relu1`` / ``relu2`` in a block) and the pool as
modules, so ``resnet_layers(skip=..., depth=...)`` (``RESNET_LAYERS`` for the default depth 8 with
skips) maps each visjax layer path to the torch module of the same name. The residual addition
stays inside the block's ``forward``: a block's output is after its final ReLU, as in visjax.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

# torchvision's fake-kernel registrations (torchvision/_meta_registrations.py) need these two
# operators to exist; its compiled extension, which would define them, is a CUDA build.
TORCHVISION_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

# Warnings that peers emit on import, silenced only around that import: module -> list of
# (category, message regex). Everything else still reaches pytest's `filterwarnings = error`.
PEER_IMPORT_WARNINGS: dict[str, list[tuple[type[Warning], str]]] = {
    # kornia 0.4.1 (which Lucent's transforms need) calls torch.jit.script at import, 33 times.
    "lucent": [(DeprecationWarning, r"`torch\.jit\.script` is deprecated")],
}

# The torch.library.Library holding the schemas: it must stay alive, since destroying it removes
# the definitions again.
_torchvision_library = None


def import_torch() -> ModuleType:
    """Import and return ``torch``, first making ``import torchvision`` work on a CPU torch.

    When ``torch.version.cuda is None``, torchvision is not imported yet and its ``nms``/``qnms``
    operators are not defined, defines their schemas in the ``torchvision`` namespace (no kernels:
    the attribution peers use no torchvision operator). Safe to call any number of times.

    The schemas are meant for the pinned CUDA-only ``torchvision==0.28.0``: a torchvision whose
    compiled extension does load next to a CPU torch would find its namespace taken, so call this
    only with the versions in ``constraints-peers.txt``.
    """
    global _torchvision_library
    import torch

    if (
        _torchvision_library is None
        and torch.version.cuda is None
        and "torchvision" not in sys.modules
    ):
        missing = [n for n in TORCHVISION_SCHEMAS if not hasattr(torch.ops.torchvision, n)]
        if missing:
            library = torch.library.Library("torchvision", "DEF")
            for name in missing:
                library.define(TORCHVISION_SCHEMAS[name])
            _torchvision_library = library
    return torch


def import_peer(name: str) -> ModuleType:
    """Import the peer module ``name`` (e.g. ``"pytorch_grad_cam"``) after :func:`import_torch`.

    Only the import warnings that ``PEER_IMPORT_WARNINGS`` lists for its top-level package are
    silenced, and only during the import.
    """
    import_torch()
    with warnings.catch_warnings():
        for category, message in PEER_IMPORT_WARNINGS.get(name.partition(".")[0], []):
            warnings.filterwarnings("ignore", message=message, category=category)
        return importlib.import_module(name)


def captum_thunk(setup: Any, name: str, *, no_grad: bool = False, **kwargs: Any):
    """Captum's ``name`` on the digits CNN weights of ``setup = (model, x, t)`` as a thunk.

    The thunk calls ``attribute(x, target=t, **kwargs)`` on the torch twin (under
    ``torch.no_grad()`` for perturbation methods, ``no_grad=True``), silencing Captum's warnings
    (hooks on ReLUs, batch sizes). None when the peers are not installed.
    """
    try:
        import_torch()
    except ImportError:
        return None
    import torch

    model, x, t = setup
    method = getattr(import_peer("captum.attr"), name)(torch_digits_cnn(model.params))
    xt = to_torch_input(x)
    tt = torch.as_tensor(np.asarray(t).astype("int64"))

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if no_grad:
                with torch.no_grad():
                    return method.attribute(xt, target=tt, **kwargs)
            return method.attribute(xt, target=tt, **kwargs)

    return run


# ----------------------------------------------------------------------------- layouts


def to_torch_input(x_nhwc: Any, *, dtype: Any = None):
    """A visjax batch ``(N, H, W, C)`` (NumPy or JAX) as a contiguous torch tensor ``(N, C, H, W)``.

    ``dtype`` is a torch dtype; by default the array's own (float32 for visjax's data).
    """
    torch = import_torch()
    x = np.asarray(x_nhwc)
    if x.ndim != 4:
        raise ValueError(f"expected an NHWC batch of rank 4, got shape {x.shape}")
    t = torch.from_numpy(_writable_copy(x.transpose(0, 3, 1, 2)))
    return t if dtype is None else t.to(dtype)


def from_torch(t: Any) -> np.ndarray:
    """A torch tensor as a NumPy array in visjax's layout: rank 4 ``NCHW`` becomes ``NHWC``.

    Other ranks (logits ``(N, C)``, per-example values ``(N,)``) keep their layout.
    """
    x = t.detach().cpu().numpy()
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def _writable_copy(a: Any) -> np.ndarray:
    # A C-contiguous copy that owns its data: NumPy views of JAX arrays are read-only, and
    # torch.from_numpy warns about (and shares memory with) a read-only array.
    return np.array(a, order="C", copy=True)


def _tensor(a: Any, dtype):
    torch = import_torch()
    return torch.from_numpy(_writable_copy(a)).to(dtype)


def conv2d(
    p: Mapping[str, Any], *, stride: int = 1, padding: int | str = "same", dtype: Any = None
):
    """A ``torch.nn.Conv2d`` holding the Flax conv parameters ``p`` (kernel ``HWIO`` -> ``OIHW``).

    ``padding`` is torch's: ``"same"`` matches Flax's ``"SAME"`` at stride 1; an int ``k`` matches
    Flax's ``padding=k``. (Flax's ``"SAME"`` at stride 2 pads asymmetrically, which
    ``nn.Conv2d`` cannot express.)
    """
    torch = import_torch()
    dtype = torch.float32 if dtype is None else dtype
    kernel = np.asarray(p["kernel"])
    if kernel.ndim != 4:
        raise ValueError(f"expected an HWIO conv kernel, got shape {kernel.shape}")
    kh, kw, c_in, c_out = kernel.shape
    conv = torch.nn.Conv2d(
        c_in, c_out, (kh, kw), stride=stride, padding=padding, bias="bias" in p, dtype=dtype
    )
    with torch.no_grad():
        conv.weight.copy_(_tensor(kernel.transpose(3, 2, 0, 1), dtype))
        if "bias" in p:
            conv.bias.copy_(_tensor(p["bias"], dtype))
    return conv


def linear(p: Mapping[str, Any], *, dtype: Any = None):
    """A ``torch.nn.Linear`` holding the Flax dense parameters ``p`` (kernel ``(in, out)``)."""
    torch = import_torch()
    dtype = torch.float32 if dtype is None else dtype
    kernel = np.asarray(p["kernel"])
    if kernel.ndim != 2:
        raise ValueError(f"expected a dense kernel (in, out), got shape {kernel.shape}")
    fc = torch.nn.Linear(*kernel.shape, bias="bias" in p, dtype=dtype)
    with torch.no_grad():
        fc.weight.copy_(_tensor(kernel.T, dtype))
        if "bias" in p:
            fc.bias.copy_(_tensor(p["bias"], dtype))
    return fc


# ----------------------------------------------------------------------------- the digits CNN

# visjax layer path -> name of the torch submodule whose output is that activation (pre-ReLU).
DIGITS_CNN_LAYERS = {"conv1": "conv1", "conv2": "conv2", "fc": "fc"}


@functools.cache
def _digits_cnn_class() -> type:
    torch = import_torch()
    nn = torch.nn

    class TorchDigitsCNN(nn.Module):
        """The digits CNN (:mod:`visjax.zoo.cnn`) in PyTorch, on NCHW input ``(N, 1, 8, 8)``."""

        def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, fc: nn.Linear):
            super().__init__()
            self.conv1 = conv1
            self.relu1 = nn.ReLU()
            self.conv2 = conv2
            self.relu2 = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = fc

        def forward(self, x):
            h = self.relu1(self.conv1(x))
            h = self.relu2(self.conv2(h))
            return self.fc(self.flatten(self.pool(h)))

    return TorchDigitsCNN


def torch_digits_cnn(params: Mapping[str, Any], *, dtype: Any = None):
    """The digits CNN as a ``torch.nn.Module`` (in eval mode) with the visjax weights ``params``.

    Args:
      params: the digits CNN's parameter tree (``digits_cnn(...).params``: ``conv1``, ``conv2``
        and ``fc``, each ``{"kernel", "bias"}`` in Flax's layout), NumPy or JAX arrays.
      dtype: torch dtype of the weights; ``torch.float32`` by default.

    Returns:
      A module taking NCHW input ``(N, 1, 8, 8)`` (see :func:`to_torch_input`) and returning the
      logits ``(N, 10)``; its submodules are ``conv1, relu1, conv2, relu2, pool, flatten, fc``.
    """
    if set(params) != {"conv1", "conv2", "fc"}:
        raise ValueError(f"expected the digits CNN's params conv1/conv2/fc, got {sorted(params)}")
    model = _digits_cnn_class()(
        conv2d(params["conv1"], padding="same", dtype=dtype),
        conv2d(params["conv2"], padding="same", dtype=dtype),
        linear(params["fc"], dtype=dtype),
    )
    return model.eval()


# ----------------------------------------------------------------------------- the digits ResNet


def resnet_layers(*, skip: bool = True, depth: int = 8) -> dict[str, str]:
    """visjax layer path -> torch submodule name, for the digits ResNet with these settings.

    The torch network repeats the NNX module's structure and names, so each visjax path (the
    output of that NNX submodule: ``"stem"`` and the convolutions before their ReLUs, a block or
    stage after its final ReLU, ``"fc"`` the logits) is the torch submodule of the same name.
    """
    from visjax.zoo.resnet import _blocks_per_stage

    n = _blocks_per_stage(depth)
    paths = ["stem"]
    for s in range(3):
        for b in range(n):
            block = f"stages.{s}.blocks.{b}"
            paths += [f"{block}.conv1", f"{block}.conv2"]
            if skip and s > 0 and b == 0:
                paths.append(f"{block}.proj")
            paths.append(block)
        paths.append(f"stages.{s}")
    paths.append("fc")
    return {p: p for p in paths}


# The map for the default ResNet (depth 8, with skip connections); see `resnet_layers`.
RESNET_LAYERS = resnet_layers()


@functools.cache
def _resnet_classes() -> tuple[type, type, type]:
    torch = import_torch()
    nn = torch.nn

    class TorchBasicBlock(nn.Module):
        """``relu2(conv2(relu1(conv1(x))) + shortcut(x))``; no shortcut when ``skip`` is off."""

        def __init__(
            self, conv1: nn.Conv2d, conv2: nn.Conv2d, proj: nn.Conv2d | None, *, skip: bool
        ):
            super().__init__()
            self.skip = skip
            self.conv1 = conv1
            self.relu1 = nn.ReLU()
            self.conv2 = conv2
            self.proj = proj  # None registers no submodule
            self.relu2 = nn.ReLU()

        def forward(self, x):
            h = self.conv2(self.relu1(self.conv1(x)))
            if self.skip:
                h = h + (x if self.proj is None else self.proj(x))
            return self.relu2(h)

    class TorchStage(nn.Module):
        """A stage: its basic blocks in order."""

        def __init__(self, blocks: list[nn.Module]):
            super().__init__()
            self.blocks = nn.ModuleList(blocks)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    class TorchResNet(nn.Module):
        """The digits ResNet (:mod:`visjax.zoo.resnet`) in PyTorch, on NCHW ``(N, 1, 8, 8)``."""

        def __init__(self, stem: nn.Conv2d, stages: list[nn.Module], fc: nn.Linear):
            super().__init__()
            self.stem = stem
            self.relu = nn.ReLU()
            self.stages = nn.ModuleList(stages)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = fc

        def forward(self, x):
            h = self.relu(self.stem(x))
            for stage in self.stages:
                h = stage(h)
            return self.fc(self.flatten(self.pool(h)))

    return TorchBasicBlock, TorchStage, TorchResNet


@functools.cache
def _resnet_param_shapes(skip: bool, depth: int, width: int) -> Any:
    """The parameter tree (of ``jax.ShapeDtypeStruct``) of the NNX ResNet with these settings."""
    from flax import nnx

    from visjax.zoo.resnet import resnet_class

    module = nnx.eval_shape(
        lambda: resnet_class()(depth=depth, width=width, skip=skip, rngs=nnx.Rngs(0))
    )
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def torch_resnet(
    params: Mapping[str, Any],
    *,
    skip: bool = True,
    depth: int = 8,
    width: int = 16,
    dtype: Any = None,
):
    """The digits ResNet as a ``torch.nn.Module`` (in eval mode) with the visjax weights ``params``.

    Args:
      params: the ResNet's parameter tree (``digits_resnet(skip=..., depth=..., width=...).params``:
        ``stem``, ``stages[s]["blocks"][b]`` with ``conv1``, ``conv2`` and, with skips, ``proj`` in
        the first block of stages 1 and 2, and ``fc``; Flax's layout), NumPy or JAX arrays.
      skip, depth, width: the settings the parameters were made for (as in ``digits_resnet``).
      dtype: torch dtype of the weights; ``torch.float32`` by default.

    Returns:
      A module taking NCHW input ``(N, 1, 8, 8)`` (see :func:`to_torch_input`) and returning the
      logits ``(N, 10)``. Its children are ``stem, relu, stages, pool, flatten, fc``; a block
      ``stages.{s}.blocks.{b}`` holds ``conv1, relu1, conv2, [proj,] relu2``.
      :func:`resnet_layers` maps the visjax layer paths to these names.

    Raises:
      ValueError: a bad ``depth`` or ``width``, or ``params`` that do not fit them.
    """
    from visjax.base.checks import check_tree_like
    from visjax.zoo.resnet import _blocks_per_stage

    n = _blocks_per_stage(depth)
    try:
        check_tree_like(params, _resnet_param_shapes(skip, depth, width), "params")
    except ValueError as e:
        raise ValueError(
            f"`params` do not fit the digits ResNet with skip={skip}, depth={depth}, "
            f"width={width}: {e}"
        ) from e
    block_cls, stage_cls, resnet_cls = _resnet_classes()
    stages = []
    for s in range(3):
        stride = 1 if s == 0 else 2
        blocks = []
        for b in range(n):
            p = params["stages"][s]["blocks"][b]
            st = stride if b == 0 else 1
            # Flax's `padding=1` pads one pixel on every side, as torch's `padding=1`; the 1x1
            # projection uses Flax's default "SAME", which pads nothing for a 1x1 kernel.
            blocks.append(
                block_cls(
                    conv2d(p["conv1"], stride=st, padding=1, dtype=dtype),
                    conv2d(p["conv2"], stride=1, padding=1, dtype=dtype),
                    conv2d(p["proj"], stride=st, padding=0, dtype=dtype) if "proj" in p else None,
                    skip=skip,
                )
            )
        stages.append(stage_cls(blocks))
    model = resnet_cls(
        conv2d(params["stem"], padding=1, dtype=dtype), stages, linear(params["fc"], dtype=dtype)
    )
    return model.eval()
