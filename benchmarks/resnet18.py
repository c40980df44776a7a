"""torchvision's ResNet-18 as a plain JAX function (NHWC), for benchmarks against Lucent.

Layer paths follow torchvision's module names (``"layer3.0.conv1"``; Lucent writes
``"layer3_0_conv1"``), each the output of that module (a convolution before its batch norm).
Batch norm runs in inference mode with the running statistics, as ``model.eval()``. Parameters
come from a torchvision ``state_dict`` (same weights as the peer) or from a random draw with the
same shapes when torch is not installed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax import as_model
from visjax.model import tag

STAGES = (("layer1", 64, 1), ("layer2", 128, 2), ("layer3", 256, 2), ("layer4", 512, 2))


def _conv(x, w, stride, pad):
    return jax.lax.conv_general_dilated(
        x, w, (stride, stride), ((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _bn(x, p):
    scale = p["weight"] / jnp.sqrt(p["running_var"] + 1e-5)
    return (x - p["running_mean"]) * scale + p["bias"]


def _block(x, p, path, stride):
    h = tag(_conv(x, p["conv1"], stride, 1), f"{path}.conv1")
    h = jax.nn.relu(_bn(h, p["bn1"]))
    h = tag(_conv(h, p["conv2"], 1, 1), f"{path}.conv2")
    h = _bn(h, p["bn2"])
    if "downsample" in p:
        x = _bn(_conv(x, p["downsample"]["conv"], stride, 0), p["downsample"]["bn"])
    return tag(jax.nn.relu(h + x), path)


def apply(params: dict[str, Any], x: jax.Array) -> jax.Array:
    """ResNet-18 logits for ``x`` ``(N, H, W, 3)``."""
    h = tag(_conv(x, params["conv1"], 2, 3), "conv1")
    h = jax.nn.relu(_bn(h, params["bn1"]))
    h = jax.lax.reduce_window(
        h, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    )
    for name, _, stride in STAGES:
        for b, p in enumerate(params[name]):
            h = _block(h, p, f"{name}.{b}", stride if b == 0 else 1)
    h = h.mean(axis=(1, 2))
    return tag(h @ params["fc"]["weight"].T + params["fc"]["bias"], "fc")


def _bn_params(c, rng):
    return {
        "weight": np.ones(c, np.float32),
        "bias": np.zeros(c, np.float32),
        "running_mean": np.zeros(c, np.float32),
        "running_var": np.ones(c, np.float32),
    }


def random_params(seed: int = 0) -> dict[str, Any]:
    """Kaiming-normal convolutions (torchvision's initialisation), identity batch norms."""
    rng = np.random.default_rng(seed)

    def conv(k, cin, cout):
        std = np.sqrt(2.0 / (k * k * cout))  # kaiming_normal_, mode="fan_out"
        return (rng.normal(size=(k, k, cin, cout)) * std).astype(np.float32)

    params: dict[str, Any] = {"conv1": conv(7, 3, 64), "bn1": _bn_params(64, rng)}
    cin = 64
    for name, cout, stride in STAGES:
        blocks = []
        for b in range(2):
            s = stride if b == 0 else 1
            p = {
                "conv1": conv(3, cin, cout),
                "bn1": _bn_params(cout, rng),
                "conv2": conv(3, cout, cout),
                "bn2": _bn_params(cout, rng),
            }
            if s != 1 or cin != cout:
                p["downsample"] = {"conv": conv(1, cin, cout), "bn": _bn_params(cout, rng)}
            blocks.append(p)
            cin = cout
        params[name] = blocks
    bound = 1 / np.sqrt(512)
    params["fc"] = {
        "weight": rng.uniform(-bound, bound, (1000, 512)).astype(np.float32),
        "bias": rng.uniform(-bound, bound, 1000).astype(np.float32),
    }
    return params


def params_from_torch(state_dict: dict[str, Any]) -> dict[str, Any]:
    """JAX parameters from a torchvision ResNet-18 ``state_dict`` (OIHW kernels to HWIO)."""
    sd = {k: v.detach().cpu().numpy() for k, v in state_dict.items()}

    def conv(k):
        return np.ascontiguousarray(sd[k].transpose(2, 3, 1, 0))

    def bn(prefix):
        return {f: sd[f"{prefix}.{f}"] for f in ("weight", "bias", "running_mean", "running_var")}

    params: dict[str, Any] = {"conv1": conv("conv1.weight"), "bn1": bn("bn1")}
    for name, _, _ in STAGES:
        blocks = []
        for b in range(2):
            pre = f"{name}.{b}"
            p = {
                "conv1": conv(f"{pre}.conv1.weight"),
                "bn1": bn(f"{pre}.bn1"),
                "conv2": conv(f"{pre}.conv2.weight"),
                "bn2": bn(f"{pre}.bn2"),
            }
            if f"{pre}.downsample.0.weight" in sd:
                p["downsample"] = {
                    "conv": conv(f"{pre}.downsample.0.weight"),
                    "bn": bn(f"{pre}.downsample.1"),
                }
            blocks.append(p)
        params[name] = blocks
    params["fc"] = {"weight": sd["fc.weight"], "bias": sd["fc.bias"]}
    return params


def resnet18_model(params: dict[str, Any]):
    """The visjax model of :func:`apply` with ``params`` (any spatial input size)."""
    params = jax.tree.map(jnp.asarray, params)
    return as_model(apply, params, input_shape=(None, None, 3))
