"""The demo report's attribution section: methods compared on right and wrong test digits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from visjax.plot.report import Section
from visjax.sections import DemoContext, register_section


@register_section("attribution", title="Attribution", order=30)
def attribution_section(ctx: DemoContext) -> Section:
    """Saliency, gradient x input, IG, SmoothGrad, expected gradients and blur IG side by side."""
    from visjax import attribution as va
    from visjax.io import save_figure
    from visjax.plot import attribution_grid
    from visjax.zoo import load_digits

    model = ctx.digits_cnn.model
    test = load_digits().test
    x_all = jnp.asarray(test.x)
    pred = np.asarray(jax.jit(lambda m, x: m(x).argmax(-1))(model, x_all))
    right = np.flatnonzero(pred == test.y)[:3]
    wrong = np.flatnonzero(pred != test.y)[:3]
    idx = np.concatenate([right, wrong])
    x = x_all[idx]
    t = jnp.asarray(pred[idx])  # explain the predicted class
    key = jax.random.key(ctx.seed)
    k1, k2 = jax.random.split(key)
    refs = jnp.asarray(load_digits().train.x[:200])
    maps = {
        "saliency": va.saliency(model, x, t),
        "grad x input": va.gradient_x_input(model, x, t),
        "IG (64, GL)": va.integrated_gradients(model, x, t, n_steps=64),
        "SmoothGrad": va.noise_tunnel(va.saliency, n_samples=32, stdev=0.15)(model, x, t, key=k1),
        "expected grad": va.expected_gradients(model, x, t, references=refs, n_samples=64, key=k2),
        "blur IG": va.blur_integrated_gradients(model, x, t, max_sigma=4.0, n_steps=64),
    }
    labels = [f"true {test.y[i]} / pred {pred[i]}" for i in idx]
    fig = save_figure(attribution_grid(x, maps, row_labels=labels), ctx.out / "attribution.png")
    ig = maps["IG (64, GL)"]
    err = va.completeness_error(model, x, t, ig)
    n_wrong = int((pred != test.y).sum())
    return Section(
        "Attribution",
        f"Attributions for the predicted class on {len(right)} correctly and {len(wrong)} wrongly "
        f"classified test digits (the model gets {n_wrong} of {len(pred)} wrong). Red: evidence "
        "for the class, blue: against; each map scaled to its 99th percentile of |a|. IG "
        f"completeness error (64 Gauss-Legendre steps): median {float(jnp.median(err)):.1e}.",
        figures=[fig],
    )
