"""The report's attribution sections: methods compared on right and wrong test examples.

The examples are the first 3 correctly and the first 3 wrongly classified held-out examples
(fewer when the model gets fewer right or wrong), chosen the same way for the demo's digits and a
user's data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from visjax import attribution as va
from visjax.attribution import cam
from visjax.base.io import save_figure
from visjax.evaluation import predict
from visjax.plot import attribution_grid, cam_grid, feature_values_grid
from visjax.report.context import ReportContext
from visjax.report.html import Figure, Section
from visjax.report.layers import spatial_layer


def _examples(ctx: ReportContext):
    """The model and 3 right + 3 wrong test examples, with their predicted classes."""
    model = ctx.model
    test = ctx.test
    x_all = jnp.asarray(test.x)
    pred = np.asarray(predict(model, x_all)).argmax(-1)  # compiled once, shared by sections
    right = np.flatnonzero(pred == test.y)[:3]
    wrong = np.flatnonzero(pred != test.y)[:3]
    idx = np.concatenate([right, wrong])
    labels = [f"true {test.y[i]} / pred {pred[i]}" for i in idx]
    n_wrong = int((pred != test.y).sum())
    return model, x_all[idx], jnp.asarray(pred[idx]), labels, n_wrong, len(pred)


def _class_scores(model, x, t):
    """Each example's score for its class ``t``: ``model(x)[i, t[i]]``."""
    return model(x)[jnp.arange(x.shape[0]), t]


def attribution_section(ctx: ReportContext) -> Section:
    """Gradient maps (saliency, SmoothGrad, guided backprop, deconvnet) and the attributions in
    class-score units (gradient x input, IG, DeepLIFT, expected gradients, blur IG)."""
    model, x, t, labels, n_wrong, n_test = _examples(ctx)
    key = jax.random.key(ctx.seed)
    k1, k2 = jax.random.split(key)
    refs = jnp.asarray(ctx.train.x[:200])
    n = 32 if ctx.quick else 64  # samples and steps (quick: compiles less)
    gradients = {
        "saliency": va.saliency(model, x, t),
        "SmoothGrad": va.noise_tunnel(va.saliency, n_samples=n // 2, stdev=0.15)(
            model, x, t, key=k1
        ),
        "guided backprop": va.guided_backprop(model, x, t),
        "deconvnet": va.deconvnet(model, x, t),
    }
    scores = {
        "grad x input": va.gradient_x_input(model, x, t),
        f"IG ({n}, GL)": va.integrated_gradients(model, x, t, n_steps=n),
        "DeepLIFT": va.deeplift(model, x, t),
        "expected grad": va.expected_gradients(model, x, t, references=refs, n_samples=n, key=k2),
        "blur IG": va.blur_integrated_gradients(model, x, t, max_sigma=4.0, n_steps=n),
    }
    figs = [
        save_figure(
            attribution_grid(x, gradients, row_labels=labels, scale="column"),
            ctx.out / "attribution.png",
        ),
        save_figure(
            attribution_grid(x, scores, row_labels=labels, scale="shared"),
            ctx.out / "attribution_shared.png",
        ),
    ]
    figs = [
        Figure(figs[0], "Gradient maps, one colour scale per method."),
        Figure(figs[1], "Attributions in class-score units on one shared colour scale."),
    ]
    err = va.completeness_error(model, x, t, attributions=scores[f"IG ({n}, GL)"])
    gap = scores["DeepLIFT"].sum(axis=(1, 2, 3)) - (
        _class_scores(model, x, t) - _class_scores(model, jnp.zeros_like(x), t)
    )
    return Section(
        "Attribution",
        f"Attributions for the predicted class on 3 correctly and 3 wrongly classified test "
        f"examples (the model gets {n_wrong} of {n_test} wrong). Red: evidence for the class, "
        "blue: against. First figure: gradient maps (saliency, SmoothGrad, guided backprop, "
        "deconvnet), one colour scale per method (the 99th percentile of |a| over its column, "
        "its colour bar below it), since their magnitudes differ by method. Second figure: "
        "methods in class-score units (gradient x input, integrated gradients, DeepLIFT with a "
        "zero baseline, expected gradients, blur IG) on one shared scale, so their magnitudes "
        f"compare across methods. IG completeness error ({n} Gauss-Legendre steps): median "
        f"{float(jnp.median(err)):.1e}; DeepLIFT's sum minus f(x) - f(0): at most "
        f"{float(jnp.abs(gap).max()):.1e}.",
        figures=figs,
    )


