"""Olah, Mordvintsev and Schubert (2017), "Feature Visualization": parameterisation, regularisers.

Claims checked (Distill 2017, sections "The Enemy of Feature Visualization" and "Diversity"):
optimising raw pixels yields high-frequency, adversarial-looking patterns that activate the unit
without looking like what it detects; a decorrelated (Fourier, 1/f-scaled, colour-decorrelated)
parameterisation and transformation robustness (random jitter, scale, rotation every step) give
more recognisable visualisations; a diversity term makes a batch of renders of one unit differ.

Setup here: the generated shapes (``visjax.zoo.load_shapes``: eight classes, each one visual
property, so the ground truth is known) and the zoo's shapes CNN (``trained_shapes_cnn``), whose
eight class logits are rendered with :func:`visjax.featviz.render` under the eight conditions of a
2 x 2 x 2 design: parameterisation (``pixel`` or ``fourier`` with the data's decorrelated colour),
transforms (none, or pad + jitter + random scale + random rotation + jitter, ``+T``) and the
diversity term (none, or ``- w * diversity("conv3")``, ``+D``); every condition renders a batch of
4 images per class from 4 random starts, for several seeds. The score: the accuracy of an
independently trained judge (a different architecture: 5x5 conv, max-pooling and dense layers,
not the target's global average pool; a different seed) on the renders, i.e. does the rendering of
"circle" look like a circle to another network? Also: the target's own accuracy on its renders,
the judge's probability of the right class, the share of high-frequency power and the pairwise
distances between the 4 renders of a class (pixel RMS and the judge's penultimate features).

Run: ``python -m experiments.olah2017_feature_visualization.run [--quick] [--seed S] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
PARAMS = ("pixel", "fourier")
CONDITIONS = tuple(f"{p}{t}{d}" for p in PARAMS for t in ("", "+T") for d in ("", "+D"))
SIZE = 16
HF_CUTOFF = 0.25  # cycles per pixel: "high frequency" above it (periods under 4 px)


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    conditions: tuple[str, ...] = CONDITIONS
    seed: int = 0  # target model seed; judge seed + 1; render keys seed .. seed + n_seeds - 1
    n_seeds: int = 5
    renders: int = 4  # images per class and seed (the parameterisation's batch)
    n_steps: int = 256
    diversity_weight: float = 10.0
    diversity_layer: str = "conv3"
    target_epochs: int = 10
    judge_epochs: int = 6
    judge_learning_rate: float = 3e-3


FULL = Config()
QUICK = Config(
    conditions=("pixel", "fourier+T+D"),
    n_seeds=2,
    renders=2,
    n_steps=8,
    target_epochs=3,
    judge_epochs=2,
)


# ----------------------------------------------------------------------------------------------
# the independent judge: a different architecture from the target's (no global average pool)


def _judge_init(key: jax.Array) -> dict:
    k = jax.random.split(key, 4)
    he, lecun = jax.nn.initializers.he_normal(), jax.nn.initializers.lecun_normal()
    return {
        "conv1": {"kernel": he(k[0], (5, 5, 3, 24)), "bias": jnp.zeros(24)},
        "conv2": {"kernel": he(k[1], (3, 3, 24, 48)), "bias": jnp.zeros(48)},
        "dense": {"kernel": he(k[2], (4 * 4 * 48, 64)), "bias": jnp.zeros(64)},
        "fc": {"kernel": lecun(k[3], (64, 8)), "bias": jnp.zeros(8)},
    }


def _pool(h):
    return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _conv(h, p):
    dims = ("NHWC", "HWIO", "NHWC")
    return (
        jax.lax.conv_general_dilated(h, p["kernel"], (1, 1), "SAME", dimension_numbers=dims)
        + p["bias"]
    )


def judge_features(params: dict, x: jax.Array) -> jax.Array:
    """The judge's penultimate features ``(N, 64)`` (after the ReLU)."""
    h = _pool(jax.nn.relu(_conv(x, params["conv1"])))
    h = _pool(jax.nn.relu(_conv(h, params["conv2"])))
    h = h.reshape(h.shape[0], -1)
    return jax.nn.relu(h @ params["dense"]["kernel"] + params["dense"]["bias"])


