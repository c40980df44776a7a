"""Adebayo et al. (2018), "Sanity Checks for Saliency Maps": cascading model randomisation.

Claim checked: as the layers of a trained network are re-initialised from the top (logits) down,
the maps of gradient-based methods (the gradient, Grad-CAM) change quickly, while guided
backprop and guided Grad-CAM stay visually and numerically similar to the trained model's maps
(their Fig. 2 and Fig. 4: they fail the check).

Setup here: scikit-learn's 8x8 digits, the BatchNorm digits ResNet
(``visjax.zoo.digits_resnet(depth=8, norm=True)``) trained with Adam through the zoo's weight
cache (``visjax.zoo.cache.load_or_train``), nine methods, and
:func:`visjax.attribution.metrics.model_randomisation` in its cascading order over every
parameter group (19 groups from ``fc`` down to ``stem``), the randomised models of one method in
one compiled program. Maps are compared on the test images with the four similarities of the
paper: Spearman rank correlation of the absolute and of the signed maps, SSIM (3x3 window: the
maps are 8x8) and HOG similarity (2x2-pixel cells, 2x2-cell blocks).

Run: ``python -m experiments.adebayo2018_sanity_checks.run [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
SIMILARITIES = ("spearman_abs", "spearman", "ssim", "hog")
METHODS = (
    "gradient",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "guided_backprop",
    "grad_cam",
    "guided_grad_cam",
    "deeplift",
    "lrp",
)
CAM_LAYER = "stages.1"  # the last 4x4 feature maps (stage 2 is 2x2)


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    methods: tuple[str, ...] = METHODS
    depth: int = 8
    width: int = 16
    epochs: int = 10
    learning_rate: float = 3e-3
    seed: int = 0
    images: int = 64  # first test images explained (their true labels as targets)
    ig_steps: int = 32
    smoothgrad_samples: int = 16
    smoothgrad_stdev: float = 0.15 * 16  # 15 % of the digits' range [0, 16]
    figure_images: int = 2  # images shown in the cascade figure
    layers: tuple[str, ...] | None = None  # None: every parameter group, top first


FULL = Config()
QUICK = Config(
    methods=("gradient", "guided_backprop", "grad_cam", "guided_grad_cam"),
    epochs=2,
    images=8,
    figure_images=1,
    layers=("fc", "stages.2.*", "stages.1.*", "stages.0.*", "stem*"),  # whole stages
)


def trained_model(cfg: Config, cache):
    """The BatchNorm digits ResNet trained with Adam, cached like the zoo's trained models."""
    import optax

    from visjax.zoo import digits_resnet
    from visjax.zoo.cache import load_or_train
    from visjax.zoo.data import load_digits
    from visjax.zoo.train import train

    like = digits_resnet(depth=cfg.depth, width=cfg.width, seed=cfg.seed, norm=True)
    config = {
        "model": "digits_resnet",
        "depth": cfg.depth,
        "width": cfg.width,
        "norm": True,
        "data": "sklearn-digits:test_size=0.25:random_state=0:stratify",
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "batch_size": 64,
        "optimizer": "adam",
        "learning_rate": cfg.learning_rate,
    }

    def fit():
        data = load_digits()
        return train(
            like,
            data.train,
            epochs=cfg.epochs,
            batch_size=64,
            optimizer=optax.adam(cfg.learning_rate),
            seed=cfg.seed,
            test_data=data.test,
            progress=False,
        )

    return load_or_train("digits_resnet_bn", config, fit, like=like, cache=cache)


def methods(cfg: Config) -> dict:
    """Name to ``(model, x, target) -> maps`` (fixed keys, so every model gets the same noise)."""
    from visjax.attribution import (
        deeplift,
        grad_cam,
        gradient_x_input,
        guided_backprop,
        guided_grad_cam,
        integrated_gradients,
        lrp,
        noise_tunnel,
        saliency,
    )

    gradient = functools.partial(saliency, absolute=False)
    smooth = noise_tunnel(
        gradient, n_samples=cfg.smoothgrad_samples, stdev=cfg.smoothgrad_stdev, batch_size=None
    )
    sg_key = jax.random.key(cfg.seed + 1)
    table = {
        "gradient": gradient,
        "gradient_x_input": gradient_x_input,
        "integrated_gradients": functools.partial(
            integrated_gradients, n_steps=cfg.ig_steps, batch_size=None
        ),
        "smoothgrad": lambda m, x, t: smooth(m, x, t, key=sg_key),
        "guided_backprop": guided_backprop,
        "grad_cam": functools.partial(grad_cam, layer=CAM_LAYER),
        "guided_grad_cam": functools.partial(guided_grad_cam, layer=CAM_LAYER),
        "deeplift": deeplift,
        "lrp": functools.partial(lrp, composite="epsilon_plus"),
    }
    return {name: table[name] for name in cfg.methods}