_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def _noun(ctx: ReportContext, n: int) -> str:
    """``n`` held-out examples in words: "six test digits" for the demo, "6 test images" else."""
    if ctx.demo:
        return f"{_WORDS.get(n, n)} test digits"
    return f"{n} test image{'s' if n != 1 else ''}"


def cam_section(ctx: ReportContext) -> Section:
    """The CAM family at the model's last spatial layer (the digits CNN's last convolution,
    ``conv2``), processed as pytorch-grad-cam does; a note instead when no layer is spatial.

    Works for any image classifier: the examples are :func:`_examples`'s; the demo adds each
    map's share on the digits' strokes."""
    first = jnp.asarray(ctx.test.x[:1])
    layer = spatial_layer(ctx.model, first)
    if layer is None:
        return Section(
            "Class activation maps",
            "No CAMs: no layer of the model has a spatial activation (N, H, W, C), and the CAM "
            "methods weight the channels of such a layer (pytorch-grad-cam's usual target, the "
            f"last convolution). The model's layers: {', '.join(ctx.model.trace(first).layers)}.",
        )
    model, x, t, labels, _, _ = _examples(ctx)
    size = x.shape[1:3]
    grid = model.layer_shapes(first)[layer].shape[1:3]
    raw = {
        "Grad-CAM": cam.grad_cam(model, x, t, layer=layer),
        "Grad-CAM++": cam.grad_cam_plus_plus(model, x, t, layer=layer),
        "XGrad-CAM": cam.xgrad_cam(model, x, t, layer=layer),
        "HiResCAM": cam.hires_cam(model, x, t, layer=layer),
        "LayerCAM": cam.layer_cam(model, x, t, layer=layer),
        "Score-CAM": cam.score_cam(model, x, t, layer=layer, batch_size=256),
        "Ablation-CAM": cam.ablation_cam(model, x, t, layer=layer, batch_size=256),
        "Eigen-CAM": cam.eigen_cam(model, x, layer=layer),
    }
    maps = {name: cam.postprocess(m, size) for name, m in raw.items()}
    maps["FullGrad"] = cam.full_grad(model, x, t)
    # signed, in pixel resolution: the channels summed (one channel for the digits)
    maps["guided Grad-CAM"] = cam.guided_grad_cam(model, x, t, layer=layer).sum(axis=-1)
    fig = save_figure(cam_grid(x, maps, row_labels=labels), ctx.out / "cam.png")
    text = (
        f"CAM methods for the predicted class at layer `{layer}`, the model's last layer with a "
        "spatial activation (pytorch-grad-cam's usual target layer, the last convolution; for "
        f"the zoo's models its value before the ReLU), on the same {_noun(ctx, len(x))}; each raw "
        f"({grid[0]} x {grid[1]}) map is post-processed as pytorch-grad-cam does (ReLU, min-max "
        "scaling to [0, 1], bilinear upsampling), and each method's column has one colour "
        "scale, its colour bar below it. HiResCAM multiplies gradients and activations position by "
        "position instead of averaging the gradients; FullGrad combines input and bias "
        "gradients of every layer; guided Grad-CAM is guided backprop times the upsampled "
        "Grad-CAM map (signed, in pixel resolution)."
    )
    if ctx.demo:
        # How much of each map's |mass| lies on the digit's strokes (pixels above half intensity).
        strokes = np.asarray(x[..., 0] > 0.5)
        on_strokes = {
            name: float((np.abs(np.asarray(m)) * strokes).sum() / np.abs(np.asarray(m)).sum())
            for name, m in maps.items()
        }
        share = ", ".join(f"{name} {v:.0%}" for name, v in on_strokes.items())
        text += (
            f" Share of each map's |mass| on the strokes ({strokes.mean():.0%} of the pixels): "
            f"{share}."
        )
    return Section("Class activation maps", text, figures=[fig])