def judge_apply(params: dict, x: jax.Array) -> jax.Array:
    """The judge's logits ``(N, 8)``: conv5x5(24)-pool-conv3x3(48)-pool-dense(64)-dense(8)."""
    return judge_features(params, x) @ params["fc"]["kernel"] + params["fc"]["bias"]


def train_judge(cfg: Config, data):
    """The judge trained with Adam on the shapes training split (seed ``cfg.seed + 1``)."""
    import optax

    from visjax.model import as_model
    from visjax.zoo import train

    like = as_model(
        judge_apply, _judge_init(jax.random.key(cfg.seed + 1)), input_shape=(SIZE, SIZE, 3)
    )
    model, history = train(
        like,
        data.train,
        epochs=cfg.judge_epochs,
        batch_size=64,
        optimizer=optax.adam(cfg.judge_learning_rate),
        seed=cfg.seed + 1,
        test_data=data.test,
        progress=False,
    )
    return model, float(history.test_accuracy[-1])


# ----------------------------------------------------------------------------------------------
# rendering


def transforms():
    """Transformation robustness at 16 x 16 (Lucid's ``standard_transforms`` scaled down): pad 4
    (grey), jitter 4, scale 0.9-1.1, rotate -10..10 degrees, jitter 4; 16 x 16 in and out."""
    from visjax import featviz as fv

    return fv.compose(
        fv.pad(4, value=0.5),
        fv.jitter(4),
        fv.random_scale([0.9, 0.95, 1.0, 1.05, 1.1]),
        fv.random_rotate(list(range(-10, 11))),
        fv.jitter(4),
    )


class _Diverse:
    """``class -> class_logit(class) - weight * diversity(layer)`` (hashable: programs reused)."""

    def __init__(self, weight: float, layer: str):
        self.weight, self.layer = weight, layer

    def __call__(self, unit):
        from visjax import featviz as fv

        return fv.class_logit(unit) - self.weight * fv.diversity(self.layer)

    def __eq__(self, other):
        return isinstance(other, _Diverse) and (self.weight, self.layer) == (
            other.weight,
            other.layer,
        )

    def __hash__(self):
        return hash((_Diverse, self.weight, self.layer))


def render_condition(model, condition: str, cfg: Config, color_matrix, seed: int):
    """Renders ``(8, renders, H, W, 3)`` and final objective values ``(8,)`` of one condition."""
    from visjax import featviz as fv

    shape = (SIZE, SIZE, 3)
    if condition.startswith("fourier"):
        param = fv.fourier(shape, batch=cfg.renders, color_matrix=color_matrix)
    else:
        param = fv.pixel(shape, batch=cfg.renders)
    diverse = "+D" in condition
    objective = _Diverse(cfg.diversity_weight, cfg.diversity_layer) if diverse else None
    r = fv.render(
        model,
        objective,
        units=list(range(8)),
        param=param,
        transforms=transforms() if "+T" in condition else None,
        n_steps=cfg.n_steps,
        key=jax.random.key(seed),
        progress=False,
    )
    return np.asarray(r.images), r.traces[:, -1]


# ----------------------------------------------------------------------------------------------
# scores


def hf_share(images: np.ndarray) -> np.ndarray:
    """Share of the grey-level power (mean removed) above ``HF_CUTOFF`` cycles per pixel."""
    g = images.mean(-1)
    power = np.abs(np.fft.fft2(g - g.mean((-2, -1), keepdims=True))) ** 2
    fy = np.fft.fftfreq(g.shape[-2])[:, None]
    fx = np.fft.fftfreq(g.shape[-1])[None]
    high = np.sqrt(fy**2 + fx**2) > HF_CUTOFF
    return (power * high).sum((-2, -1)) / np.maximum(power.sum((-2, -1)), 1e-12)


