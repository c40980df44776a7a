"""Embeddings: t-SNE of the digits and of a trained CNN's layer, plotted, exported to TensorBoard.

Run: ``python examples/embed.py [--out FOLDER] [--small]``; then ``tensorboard --logdir
FOLDER/projector`` opens the exported activations in TensorBoard's projector.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from _common import cli, out_dir, save_all

from visjax import embed, plot
from visjax.zoo import load_digits
from visjax.zoo.pretrained import trained_digits_cnn


def main(out: str | Path = "out/examples/embed", small: bool = False) -> list[Path]:
    out = out_dir(out)
    data = load_digits()
    x = np.concatenate([data.train.x, data.test.x])  # all 1,797 digits, (N, 8, 8, 1) in [0, 1]
    y = np.concatenate([data.train.y, data.test.y])
    if small:
        x, y = x[:400], y[:400]
    iters = {"early_exaggeration_iter": 100, "n_iter": 200} if small else {}  # default 250 + 500

    # t-SNE of the raw pixels (64-D), with its quality measures
    pixels = x.reshape(len(x), -1)
    result = embed.tsne(pixels, key=jax.random.key(0), **iters)
    e = np.asarray(result.embedding)
    trust = embed.trustworthiness(pixels, e, k=10)
    acc = embed.knn_accuracy(e, y, k=10)
    print(
        f"pixels: KL {result.kl_divergence:.3f}, trustworthiness {trust:.3f}, 10-NN acc {acc:.3f}"
    )

    # the trained CNN's logits layer ("fc", 10-D) embedded by embed_layer
    model = trained_digits_cnn(seed=0).model  # trained once, then loaded from the weight cache
    logits = embed.embed_layer(model, x, layer="fc", key=jax.random.key(0), **iters)

    # the same layer's activations, labels and images for TensorBoard's projector
    features = embed.layer.layer_features(model, x, layer="fc")
    folder = embed.export_projector(out / "projector", features, labels=y, images=x, name="fc")
    print(f"projector files in {folder}: tensorboard --logdir {folder}")

    names = [f"digit {d}" for d in range(10)]
    figs = {
        "scatter": plot.embedding_scatter(
            e, y, names=names, title=f"t-SNE of the pixels (trustworthiness {trust:.3f})"
        ),
        "thumbnails": plot.embedding_thumbnails(e, x, max_images=300),
        "layer": plot.embedding_scatter(
            np.asarray(logits.embedding), y, names=names, title="t-SNE of the trained CNN's logits"
        ),
    }
    return save_all(figs, out, "embed-")


if __name__ == "__main__":
    cli(main, __doc__, "400 digits, fewer iterations")