#: Exact Shapley values (2^16 coalitions per example) run for inputs of at most this many values.
EXACT_MAX_SIZE = 4096


def perturbation_section(ctx: ReportContext) -> Section:
    """Occlusion, feature ablation, Shapley sampling, Kernel SHAP and LIME on a 4 x 4 grid of
    patches (2 x 2 pixels on the digits), for any image classifier; exact Shapley values too
    when not quick and the input is small."""
    model, x, t, labels, _, _ = _examples(ctx)
    h, w, c = x.shape[1:]
    size = max(1, -(-max(h, w) // 4))  # a 4 x 4 grid: 16 features (2 x 2 pixels on the digits)
    mask = va.square_patches(x.shape[1:], size)
    n_features = int(mask.max()) + 1
    window, stride = size + 1, max(1, size // 2)  # 3 x 3, stride 1 on the digits
    k1, k2, k3 = jax.random.split(jax.random.key(ctx.seed), 3)
    chunk = 2048
    n = 64 if ctx.quick else 512
    maps = {
        f"occlusion {window}x{window}": va.occlusion(
            model, x, t, window=(window, window), strides=(stride, stride), batch_size=chunk
        ),
        "ablation": va.feature_ablation(model, x, t, mask=mask, batch_size=chunk),
        f"Shapley ({n // 8} perm.)": va.shapley_value_sampling(
            model, x, t, mask=mask, n_samples=n // 8, key=k1, batch_size=chunk
        ),
        f"Kernel SHAP ({n})": va.kernel_shap(
            model, x, t, mask=mask, n_samples=n, key=k2, batch_size=chunk
        ),
        f"LIME ({n})": va.lime(model, x, t, mask=mask, n_samples=n, key=k3, batch_size=chunk),
    }
    baseline = "baseline 0, the background" if ctx.demo else "baseline 0"
    text = (
        f"Perturbation methods for the predicted class on the same {_noun(ctx, len(x))}, with "
        f"{n_features} features of {size} x {size} pixels ({baseline}); each feature coloured "
        "by its value (red: removing it lowers the class score), one symmetric colour scale per "
        "method (its colour bar below its column). "
        f"Occlusion slides a {window} x {window} window with stride {stride} (Captum's "
        "averaging), shown as each patch's mean. "
    )
    ks = maps[f"Kernel SHAP ({n})"]
    # each element carries its feature's value: read one element per feature
    _, first = np.unique(mask, return_index=True)
    per_feature = ks.reshape(len(x), -1)[:, first]
    gap = per_feature.sum(axis=1) - (
        _class_scores(model, x, t) - _class_scores(model, jnp.zeros_like(x), t)
    )
    text += f"Kernel SHAP's sum minus f(x) - f(0): at most {float(jnp.abs(gap).max()):.1e}. "
    if not ctx.quick and n_features <= 16 and h * w * c <= EXACT_MAX_SIZE:
        exact = va.exact_shapley(model, x, t, mask=mask, batch_size=chunk)  # 2^16 coalitions
        maps["exact Shapley"] = exact
        scale = float(jnp.abs(exact).max())
        for name in (f"Shapley ({n // 8} perm.)", f"Kernel SHAP ({n})"):
            err = float(jnp.abs(maps[name] - exact).max()) / scale
            text += f"{name}: max error {err:.2f} of the largest exact value. "
    elif not ctx.quick:
        text += (
            f"No exact Shapley values: they take 2^{n_features} model calls per example, run "
            f"for inputs of at most {EXACT_MAX_SIZE} values (this one has {h * w * c}). "
        )
    fig = save_figure(
        feature_values_grid(x, mask[..., 0], maps, row_labels=labels), ctx.out / "perturbation.png"
    )
    return Section("Perturbation and surrogate attribution", text, figures=[fig])