def _pairwise(v: np.ndarray) -> np.ndarray:
    """Mean distance between the rows of ``v`` ``(C, B, D)`` per class ``(C,)``."""
    d = np.sqrt(((v[:, :, None] - v[:, None]) ** 2).sum(-1))
    b = v.shape[1]
    return d.sum((1, 2)) / max(b * (b - 1), 1)


def scores(images: np.ndarray, target, judge) -> dict:
    """Scores of one condition and seed; ``images`` ``(C, B, H, W, 3)``."""
    c, b = images.shape[:2]
    flat = jnp.asarray(images.reshape(c * b, *images.shape[2:]))
    y = np.repeat(np.arange(c), b)
    judge_logits = np.asarray(judge(flat))
    prob = np.asarray(jax.nn.softmax(judge_logits))[np.arange(c * b), y]
    correct = judge_logits.argmax(-1) == y
    own = np.asarray(target(flat)).argmax(-1) == y
    feats = np.asarray(judge_features(judge.params, flat)).reshape(c, b, -1)
    norms = np.linalg.norm(feats, axis=-1, keepdims=True)
    unit = feats / np.maximum(norms, 1e-12)
    cos = np.einsum("cid,cjd->cij", unit, unit)
    cos_dist = (1 - cos).sum((1, 2)) / max(b * (b - 1), 1)
    return {
        "judge_accuracy": float(correct.mean()),
        "judge_prob": float(prob.mean()),
        "own_accuracy": float(own.mean()),
        "pixel_distance": float(_pairwise(images.reshape(c, b, -1)).mean() / np.sqrt(flat[0].size)),
        "feature_distance": float(cos_dist.mean()),
        "hf_share": float(hf_share(images.reshape(c * b, *images.shape[2:])).mean()),
        "_per_class": correct.reshape(c, b).mean(1),
    }


# ----------------------------------------------------------------------------------------------
# outputs

METRICS = (
    "judge_accuracy",
    "judge_prob",
    "own_accuracy",
    "hf_share",
    "pixel_distance",
    "feature_distance",
    "objective",
)


def _summary(rows: list[dict], cond: str, metric: str) -> tuple[float, float, float, float]:
    v = np.array([r[metric] for r in rows if r["condition"] == cond], float)
    return float(v.mean()), float(v.std()), float(v.min()), float(v.max())


