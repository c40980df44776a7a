"""The report's feature-visualisation sections: the shapes CNN for the demo, the user's model for
:func:`visjax.report.write` (its classes and its last spatial layer's channels)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from visjax import featviz as fv
from visjax.base.io import save_figure
from visjax.plot import feature_map_grid, filter_grid, image_grid, objective_curves
from visjax.report.context import DemoContext, ReportContext, SkipSection
from visjax.report.html import Figure, Section
from visjax.report.layers import spatial_layers
from visjax.zoo import SHAPE_CLASSES, load_shapes, sample_image, shapes_cnn, trained_shapes_cnn

#: At most this many classes and channels are rendered for a user's model.
MAX_UNITS = 8


def _render(ctx, model, shape, names, steps, layer=None, n_channels=0):
    """Class logits (``names``: one per class rendered) and ``n_channels`` channels of ``layer``
    maximised from a Fourier image of ``shape`` (colour-decorrelated for RGB); pad and jitter
    scale with the image (4 and 8 on 16 x 16). Returns the figures and how many class images
    the model predicts as their class."""
    key = jax.random.key(ctx.seed)
    param = fv.fourier(tuple(shape), decorrelate=shape[-1] == 3)
    side = min(shape[:2])
    transforms = fv.compose(fv.pad(max(1, side // 4)), fv.jitter(max(1, side // 2)))
    classes = fv.render(
        model,
        units=list(range(len(names))),
        param=param,
        transforms=transforms,
        n_steps=steps,
        key=key,
    )
    pred = np.asarray(jnp.argmax(model(classes.images), -1))
    hits = int((pred == np.arange(len(names))).sum())
    figs = [
        save_figure(
            image_grid(classes.images, labels=list(names), ncols=4, title="classes"),
            ctx.out / "featviz_classes.png",
        ),
        save_figure(
            objective_curves(classes.traces, labels=list(names), ylabel="class logit"),
            ctx.out / "featviz_class_curves.png",
        ),
    ]
    if layer is not None:
        channels = fv.render(
            model,
            units=[(layer, c) for c in range(n_channels)],
            param=param,
            transforms=transforms,
            n_steps=steps,
            key=jax.random.fold_in(key, 1),
        )
        figs.append(
            save_figure(
                image_grid(
                    channels.images, labels=[f"{layer}:{c}" for c in range(n_channels)], ncols=4
                ),
                ctx.out / "featviz_channels.png",
            )
        )
    return figs, hits


def featviz_section(ctx: ReportContext) -> Section:
    """Class and channel visualisations, first-layer filters and feature maps: of the shapes CNN
    for the demo, of the user's model otherwise (:func:`_user_featviz`)."""
    if not ctx.demo:
        return _user_featviz(ctx)
    trained = trained_shapes_cnn(seed=ctx.seed, cache=ctx.cache)
    model = trained.model
    ctx.log(f"shapes CNN: test accuracy {trained.history.test_accuracy[-1]:.2%}")
    steps = 48 if ctx.quick else 160
    figs, hits = _render(ctx, model, (16, 16, 3), SHAPE_CLASSES, steps, layer="conv3", n_channels=8)
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


def _image_shape(ctx: ReportContext) -> tuple[int, int, int]:
    """One input's ``(H, W, C)``: the model's declared input shape when fully known, else the
    data's."""
    shape = ctx.model.input_shape
    if shape is None or len(shape) != 3 or None in shape:
        shape = np.shape(ctx.test.x)[1:]
    if len(shape) != 3:
        raise SkipSection(f"feature visualisation needs (H, W, C) images, got inputs {shape}")
    return tuple(int(d) for d in shape)


def _user_featviz(ctx: ReportContext) -> Section:
    """The user's model: its first classes' logits and its last spatial layer's first channels
    maximised (a note instead of channels when no layer is spatial), the first spatial layer's
    filters (when its weights are a convolution kernel) and feature maps on a test image."""
    model = ctx.model
    shape = _image_shape(ctx)
    first = jnp.asarray(ctx.test.x[:1])
    spatial = spatial_layers(model, first)
    steps = 48 if ctx.quick else 160
    n_classes = min(MAX_UNITS, ctx.num_classes)
    layer = spatial[-1] if spatial else None
    width = int(model.layer_shapes(first)[layer].shape[-1]) if layer else 0
    n_channels = min(MAX_UNITS, width)
    figs, hits = _render(
        ctx,
        model,
        shape,
        [f"class {k}" for k in range(n_classes)],
        steps,
        layer=layer,
        n_channels=n_channels,
    )
    side = min(shape[:2])
    text = (
        f"Each of the first {n_classes} class logits (of {ctx.num_classes}) maximised from a "
        f"Fourier{', colour-decorrelated' if shape[-1] == 3 else ''} {shape[0]} x {shape[1]} "
        f"image ({steps} Adam steps, pad {max(1, side // 4)} + jitter {max(1, side // 2)}, one "
        f"vmapped program; the model then predicts the intended class for {hits} of "
        f"{n_classes})"
    )
    if layer is None:
        text += (
            ". No channels, filters or feature maps: no layer of the model has a spatial "
            f"activation (N, H, W, C); its layers: {', '.join(model.trace(first).layers)}."
        )
        return Section("Feature visualisation", text, figures=figs)
    text += (
        f"; the first {n_channels} channels (of {width}) of `{layer}`, the model's last layer "
        f"with a spatial activation"
    )
    try:
        filters = fv.layer_filters(model, layer=spatial[0])
    except ValueError:  # no convolution kernel under that name (a tagged function, say)
        text += f"; `{spatial[0]}`'s filters are not drawn (no convolution kernel of that name)"
    else:
        figs.append(
            save_figure(
                filter_grid(filters, title=f"{spatial[0]} filters"),
                ctx.out / "featviz_filters.png",
            )
        )
        text += f"; the filters of `{spatial[0]}`"
    maps = fv.feature_maps(model, first, layer=spatial[0])[0]
    figs.append(
        save_figure(
            feature_map_grid(maps, title=f"{spatial[0]} maps of test image 0"),
            ctx.out / "featviz_maps.png",
        )
    )
    text += f"; and `{spatial[0]}`'s feature maps on the first test image."
    return Section("Feature visualisation", text, figures=figs)


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
