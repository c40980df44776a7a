"""Model summary: layer paths, activation shapes and parameter counts."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from visjax.model import Model, as_model


class LayerRow(NamedTuple):
    """One layer of a :func:`summary`: path, activation shape (batch first), own parameters."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    params: int


class Summary(NamedTuple):
    """A model summary: one :class:`LayerRow` per layer and the total parameter count."""

    layers: list[LayerRow]
    total_params: int

    def to_text(self) -> str:
        """The summary as a fixed-width table."""
        header = f"{'layer':<24} {'output shape':<22} {'params':>10}"
        lines = [header, "-" * len(header)]
        for row in self.layers:
            lines.append(f"{row.path:<24} {row.shape!s:<22} {row.params:>10,}")
        lines.append("-" * len(header))
        lines.append(f"{'total':<24} {'':<22} {self.total_params:>10,}")
        return "\n".join(lines)


def _path_key(path) -> str:
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
    return ".".join(parts)


def summary(model: Any, x: Any) -> Summary:
    """Layer paths, activation shapes for the batch ``x`` and parameter counts (nothing compiles).

    A layer's parameter count is the size of the parameters whose path lies under the layer's path
    (``"conv1"`` owns ``conv1.kernel`` and ``conv1.bias``); a plain function's layer owns the
    parameters under the key of the same name, if any.

    Example:
      >>> from visjax.zoo import digits_cnn
      >>> import jax.numpy as jnp
      >>> summary(digits_cnn("function"), jnp.zeros((1, 8, 8, 1))).total_params
      5130
    """
    model: Model = as_model(model)
    shapes = model.layer_shapes(x)
    sizes = {
        _path_key(path): int(np.prod(np.shape(leaf)))
        for path, leaf in jax.tree_util.tree_leaves_with_path(model.params)
    }
    rows = []
    for name, spec in shapes.items():
        base = name.split("#")[0]
        own = (
            0
            if "#" in name
            else sum(n for p, n in sizes.items() if p == base or p.startswith(base + "."))
        )
        rows.append(LayerRow(name, tuple(spec.shape), str(spec.dtype), own))
    return Summary(rows, sum(sizes.values()))
