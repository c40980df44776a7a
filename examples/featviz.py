"""Feature visualisation on the shapes CNN: class and channel renderings, top examples, filters.

Run: ``python examples/featviz.py [--out FOLDER] [--small]``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from _common import cli, out_dir, save

from visjax import featviz as fv
from visjax import plot
from visjax.zoo import SHAPE_CLASSES, load_shapes, trained_shapes_cnn


def main(out: str | Path = "out/examples/featviz", small: bool = False) -> list[Path]:
    out = out_dir(out)
    model = trained_shapes_cnn().model  # 16x16 RGB: stripes, checkerboard, circle, colours
    steps, n_channels, k = (32, 3, 4) if small else (160, 6, 6)
    param = fv.fourier((16, 16, 3))  # 1/f spectrum, decorrelated colour (Lucid's)
    if small:
        param = fv.pixel((16, 16, 3))  # plain pixels: compiles faster, noisier images
    transforms = fv.compose(fv.pad(4), fv.jitter(8))  # robustness: random shifts every step
    paths = [out / "featviz-classes.png", out / "featviz-channels.png", out / "featviz-filters.png"]

    # every class logit at once: one compiled, vmapped program (batch_size="auto")
    classes = fv.render(
        model, units=list(range(len(SHAPE_CLASSES))), param=param, transforms=transforms,
        n_steps=steps, key=jax.random.key(0),
    )  # fmt: skip
    fig = plot.image_grid(classes.images, labels=list(SHAPE_CLASSES), ncols=4, title="class logits")
    save(fig, paths[0], dpi=80)

    # conv3 channels: the rendering beside the test images that excite the channel most
    channels = list(range(n_channels))
    rendered = fv.render(
        model, units=[("conv3", c) for c in channels], param=param, transforms=transforms,
        n_steps=steps, key=jax.random.key(1),
    )  # fmt: skip
    test = load_shapes().test
    top = fv.top_activating(model, test.x, layer="conv3", channels=channels, k=k)
    idx = np.asarray(top.indices)
    rows = [np.concatenate([rendered.images[c : c + 1], test.x[idx[c]]]) for c in channels]
    labels = [
        f"conv3:{c}" if j == 0 else SHAPE_CLASSES[test.y[idx[c, j - 1]]].split()[0]
        for c in channels
        for j in range(k + 1)
    ]
    fig = plot.image_grid(
        np.concatenate(rows), labels=labels, ncols=k + 1,
        title="rendered channel, then its top test images",
    )  # fmt: skip
    save(fig, paths[1], dpi=80)

    # first-layer filters, scaled to [0, 1] and drawn as RGB
    fig = plot.filter_grid(fv.layer_filters(model, layer="conv1"), title="conv1 filters")
    save(fig, paths[2], dpi=80)
    return paths


if __name__ == "__main__":
    cli(main, __doc__, "fewer steps and channels")