def _figures(renders: dict, rows: list[dict], cfg: Config, examples: np.ndarray, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visjax.zoo import SHAPE_CLASSES

    conds = list(renders)
    paths = []
    seed = cfg.seed
    b = cfg.renders
    cols = 1 + len(conds) * b
    fig, axes = plt.subplots(8, cols, figsize=(0.5 * cols + 1.2, 0.55 * 8 + 0.8), squeeze=False)
    for k in range(8):
        panels = [examples[k]] + [renders[c][seed][k, j] for c in conds for j in range(b)]
        for col, img in enumerate(panels):
            ax = axes[k, col]
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0 and (col == 0 or (col - 1) % b == 0):
                title = "data" if col == 0 else conds[(col - 1) // b]
                ax.set_title(title, fontsize=6, loc="left")
        label = SHAPE_CLASSES[k].replace(" ", "\n")
        axes[k, 0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle(f"Class logits rendered, seed {seed} (+T transforms, +D diversity)", fontsize=7)
    fig.tight_layout(pad=0.3)
    path = out / "renders.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    paths.append(path)

    seeds = sorted(renders[conds[0]])
    fig, axes = plt.subplots(
        8, len(conds) + 1, figsize=(0.9 * (len(conds) + 1) + 1.2, 7.5), squeeze=False
    )
    for k in range(8):
        panels = [examples[k]] + [renders[c][seeds[-1]][k, 0] for c in conds]
        for col, img in enumerate(panels):
            ax = axes[k, col]
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_title("data" if col == 0 else conds[col - 1], fontsize=6)
        label = SHAPE_CLASSES[k].replace(" ", "\n")
        axes[k, 0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle(f"First render per class and condition, seed {seeds[-1]}", fontsize=8)
    fig.tight_layout(pad=0.3)
    path = out / "overview.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    paths.append(path)

    shown = ("judge_accuracy", "own_accuracy", "hf_share", "pixel_distance", "feature_distance")
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.2))
    xs = np.arange(len(conds))
    for ax, metric in zip(axes, shown, strict=True):
        stats = [_summary(rows, c, metric) for c in conds]
        mean = np.array([s[0] for s in stats])
        lo = mean - np.array([s[2] for s in stats])
        hi = np.array([s[3] for s in stats]) - mean
        colours = ["tab:orange" if c.startswith("pixel") else "tab:blue" for c in conds]
        ax.bar(xs, mean, yerr=[lo, hi], color=colours, capsize=2)
        per_seed = [[r[metric] for r in rows if r["condition"] == c] for c in conds]
        for x, vals in zip(xs, per_seed, strict=True):
            ax.plot([x] * len(vals), vals, "k.", ms=2)
        ax.set_xticks(xs, conds, rotation=70, fontsize=6)
        ax.set_title(metric.replace("_", " "), fontsize=8)
        if metric.endswith("accuracy"):
            ax.set_ylim(0, 1.05)
            ax.axhline(1 / 8, color="k", lw=0.5, ls=":")
    fig.suptitle("mean over seeds, bars min-max, dots single seeds", fontsize=8)
    fig.tight_layout()
    path = out / "scores.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    paths.append(path)
    return paths


def _uint8(images: np.ndarray) -> np.ndarray:
    """Renders in [0, 1] stored as 8-bit pixels (``round(255 x)``), as an image file would."""
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def _write_tables(rows, per_class, cfg: Config, info: dict, out: Path) -> None:
    from visjax.zoo import SHAPE_CLASSES

    fields = ["condition", "seed", *METRICS]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for row in rows:
            w.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    conds = list(per_class)
    md = [
        "# Olah et al. (2017) feature visualisation on the shapes CNN: results",
        "",
        f"Config: `{json.dumps(asdict(cfg))}`; {json.dumps(info)}.",
        "",
        f"Mean ± standard deviation over {cfg.n_seeds} seeds [min, max]; each seed scores "
        f"8 classes x {cfg.renders} renders. judge: accuracy of the independent classifier on "
        "the renders (chance 0.125); own: the target's accuracy on its renders; hf: share of "
        f"grey-level power above {HF_CUTOFF} cycles/px (test images: "
        f"{info['hf_share_test_images']:.3f}); pixel / feature distance: mean pairwise RMS "
        "pixel distance and judge-feature cosine distance between the renders of one class.",
        "",
        "| condition | judge accuracy | judge p(class) | own accuracy | hf share | pixel dist | "
        "feature dist | final objective |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in conds:
        cells = []
        for metric in METRICS:
            m, s, lo, hi = _summary(rows, c, metric)
            cells.append(f"{m:.3f} ± {s:.3f} [{lo:.2f}, {hi:.2f}]")
        md.append(f"| {c} | " + " | ".join(cells) + " |")
    md += ["", "Judge accuracy per class (mean over seeds and renders):", ""]
    md += ["| condition | " + " | ".join(SHAPE_CLASSES) + " |"]
    md += ["|---|" + "---|" * len(SHAPE_CLASSES)]
    for c in conds:
        acc = np.mean(per_class[c], axis=0)
        md.append(f"| {c} | " + " | ".join(f"{v:.2f}" for v in acc) + " |")
    (out / "results.md").write_text("\n".join(md) + "\n")


# ----------------------------------------------------------------------------------------------


def run(
    quick: bool = False, out: str | Path | None = None, cache=None, config: Config | None = None
) -> dict:
    """Run the experiment; returns ``{"rows", "per_class", "info"}``."""
    from visjax import featviz as fv
    from visjax.zoo import SHAPE_CLASSES, evaluate, load_shapes, trained_shapes_cnn

    cfg = config or (QUICK if quick else FULL)
    out = Path(out) if out is not None else HERE / ("out_quick" if quick else "out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = load_shapes()
    trained = trained_shapes_cnn(
        form="function", seed=cfg.seed, epochs=cfg.target_epochs, cache=cache
    )
    target = trained.model
    t_target = time.perf_counter() - t0
    judge, judge_acc = train_judge(cfg, data)
    _, target_acc = evaluate(target, data.test)
    t_judge = time.perf_counter() - t0 - t_target
    print(f"target test acc {target_acc:.3f} ({t_target:.1f} s, "
          f"{'cache' if trained.from_cache else 'fit'}); judge test acc {judge_acc:.3f} "
          f"({t_judge:.1f} s)", flush=True)  # fmt: skip
    color_matrix = fv.color_correlation(data.train.x)
    examples = np.stack([data.test.x[np.flatnonzero(data.test.y == k)[0]] for k in range(8)])

    seeds = range(cfg.seed, cfg.seed + cfg.n_seeds)
    rows, per_class, renders, seconds = [], {}, {}, {}
    for cond in cfg.conditions:
        tc = time.perf_counter()
        renders[cond], per_class[cond] = {}, []
        for s in seeds:
            images, final = render_condition(target, cond, cfg, color_matrix, s)
            sc = scores(images, target, judge)
            per_class[cond].append(sc.pop("_per_class"))
            rows.append({"condition": cond, "seed": s, **sc, "objective": float(final.mean())})
            renders[cond][s] = images
        seconds[cond] = round(time.perf_counter() - tc, 1)
        m = [r for r in rows if r["condition"] == cond]
        print(f"{cond}: {seconds[cond]:.1f} s; judge acc "
              f"{np.mean([r['judge_accuracy'] for r in m]):.3f}, own "
              f"{np.mean([r['own_accuracy'] for r in m]):.3f}, hf "
              f"{np.mean([r['hf_share'] for r in m]):.3f}, pixel dist "
              f"{np.mean([r['pixel_distance'] for r in m]):.3f}", flush=True)  # fmt: skip
    total = time.perf_counter() - t0
    grey = jnp.full((1, SIZE, SIZE, 3), 0.5)
    info = {
        "target_test_accuracy": round(float(target_acc), 4),
        "judge_test_accuracy": round(judge_acc, 4),
        "hf_share_test_images": float(hf_share(data.test.x).mean()),
        "judge_class_of_grey": SHAPE_CLASSES[int(np.asarray(judge(grey)).argmax())],
        "seconds_total": round(total, 1),
        "seconds_per_condition": seconds,
        "target_from_cache": bool(trained.from_cache),
    }
    _figures(renders, rows, cfg, examples, out)
    _write_tables(rows, per_class, cfg, info, out)
    np.savez_compressed(
        out / "renders.npz",
        **{f"{c}.seed{s}": _uint8(v) for c, by_seed in renders.items() for s, v in by_seed.items()},
    )
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s")
    return {"rows": rows, "per_class": per_class, "info": info}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 conditions, 2 seeds, 8 steps")
    ap.add_argument("--out", default=None, help="output folder")
    ap.add_argument("--cache", default=None, help="weight cache folder (default $VISJAX_CACHE)")
    ap.add_argument("--seed", type=int, default=None, help="target seed; judge seed + 1")
    ap.add_argument("--seeds", type=int, default=None, help="render seeds per condition")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--conditions", default=None, help=f"comma-separated among {CONDITIONS}")
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    over = {
        "seed": a.seed,
        "n_seeds": a.seeds,
        "n_steps": a.steps,
        "conditions": tuple(a.conditions.split(",")) if a.conditions else None,
    }
    cfg = Config(**{**asdict(cfg), **{k: v for k, v in over.items() if v is not None}})
    unknown = set(cfg.conditions) - set(CONDITIONS)
    if unknown:
        ap.error(f"unknown conditions {sorted(unknown)}; known: {', '.join(CONDITIONS)}")
    run(quick=a.quick, out=a.out, cache=a.cache, config=cfg)


if __name__ == "__main__":
    main()
