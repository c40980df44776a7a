"""Perturbation attributions on the objects CNN: occlusion, feature ablation, Kernel SHAP, LIME.

Every method changes the input (a sliding window, or a set of superpixels set to the baseline)
and measures the class score: no gradients, any model.
Run: ``python examples/perturbation.py [--out FOLDER] [--small]``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import cli, out_dir, save

from visjax import attribution as va
from visjax import plot
from visjax.zoo import OBJECT_CLASSES, load_objects, trained_objects_cnn


def main(out: str | Path = "out/examples/perturbation", small: bool = False) -> list[Path]:
    out = out_dir(out)
    model = trained_objects_cnn().model  # 32x32 RGB images, 4 classes
    test = load_objects(n_train_per_class=1, n_test_per_class=20).test  # unseen test images
    n, samples = (3, 128) if small else (5, 512)
    x, y = jnp.asarray(test.x[:n]), jnp.asarray(test.y[:n])
    pred = np.asarray(model(x).argmax(-1))
    names = [OBJECT_CLASSES[i] for i in test.y[:n]]
    labels = [f"{t} / pred {OBJECT_CLASSES[p]}" for t, p in zip(names, pred, strict=True)]
    paths = [out / "perturbation-occlusion.png", out / "perturbation-superpixels.png"]

    # occlusion: the mean drop of the class logit over every window covering a pixel
    occ = {
        f"occlusion {w}x{w}": va.occlusion(model, x, y, window=(w, w, 3), strides=(2, 2, 3))
        for w in (4, 8)
    }
    fig = plot.attribution_grid(x, occ, row_labels=labels, scale="shared")
    save(fig, paths[0], dpi=80)

    # superpixels (SLIC, one mask per image) as the features of the other three methods
    mask = va.slic_superpixels(np.asarray(x), n_segments=24, compactness=10.0)  # (N, 32, 32, 1)
    keys = jax.random.split(jax.random.key(0))
    values = {
        "ablation": va.feature_ablation(model, x, y, mask=mask),  # f(x) - f(x without k)
        "Kernel SHAP": va.kernel_shap(model, x, y, mask=mask, n_samples=samples, key=keys[0]),
        "LIME": va.lime(model, x, y, mask=mask, n_samples=samples, key=keys[1]),
    }
    fig = plot.feature_values_grid(x, mask, values, row_labels=labels)
    save(fig, paths[1], dpi=80)

    # Kernel SHAP sums to f(x) - f(baseline) exactly (the efficiency axiom), whatever n_samples
    gap = (model(x) - model(jnp.zeros_like(x)))[jnp.arange(n), y]
    # every pixel carries its superpixel's value: divide by the superpixel's size, then sum
    m, phi = mask[..., 0], np.asarray(values["Kernel SHAP"])[..., 0]
    sizes = np.stack([np.bincount(labels_n.ravel())[labels_n] for labels_n in m])
    total = (phi / sizes).sum(axis=(1, 2))
    print("f(x) - f(0):      ", np.round(np.asarray(gap), 3))
    print("Kernel SHAP sums: ", np.round(total, 3))
    return paths


if __name__ == "__main__":
    cli(main, __doc__, "fewer examples and samples")
