"""The demo report's feature-visualisation section, on the generated-shapes CNN."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from visjax import featviz as fv
from visjax.base.io import save_figure
from visjax.plot import feature_map_grid, filter_grid, image_grid, objective_curves
from visjax.report.context import DemoContext, SkipSection
from visjax.report.html import Figure, Section
from visjax.zoo import SHAPE_CLASSES, load_shapes, sample_image, shapes_cnn, trained_shapes_cnn


def featviz_section(ctx: DemoContext) -> Section:
    """Class and channel visualisations, first-layer filters and feature maps of the shapes CNN."""
    trained = trained_shapes_cnn(seed=ctx.seed, cache=ctx.cache)
    model = trained.model
    ctx.log(f"shapes CNN: test accuracy {trained.history.test_accuracy[-1]:.2%}")
    steps = 48 if ctx.quick else 160
    key = jax.random.key(ctx.seed)
    param = fv.fourier((16, 16, 3))
    transforms = fv.compose(fv.pad(4), fv.jitter(8))  # the 16x16 model keeps its input size
    classes = fv.render(
        model,
        units=list(range(len(SHAPE_CLASSES))),
        param=param,
        transforms=transforms,
        n_steps=steps,
        key=key,
    )
    pred = np.asarray(jnp.argmax(model(classes.images), -1))
    hits = int((pred == np.arange(len(SHAPE_CLASSES))).sum())
    figs = [
        save_figure(
            image_grid(classes.images, labels=list(SHAPE_CLASSES), ncols=4, title="classes"),
            ctx.out / "featviz_classes.png",
        ),
        save_figure(
            objective_curves(classes.traces, labels=list(SHAPE_CLASSES), ylabel="class logit"),
            ctx.out / "featviz_class_curves.png",
        ),
    ]
    channels = fv.render(
        model,
        units=[("conv3", c) for c in range(8)],
        param=param,
        transforms=transforms,
        n_steps=steps,
        key=jax.random.fold_in(key, 1),
    )
    figs.append(
        save_figure(
            image_grid(channels.images, labels=[f"conv3:{c}" for c in range(8)], ncols=4),
            ctx.out / "featviz_channels.png",
        )
    )
    figs.append(
        save_figure(
            filter_grid(fv.layer_filters(model, layer="conv1"), title="conv1 filters"),
            ctx.out / "featviz_filters.png",
        )
    )
    test = load_shapes().test
    example = int(np.flatnonzero(test.y == SHAPE_CLASSES.index("vertical stripes"))[0])
    maps = fv.feature_maps(model, jnp.asarray(test.x[example : example + 1]), layer="conv1")[0]
    figs.append(
        save_figure(
            feature_map_grid(maps, title="conv1 maps of a vertical-stripes image"),
            ctx.out / "featviz_maps.png",
        )
    )
    return Section(
        "Feature visualisation",
        f"The generated-shapes CNN ({trained.history.test_accuracy[-1]:.1%} test accuracy): "
        f"each class logit maximised from a Fourier, colour-decorrelated image ({steps} Adam "
        f"steps, pad 4 + jitter 8, all 8 classes in one vmapped program; the model then "
        f"predicts the intended class for {hits} of 8), 8 channels of conv3, the first-layer "
        "filters, and conv1's feature maps on a test image.",
        figures=figs,
    )


def dream_section(ctx: DemoContext) -> Section:
    """DeepDream on a photograph and each channel's top-activating test images (shapes CNN)."""
    if not ctx.demo:
        raise SkipSection("DeepDream and top-activating examples use the demo's shapes CNN")
    trained = trained_shapes_cnn(seed=ctx.seed, cache=ctx.cache)
    model = trained.model
    layer = "conv3"
    n_channels, k = (4, 6) if ctx.quick else (8, 8)
    test = load_shapes().test
    top = fv.top_activating(model, test.x, layer=layer, channels=list(range(n_channels)), k=k)
    values, indices = np.asarray(top.values), np.asarray(top.indices)
    labels = [
        f"{c}: {SHAPE_CLASSES[int(test.y[i])]}" for c in range(n_channels) for i in indices[c]
    ]
    figs = [
        save_figure(
            image_grid(
                test.x[indices.ravel()],
                labels=labels,
                ncols=k,
                title=f"top-{k} test images per {layer} channel (title: channel: class)",
            ),
            ctx.out / "featviz_top_activating.png",
        )
    ]
    octaves, steps = (3, 8) if ctx.quick else (4, 20)
    photo = sample_image("astronaut", size=(64, 64))
    anywhere = shapes_cnn("nnx", model.params, image_size=None)  # the weights at any image size
    dreams = {
        name: fv.deepdream(
            anywhere,
            photo,
            layer=name,
            octaves=octaves,
            n_steps=steps,
            key=jax.random.fold_in(jax.random.key(ctx.seed), i),
        )
        for i, name in enumerate(("conv2", "conv3"))
    }
    figs.append(
        save_figure(
            image_grid(
                np.stack([photo, *map(np.asarray, dreams.values())]),
                labels=["photograph", *(f"DeepDream {name}" for name in dreams)],
                ncols=3,
            ),
            ctx.out / "featviz_deepdream.png",
        )
    )
    purity = [
        np.mean(test.y[indices[c]] == np.bincount(test.y[indices[c]]).argmax())
        for c in range(n_channels)
    ]
    captions = (
        f"The {k} test images that activate each of {n_channels} `{layer}` channels most.",
        "A photograph and its DeepDream at conv2 and conv3.",
    )
    figs = [Figure(path, caption) for path, caption in zip(figs, captions, strict=True)]
    return Section(
        "DeepDream and top-activating examples",
        f"Dataset examples beside the synthetic images: each row holds the {k} test images "
        f"(of {len(test.y)}) with the largest mean activation of one `{layer}` channel of the "
        f"shapes CNN, largest first (channel {int(np.argmax(values[:, 0]))} reaches the "
        f"highest, {float(values.max()):.2f}); on average {np.mean(purity):.0%} of a row share "
        "its most common class (100 %: the channel responds to one class). DeepDream amplifies "
        "what a layer "
        f"sees in a photograph ({octaves} octaves x {steps} gradient steps on the mean "
        "squared activation, the 16 x 16 model's weights run at 64 x 64): the textures that "
        "appear are the patterns the layer's channels respond to.",
        figures=figs,
    )
