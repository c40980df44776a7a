"""Which layer a report section looks at, chosen from the model's own layers and their shapes.

The sections work for any classifier, so they do not name layers: :func:`spatial_layer` gives
the CAM sections their target (pytorch-grad-cam's usual choice, the last convolution) and
:func:`penultimate_layer` the embedding section its vectors. Both read the layer order of
:meth:`visjax.Model.trace` and the shapes of :meth:`visjax.Model.layer_shapes` for one example
(an abstract trace: nothing compiles). Layers inside ``scan`` (stacked along a leading axis) are
left out. For the digits CNN (``conv1``, ``conv2``, ``fc``) both give ``conv2``.
"""

from __future__ import annotations

from typing import Any

import jax

from visjax.model import Model


def _ordered_shapes(model: Model, x: Any) -> list[tuple[str, tuple[int, ...]]]:
    """``(layer, activation shape)`` in forward order for the batch ``x``, scanned layers left
    out."""
    shapes = model.layer_shapes(x)
    stacked = model.scan_lengths(x)
    return [
        (name, tuple(shapes[name].shape))
        for name in model.trace(x).layers
        if name in shapes and name not in stacked
    ]


def spatial_layers(model: Model, x: Any) -> list[str]:
    """The layers whose activation is spatial ``(N, H, W, C)`` (rank 4), in forward order (the
    feature-visualisation section draws the first one's maps). ``x``: a batch (one example
    suffices)."""
    return [name for name, shape in _ordered_shapes(model, x) if len(shape) == 4]


def spatial_layer(model: Model, x: Any) -> str | None:
    """The last layer, in forward order, whose activation is spatial ``(N, H, W, C)`` (rank 4),
    or None when the model has none. ``x``: a batch (one example suffices)."""
    spatial = spatial_layers(model, x)
    return spatial[-1] if spatial else None


def penultimate_layer(model: Model, x: Any) -> str:
    """The last layer before the output layer: the layer before the last one when the last
    layer's activation has the output's shape (it is the output layer), else the last layer.

    Raises:
      ValueError: the model has no layer before its output layer (naming the layers).
    """
    layers = _ordered_shapes(model, x)
    out = model.output_shape(x)
    out_shape = tuple(out.shape) if isinstance(out, jax.ShapeDtypeStruct) else None
    if layers and layers[-1][1] == out_shape:
        layers = layers[:-1]
    if not layers:
        raise ValueError(
            "the model has no layer before its output layer (layers: "
            f"{list(model.trace(x).layers)}): name one with `visjax.tag`"
        )
    return layers[-1][0]