def study(model, x, t, cfg: Config) -> dict:
    """The cascading randomisation of every method: scores ``(K, N)`` and maps."""
    from visjax.attribution.metrics import model_randomisation

    out = {}
    key = jax.random.key(cfg.seed)
    for name, method in methods(cfg).items():
        t0 = time.perf_counter()
        r = model_randomisation(
            model,
            x,
            t,
            method,
            order="cascading",
            layers=cfg.layers,
            key=key,
            similarity=SIMILARITIES,
            ssim_kw={"win_size": 3},
            hog_kw={"pixels_per_cell": (2, 2), "cells_per_block": (2, 2)},
        )
        scores = {k: np.asarray(v) for k, v in r.scores.items()}
        seconds = time.perf_counter() - t0
        out[name] = {
            "layers": r.layers,
            "scores": scores,
            "maps": np.asarray(r.maps[:, : cfg.figure_images]),
            "original": np.asarray(r.original[: cfg.figure_images]),
            "seconds": seconds,
        }
        last = {k: float(np.nanmean(v[-1])) for k, v in scores.items()}
        print(
            f"{name}: {seconds:.1f} s; fully randomised: "
            + ", ".join(f"{k} {v:.3f}" for k, v in last.items()),
            flush=True,
        )
    return out


def _pixel(m: np.ndarray) -> np.ndarray:
    """|map| summed over channels, scaled to [0, 1] (how the similarities see the maps)."""
    m = np.abs(m.sum(-1) if m.ndim == 3 else m)
    top = m.max()
    return m / top if top > 0 else m


