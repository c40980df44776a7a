"""The report's "Embeddings" section: t-SNE of the model's penultimate layer.

The layer is chosen from the model (:func:`visjax.report.layers.penultimate_layer`: the last
layer before the output layer). For the digits CNN that is ``conv2`` (32 channels); the head
applies the ReLU, averages over the 8 x 8 positions, and ``fc`` maps the resulting ``(N, 32)``
vectors to the logits. The section embeds exactly those vectors (the model interface's ``conv2``
activation is taken before the ReLU, so for a spatial layer the ReLU and the average are applied
here; ``embed_layer(..., pool="auto")`` would average the pre-ReLU values, which lose most of the
class information; a non-spatial layer's values are embedded as they are, flattened) with
:func:`visjax.embed.tsne`. The demo shows the untrained digits CNN (the initial weights of the
same seed) and the trained one side by side; a user's model only the trained one (the model
interface cannot re-initialise it: no initial weights). The caption gives each embedding's
trustworthiness (k = 10, against the 32-D vectors) and its leave-one-out 10-NN accuracy of the
true labels.

Cost: the full run embeds all 1,797 digits with openTSNE's schedule (250 + 500 iterations); the
quick run (tests, ``visjax demo --quick``) the 450 held-out digits with 100 + 150 iterations.
A user's data: at most 2,000 examples (quick: 500 held-out ones), a seeded subset beyond that.
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
from visjax.report.context import ReportContext
from visjax.report.html import Figure, Section
from visjax.report.layers import penultimate_layer
from visjax.zoo import digits_cnn

QUICK_ITERATIONS = (100, 150)  # early exaggeration, then normal phase (full: 250, 500)
QUICK_POINTS = 500  # at most this many held-out examples in a quick run (the digits: all 450)
MAX_POINTS = 2000  # at most this many examples in a full run (the digits: all 1,797)


def embed_section(ctx: ReportContext) -> Section:
    """t-SNE of the penultimate layer after training (the demo: also before), with quality
    measures."""
    if ctx.quick:
        x, y = np.asarray(ctx.test.x), np.asarray(ctx.test.y)
        early, normal = QUICK_ITERATIONS
        limit = QUICK_POINTS
    else:
        x = np.concatenate([ctx.train.x, ctx.test.x])
        y = np.concatenate([ctx.train.y, ctx.test.y])
        early, normal = 250, 500
        limit = MAX_POINTS
    total = len(y)
    if total > limit:  # a seeded subset, in the data's order (the digits: all of them)
        keep = np.sort(np.random.default_rng(ctx.seed).choice(total, limit, replace=False))
        x, y = x[keep], y[keep]
    models = {"trained": ctx.model}
    if ctx.demo:  # the same architecture's initial weights; a user's model cannot be re-initialised
        models = {"untrained": digits_cnn("nnx", seed=ctx.seed), **models}
    first = jnp.asarray(x[:1])
    layer = penultimate_layer(models["trained"], first)
    spatial = len(models["trained"].layer_shapes(first)[layer].shape) == 4
    from matplotlib.figure import Figure as MplFigure  # noqa: PLC0415 - loads with the figure

    fig = MplFigure(figsize=(5.25 * len(models), 4.6), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
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
    dim = features.shape[1]
    how = f"{layer} after its ReLU, averaged over positions" if spatial else layer
    noun = "digits" if ctx.demo else "examples"
    subset = f" (a random {len(y):,} of {total:,})" if len(y) < total else ""
    iterations = (
        "What the layer before the logits has learned, seen as neighbourhoods: t-SNE "
        "(visjax.embed.tsne, perplexity 30, PCA initialisation, "
        f"{early} + {normal} iterations) places {noun} whose penultimate vectors are close next "
        "to each other. "
    )
    quick = (
        f" (Quick run: the {len(y):,} held-out {noun}{subset} and fewer iterations.)"
        if ctx.quick
        else ""
    )
    t1, a1, kl1 = scores["trained"]
    if ctx.demo:
        (t0, a0, kl0) = scores["untrained"]
        caption = (
            f"t-SNE of the penultimate layer ({how}: the {dim}-D vectors the logits are computed "
            f"from) of {len(y):,} digits, coloured by true label; left the untrained model "
            f"(initial weights, seed {ctx.seed}), right the trained one. Trustworthiness (k=10, "
            f"against the {dim}-D vectors): {t0:.3f} untrained, {t1:.3f} "
            f"trained; leave-one-out 10-NN accuracy in the embedding: {a0:.1%} untrained, "
            f"{a1:.1%} trained; final KL divergence {kl0:.2f} and {kl1:.2f}."
        )
        text = iterations + (
            "Before training the vectors already carry some of the class (random "
            "convolutions still respond to strokes), after training each digit forms its own "
            "cluster; the 10-NN accuracy measures how cleanly, trustworthiness how faithfully the "
            "map keeps the vectors' own neighbourhoods."
        )
        alt = "t-SNE maps of the penultimate layer before/after training"
    else:
        caption = (
            f"t-SNE of the penultimate layer ({how}: the {dim}-D vectors the logits are computed "
            f"from) of {len(y):,} {noun}{subset}, coloured by true label. Trustworthiness (k=10, "
            f"against the {dim}-D vectors): {t1:.3f}; leave-one-out 10-NN accuracy in the "
            f"embedding: {a1:.1%}; final KL divergence {kl1:.2f}."
        )
        text = iterations + (
            "Each class forming its own cluster means the layer separates the classes; the 10-NN "
            "accuracy measures how cleanly, trustworthiness how faithfully the map keeps the "
            "vectors' own neighbourhoods. No untrained panel: a model's initial weights are not "
            "part of the model interface, so only the demo compares with them."
        )
        alt = "t-SNE map of the penultimate layer"
    return Section("Embeddings", text + quick, figures=[Figure(path, caption, alt)])


def _head_input(model, x: np.ndarray, layer: str) -> jax.Array:
    """The ``(N, D)`` vectors the output layer sees: for a spatial layer (the digits CNN's
    ``conv2``: ``D = 32``) its ReLU averaged over positions, else its values flattened."""
    _, acts = model.activations(jnp.asarray(x), layer)
    a = acts[layer]
    if a.ndim == 4:
        return jax.nn.relu(a).mean(axis=(1, 2))
    return a.reshape(a.shape[0], -1)
