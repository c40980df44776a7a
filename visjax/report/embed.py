"""The demo report's "Embeddings" section: t-SNE of the digits CNN's penultimate layer.

The layer is chosen from the model (:func:`visjax.report.layers.penultimate_layer`: the last
layer before the output layer). For the digits CNN that is ``conv2`` (32 channels); the head
applies the ReLU, averages over the 8 x 8 positions, and ``fc`` maps the resulting ``(N, 32)``
vectors to the logits. The section embeds exactly those vectors (the model interface's ``conv2``
activation is taken before the ReLU, so for a spatial layer the ReLU and the average are applied
here; ``embed_layer(..., pool="auto")`` would average the pre-ReLU values, which lose most of the
class information; a non-spatial layer's values are embedded as they are, flattened) with
:func:`visjax.embed.tsne`, for the
untrained model (the initial weights of the same seed) and the trained one, side by side. The
caption gives each embedding's trustworthiness (k = 10, against the 32-D vectors) and its
leave-one-out 10-NN accuracy of the true labels.

Cost: the full run embeds all 1,797 digits with openTSNE's schedule (250 + 500 iterations); the
quick run (tests, ``visjax demo --quick``) the 450 held-out digits with 100 + 150 iterations.
Most of it is compiling t-SNE's programs once (the second model reuses them): 13.5 s measured
on 2 CPU cores at load 9 with 100 + 200 iterations and the former programs (a separate KL pass,
an eager PCA initialisation: ~10 programs fewer since 2026-12-05); at load 16, two t-SNEs of 450
points took 30 s (first, compiling) and 5.8 s (second); quiet (load ~1.2), the whole section's
test 6.5 s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from visjax import embed
from visjax.base.io import save_figure
from visjax.plot import embedding_scatter
from visjax.report.context import DemoContext
from visjax.report.html import Figure, Section
from visjax.report.layers import penultimate_layer
from visjax.zoo import digits_cnn

QUICK_ITERATIONS = (100, 150)  # early exaggeration, then normal phase (full: 250, 500)


def embed_section(ctx: DemoContext) -> Section:
    """t-SNE of the penultimate layer before and after training, with quality measures."""
    if ctx.quick:
        x, y = ctx.test.x, ctx.test.y
        early, normal = QUICK_ITERATIONS
    else:
        x = np.concatenate([ctx.train.x, ctx.test.x])
        y = np.concatenate([ctx.train.y, ctx.test.y])
        early, normal = 250, 500
    models = {
        "untrained": digits_cnn("nnx", seed=ctx.seed),
        "trained": ctx.digits_cnn.model,
    }
    first = jnp.asarray(x[:1])
    layer = penultimate_layer(models["trained"], first)
    spatial = len(models["trained"].layer_shapes(first)[layer].shape) == 4
    from matplotlib.figure import Figure as MplFigure  # noqa: PLC0415 - loads with the figure

    fig = MplFigure(figsize=(10.5, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    scores = {}
    for ax, (which, model) in zip(axes, models.items(), strict=True):
        features = _head_input(model, x, layer)
        result = embed.tsne(
            features,
            key=jax.random.key(ctx.seed),
            early_exaggeration_iter=early,
            n_iter=normal,
            progress=False,
        )
        e = np.asarray(result.embedding)
        trust = embed.trustworthiness(features, e, k=10)
        acc = embed.knn_accuracy(e, y, k=10)
        scores[which] = (trust, acc, result.kl_divergence)
        embedding_scatter(e, y, ax=ax, title=f"{which}: trust. {trust:.3f}, 10-NN acc. {acc:.1%}")
        if which == "untrained":
            ax.get_legend().remove()
    path = save_figure(fig, ctx.out / "embed_tsne.png", dpi=90)
    (t0, a0, kl0), (t1, a1, kl1) = scores["untrained"], scores["trained"]
    dim = features.shape[1]
    how = f"{layer} after its ReLU, averaged over positions" if spatial else layer
    caption = (
        f"t-SNE of the penultimate layer ({how}: the {dim}-D vectors the logits are computed "
        f"from) of {len(y):,} digits, coloured by true label; left the untrained model (initial "
        f"weights, seed {ctx.seed}), right the trained one. Trustworthiness (k=10, against the "
        f"{dim}-D vectors): {t0:.3f} untrained, {t1:.3f} "
        f"trained; leave-one-out 10-NN accuracy in the embedding: {a0:.1%} untrained, {a1:.1%} "
        f"trained; final KL divergence {kl0:.2f} and {kl1:.2f}."
    )
    text = (
        "What the layer before the logits has learned, seen as neighbourhoods: t-SNE "
        "(visjax.embed.tsne, perplexity 30, PCA initialisation, "
        f"{early} + {normal} iterations) places digits whose penultimate vectors are close next to "
        "each other. Before training the vectors already carry some of the class (random "
        "convolutions still respond to strokes), after training each digit forms its own "
        "cluster; the 10-NN accuracy measures how cleanly, trustworthiness how faithfully the "
        "map keeps the vectors' own neighbourhoods."
        + (" (Quick run: the 450 held-out digits and fewer iterations.)" if ctx.quick else "")
    )
    return Section(
        "Embeddings",
        text,
        figures=[
            Figure(path, caption, "t-SNE maps of the penultimate layer before/after training")
        ],
    )


def _head_input(model, x: np.ndarray, layer: str) -> jax.Array:
    """The ``(N, D)`` vectors the output layer sees: for a spatial layer (the digits CNN's
    ``conv2``: ``D = 32``) its ReLU averaged over positions, else its values flattened."""
    _, acts = model.activations(jnp.asarray(x), layer)
    a = acts[layer]
    if a.ndim == 4:
        return jax.nn.relu(a).mean(axis=(1, 2))
    return a.reshape(a.shape[0], -1)
