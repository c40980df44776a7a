"""The report's data section: what the model is trained and tested on."""

from __future__ import annotations

import numpy as np

from visjax.base.io import save_figure
from visjax.plot import class_balance, class_samples, pixel_statistics
from visjax.report.context import DemoContext
from visjax.report.html import Figure, Section


def data_section(ctx: DemoContext) -> Section:
    """A sample grid per class, the class balance of both splits, per-channel pixel statistics."""
    train, test = ctx.train, ctx.test
    x, y = np.asarray(train.x), np.asarray(train.y)
    n = ctx.num_classes
    figs = [
        Figure(
            save_figure(
                class_samples(x, y, n_per_class=8, title="training examples per class"),
                ctx.out / "data_samples.png",
            ),
            "The first eight training examples of each class (row label: class, count).",
        ),
        Figure(
            save_figure(
                class_balance({"train": y, "test": np.asarray(test.y)}, n_classes=n),
                ctx.out / "data_balance.png",
            ),
            "Examples per class in the training and test splits.",
        ),
        Figure(
            save_figure(pixel_statistics(x), ctx.out / "data_pixels.png"),
            "Per-channel pixel mean and standard deviation, and histograms of the pixel values "
            "(training set).",
        ),
    ]
    counts = np.bincount(y, minlength=n)
    pixels = x.reshape(-1, x.shape[-1])
    stats = ", ".join(
        f"{m:.3f} \u00b1 {s:.3f}" for m, s in zip(pixels.mean(0), pixels.std(0), strict=True)
    )
    return Section(
        "Data",
        f"{len(y)} training and {len(test.y)} test examples of shape {x.shape[1:]} in {n} "
        f"classes ({counts.min()} to {counts.max()} training examples per class). The grid "
        "shows each class's first eight training examples (row label: class and its count); "
        "the bars compare the splits' class balance; the pixel statistics give each channel's "
        f"mean and standard deviation (training set: {stats}) and the histogram of its values, "
        "the range the model's inputs live in. Training curves are in the training section.",
        figures=figs,
    )