def _figures(results: dict, x: np.ndarray, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    layers = results[names[0]]["layers"]
    n_img = results[names[0]]["original"].shape[0]
    paths = []
    for i in range(n_img):
        cols = len(layers) + 2
        fig, axes = plt.subplots(
            len(names), cols, figsize=(0.9 * cols, 0.95 * len(names) + 0.9), squeeze=False
        )
        for r, name in enumerate(names):
            res = results[name]
            panels = [x[i, ..., 0], _pixel(res["original"][i])]
            panels += [_pixel(res["maps"][k, i]) for k in range(len(layers))]
            for c, img in enumerate(panels):
                ax = axes[r, c]
                ax.imshow(img, cmap="gray", vmin=0, vmax=None if c == 0 else 1)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    title = "input" if c == 0 else "trained" if c == 1 else layers[c - 2]
                    ax.set_title(title.replace("stages.", "s").replace(".blocks.", "b."),
                                 fontsize=5, rotation=60, ha="left")  # fmt: skip
            axes[r, 0].set_ylabel(name.replace("_", " "), fontsize=6, rotation=0, ha="right")
        fig.suptitle("Cascading randomisation (top layer first; |map| per row scaled to [0, 1])",
                     fontsize=7)  # fmt: skip
        fig.tight_layout()
        path = out / f"cascade_{i}.png"
        fig.savefig(path, dpi=150)
        plt.close(fig)
        paths.append(path)

    fig, axes = plt.subplots(1, len(SIMILARITIES), figsize=(4 * len(SIMILARITIES), 3.6))
    steps = np.arange(len(layers) + 1)
    for ax, sim in zip(axes, SIMILARITIES, strict=True):
        for name in names:
            s = results[name]["scores"][sim]
            curve = np.concatenate([[1.0], np.nanmean(s, 1)])
            ax.plot(steps, curve, marker="o", ms=2.5, lw=1.2, label=name.replace("_", " "))
        ax.set_xticks(steps, ["trained", *layers], rotation=90, fontsize=5)
        ax.set_title(sim.replace("_", " "), fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylim(-0.5 if sim == "spearman" else -0.1, 1.02)
    axes[0].set_ylabel("similarity to the trained model's maps (mean over images)")
    axes[-1].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    path = out / "rank_correlation.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return [*paths, path]


def _rows(results: dict) -> list[dict]:
    rows = []
    for name, res in results.items():
        for k, layer in enumerate(res["layers"]):
            row = {"method": name, "step": k + 1, "randomised_down_to": layer}
            for sim in SIMILARITIES:
                v = res["scores"][sim][k]
                row[sim] = float(np.nanmean(v))
                row[f"{sim}_std"] = float(np.nanstd(v))
            rows.append(row)
    return rows


def _write_tables(results: dict, cfg: Config, out: Path, info: dict) -> None:
    rows = _rows(results)
    fields = list(rows[0])
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    layers = next(iter(results.values()))["layers"]
    picks = [0, len(layers) // 2, len(layers) - 1]
    md = [
        "# Adebayo et al. (2018) cascading randomisation: results",
        "",
        f"Config: `{json.dumps(asdict(cfg))}`; {json.dumps(info)}.",
        "",
        "Mean similarity to the trained model's maps over the explained images, after "
        "randomising from the top down to the named group (1 = unchanged, 0 = unrelated).",
        "",
    ]
    for sim in SIMILARITIES:
        md += [f"**{sim}**", ""]
        md += ["| method | " + " | ".join(f"to {layers[k]}" for k in picks) + " |"]
        md += ["|---|" + "---|" * len(picks)]
        for name, res in results.items():
            vals = [float(np.nanmean(res["scores"][sim][k])) for k in picks]
            md += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " |"]
        md += [""]
    md += ["Seconds per method (the randomised models of one method in one compiled program):", ""]
    md += [", ".join(f"{n} {r['seconds']:.1f}" for n, r in results.items()), ""]
    (out / "results.md").write_text("\n".join(md) + "\n")
    arrays = {}
    for name, res in results.items():
        for sim in SIMILARITIES:
            arrays[f"{name}.{sim}"] = res["scores"][sim]
    np.savez(out / "scores.npz", layers=np.array(layers), **arrays)


def run(
    quick: bool = False, out: str | Path | None = None, cache=None, config: Config | None = None
) -> dict:
    """Run the experiment; returns method name to its layers, scores, maps and time."""
    from visjax.zoo.data import load_digits
    from visjax.zoo.train import evaluate

    cfg = config or (QUICK if quick else FULL)
    out = Path(out) if out is not None else HERE / ("out_quick" if quick else "out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    trained = trained_model(cfg, cache)
    t_train = time.perf_counter() - t0
    test = load_digits().test
    _, acc = evaluate(trained.model, test)
    x = jnp.asarray(test.x[: cfg.images])
    t = jnp.asarray(test.y[: cfg.images], jnp.int32)
    print(f"trained ({'cache' if trained.from_cache else 'fit'}, {t_train:.1f} s): test acc "
          f"{acc:.3f}", flush=True)  # fmt: skip
    results = study(trained.model, x, t, cfg)
    seconds = time.perf_counter() - t0
    info = {
        "test_accuracy": round(float(acc), 4),
        "seconds_total": round(seconds, 1),
        "seconds_train": round(t_train, 1),
        "weights_from_cache": bool(trained.from_cache),
    }
    _figures(results, np.asarray(x), out)
    _write_tables(results, cfg, out, info)
    print(f"wrote {out} in {seconds:.0f} s")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 methods, 8 images, 2 epochs (~1 min)")
    ap.add_argument("--out", default=None, help="output folder")
    ap.add_argument("--cache", default=None, help="weight cache folder (default $VISJAX_CACHE)")
    ap.add_argument("--methods", default=None, help=f"comma-separated among {','.join(METHODS)}")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    over = {
        "methods": tuple(a.methods.split(",")) if a.methods else None,
        "images": a.images,
        "epochs": a.epochs,
        "seed": a.seed,
    }
    cfg = Config(**{**asdict(cfg), **{k: v for k, v in over.items() if v is not None}})
    unknown = set(cfg.methods) - set(METHODS)
    if unknown:
        ap.error(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    run(quick=a.quick, out=a.out, cache=a.cache, config=cfg)


if __name__ == "__main__":
    main()
