"""Class activation maps on the objects CNN: Grad-CAM, Grad-CAM++ and Score-CAM, per layer.

The objects data set draws one object (square, disc, triangle, cross) among distractor strokes and
keeps each object's exact mask, so the figures outline where the evidence should be.
Run: ``python examples/cams.py [--out FOLDER] [--small]``.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
from _common import cli, out_dir, save

from visjax import plot
from visjax.attribution import cam
from visjax.zoo import OBJECT_CLASSES, load_objects, trained_objects_cnn


def outline(fig, masks, n_columns: int) -> None:
    """Draw each row's object outline on every panel of that row."""
    for i, mask in enumerate(masks):
        for ax in fig.axes[i * n_columns : (i + 1) * n_columns]:
            ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)


def main(out: str | Path = "out/examples/cams", small: bool = False) -> list[Path]:
    out = out_dir(out)
    model = trained_objects_cnn().model  # 32x32 RGB, layers conv1..conv4, fc
    test = load_objects(n_train_per_class=1, n_test_per_class=20).test  # unseen test images
    n = 3 if small else 5
    x, y, masks = jnp.asarray(test.x[:n]), jnp.asarray(test.y[:n]), test.mask[:n]
    pred = np.asarray(model(x).argmax(-1))
    names = [OBJECT_CLASSES[i] for i in test.y[:n]]
    labels = [f"{t} / pred {OBJECT_CLASSES[p]}" for t, p in zip(names, pred, strict=True)]
    size = x.shape[1:3]

    # raw maps live on the layer's grid (8x8 at conv4); postprocess = ReLU, min-max, upsample
    methods = {"Grad-CAM": cam.grad_cam, "Grad-CAM++": cam.grad_cam_plus_plus}
    methods["Score-CAM"] = cam.score_cam  # N x C masked forwards, chunked (batch_size="auto")
    maps = {k: cam.postprocess(f(model, x, y, layer="conv4"), size) for k, f in methods.items()}
    fig = plot.cam_grid(x, maps, row_labels=labels)
    outline(fig, masks, 1 + len(maps))
    paths = [out / "cams-methods.png"]
    save(fig, paths[-1], dpi=72)

    # the same method at every depth: early layers are sharp but class-agnostic
    layers = ["conv3", "conv4"] if small else ["conv2", "conv3", "conv4"]
    by_layer = {k: cam.postprocess(cam.grad_cam(model, x, y, layer=k), size) for k in layers}
    by_layer["mean of layers"] = cam.multi_layer(cam.grad_cam, layers)(model, x, y)
    fig = plot.cam_grid(x, by_layer, row_labels=labels)
    outline(fig, masks, 1 + len(by_layer))
    paths.append(out / "cams-layers.png")
    save(fig, paths[-1], dpi=72)
    return paths


if __name__ == "__main__":
    cli(main, __doc__, "fewer examples and layers")
