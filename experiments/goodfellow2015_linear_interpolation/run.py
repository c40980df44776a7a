"""Goodfellow, Vinyals and Saxe (2015), "Qualitatively characterizing neural network optimization
problems": the loss along the straight line from the initial to the trained weights.

Claim reproduced: for a range of networks the training loss decreases monotonically along the
line ``θ(α) = (1 − α) θ_init + α θ_trained`` from the initialisation (α = 0) to the solution SGD
found (α = 1), with no barrier on the way. The line between two independently trained solutions
(different seeds) is the contrast: there a barrier is expected (Goodfellow et al. Sec. 4; Garipov
et al. 2018; Frankle et al. 2020), since the two solutions differ at least by a permutation of
hidden units.

Setup here: scikit-learn's 8x8 digits (1,347 training images), three zoo networks, each trained
from two seeds: the digits CNN (:func:`visjax.zoo.pretrained.trained_digits_cnn`), the BatchNorm
digits ResNet (``digits_resnet(norm=True)``, depth 8, trained in train mode with batch statistics
by :func:`experiments.li2018_skip_connections.bn.trained_bn_resnet`) and the digits ViT
(:func:`visjax.zoo.pretrained.trained_digits_vit`). Losses along the lines come from
:func:`visjax.landscape.interpolate` (training split, cross-entropy and accuracy).

BatchNorm: the running statistics are not parameters and do not lie on the line. The ResNet is
evaluated with statistics *recomputed at every α* (its train-mode forward on the whole training
split as one batch, which equals inference with freshly recomputed statistics; Frankle et al. 2020
call the alternative, stale statistics, a source of spurious barriers). For comparison the line
is also evaluated with the trained end point's statistics held fixed (``resnet_fixedstats``).

Run: ``python -m experiments.goodfellow2015_linear_interpolation.run [--quick] [--seed S]
[--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    seed: int = 0  # the two solutions use seeds `seed` and `seed + 1`
    alphas: int = 41  # points over [alpha_min, alpha_max]
    alpha_min: float = -0.5
    alpha_max: float = 1.5
    images: int = 1347  # first training images for the losses (1347: all)
    cnn_epochs: int = 30
    resnet_depth: int = 8
    resnet_epochs: int = 10
    vit_epochs: int = 30
    tol: float = 1e-3  # a rise between consecutive alphas above this (nats) breaks monotonicity


FULL = Config()
QUICK = Config(alphas=11, images=128, cnn_epochs=3, resnet_epochs=1, vit_epochs=2)
MODELS = ("cnn", "resnet", "vit")


def _trained(name: str, seed: int, cfg: Config, cache) -> dict:
    """``{"init": Model, "model": Model, "test_accuracy": float, "seconds": float, ...}``."""
    t0 = time.perf_counter()
    if name == "resnet":
        from experiments.li2018_skip_connections.bn import trained_bn_resnet

        r = trained_bn_resnet(
            skip=True,
            depth=cfg.resnet_depth,
            seed=seed,
            epochs=cfg.resnet_epochs,
            warmup_epochs=1,
            cache=cache,
        )
        return {
            "init": r["init"],
            "model": r["model"],
            "test_accuracy": r["history"]["test_accuracy"][-1],
            "from_cache": r["from_cache"],
            "seconds": time.perf_counter() - t0,
        }
    from visjax.zoo import digits_cnn, digits_vit
    from visjax.zoo.pretrained import trained_digits_cnn, trained_digits_vit

    if name == "cnn":
        init = digits_cnn("nnx", seed=seed)
        t = trained_digits_cnn(seed=seed, epochs=cfg.cnn_epochs, cache=cache)
    else:
        init = digits_vit(seed=seed)
        t = trained_digits_vit(seed=seed, epochs=cfg.vit_epochs, cache=cache)
    return {
        "init": init,
        "model": t.model,
        "test_accuracy": t.history.test_accuracy[-1],
        "from_cache": t.from_cache,
        "seconds": time.perf_counter() - t0,
    }


def _losses(name: str, model, fixed_stats: bool = False) -> dict:
    """The loss table for :func:`visjax.landscape.interpolate`."""
    from visjax.landscape import model_losses

    if name == "resnet" and not fixed_stats:
        from experiments.li2018_skip_connections.bn import train_mode_accuracy, train_mode_loss

        args = (True, model_depth(model), _width(model))
        return {
            "loss": train_mode_loss(*args, model.state),
            "accuracy": train_mode_accuracy(*args, model.state),
        }
    t = model_losses(model, "cross_entropy", "accuracy")
    return {"loss": t["cross_entropy"], "accuracy": t["accuracy"]}


def model_depth(model) -> int:
    blocks = len(model.params["stages"][0]["blocks"])
    return 6 * blocks + 2


def _width(model) -> int:
    return int(model.params["stem"]["kernel"].shape[-1])


def line_stats(alphas: np.ndarray, loss: np.ndarray, tol: float) -> dict:
    """Monotonicity and barrier of ``loss`` over the part of the line with α in [0, 1]."""
    inside = (alphas >= -1e-9) & (alphas <= 1 + 1e-9)
    a, v = alphas[inside], loss[inside]
    rises = np.diff(v)
    i = int(np.argmax(rises))
    chord = v[0] + (a - a[0]) / (a[-1] - a[0]) * (v[-1] - v[0])
    j = int(np.argmax(v - chord))
    return {
        "loss_start": float(v[0]),
        "loss_end": float(v[-1]),
        "loss_max": float(v.max()),
        "monotone": bool(rises.max() <= tol),
        "max_rise": float(rises.max()),
        "max_rise_at": f"{a[i]:.3g}->{a[i + 1]:.3g}",
        "_max_rise_alpha": float(a[i]),
        "barrier": float(max(0.0, (v - chord).max())),
        "barrier_at": float(a[j]),
    }


def study(name: str, cfg: Config, data, cache) -> tuple[list[dict], dict]:
    """The lines of one network family: init -> trained for both seeds, solution -> solution."""
    from visjax.landscape import interpolate

    alphas = np.linspace(cfg.alpha_min, cfg.alpha_max, cfg.alphas)
    alphas = np.unique(np.concatenate([alphas, [0.0, 1.0]]))
    seeds = (cfg.seed, cfg.seed + 1)
    nets = {s: _trained(name, s, cfg, cache) for s in seeds}
    rows, curves = [], {}

    def line(label, kind, a, b, model, fixed=False):
        t0 = time.perf_counter()
        # batch_size=None: the whole split as one batch (for the BatchNorm ResNet in train mode,
        # the statistics of the whole training split at every alpha)
        vals = interpolate(
            _losses(name, model, fixed), a, b, alphas, data=data, batch_size=None, progress=False
        )
        st = line_stats(alphas, vals["loss"], cfg.tol)
        inside = (alphas >= 0) & (alphas <= 1)
        row = {
            "model": name + ("_fixedstats" if fixed else ""),
            "line": label,
            "kind": kind,
            **{k: v for k, v in st.items() if not k.startswith("_")},
            "acc_start": float(vals["accuracy"][inside][0]),
            "acc_end": float(vals["accuracy"][inside][-1]),
            "acc_min_inside": float(vals["accuracy"][inside].min()),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        rows.append(row)
        curves[f"{row['model']}:{label}"] = {
            "alphas": alphas,
            **vals,
            "_max_rise_alpha": st["_max_rise_alpha"],
            "row": row,
        }
        print(
            f"{row['model']} {label}: loss {row['loss_start']:.3g} -> {row['loss_end']:.3g}, "
            f"monotone {row['monotone']} (max rise {row['max_rise']:.3g} at {row['max_rise_at']}), "
            f"barrier {row['barrier']:.3g} at {row['barrier_at']:.3g}, {row['seconds']} s",
            flush=True,
        )

    for s in seeds:
        n = nets[s]
        line(f"init{s}->trained{s}", "init", n["init"].params, n["model"].params, n["model"])
    a, b = nets[seeds[0]]["model"], nets[seeds[1]]["model"]
    line(f"trained{seeds[0]}->trained{seeds[1]}", "solutions", a.params, b.params, a)
    if name == "resnet":
        n = nets[seeds[0]]
        line(
            f"init{seeds[0]}->trained{seeds[0]}",
            "init",
            n["init"].params,
            n["model"].params,
            n["model"],
            fixed=True,
        )
    info = {
        "name": name,
        "test_accuracy": [nets[s]["test_accuracy"] for s in seeds],
        "seconds_train": [round(nets[s]["seconds"], 1) for s in seeds],
        "from_cache": [nets[s]["from_cache"] for s in seeds],
    }
    return rows, {"curves": curves, "info": info}


def _figures(curves: dict, out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    from visjax.base.io import save_figure
    from visjax.plot.landscape import loss_curve

    paths = []
    for kind, title, fname in (
        ("init", "Training loss from initialisation (α=0) to trained (α=1)", "init_to_trained.png"),
        ("solutions", "Training loss between two solutions (seeds)", "between_solutions.png"),
    ):  # fmt: skip
        keys = [k for k, c in curves.items() if c["row"]["kind"] == kind]
        if not keys:
            continue
        cols = min(3, len(keys))
        nrows = -(-len(keys) // cols)
        fig = Figure(figsize=(4.8 * cols, 3.6 * nrows), layout="constrained")
        axes = fig.subplots(nrows, cols, squeeze=False).ravel()
        for ax, k in zip(axes, keys, strict=False):
            c = curves[k]
            r = c["row"]
            marks = {"start": 0.0, "end": 1.0}
            if not r["monotone"]:
                marks[f"max rise {r['max_rise']:.2g}"] = c["_max_rise_alpha"]
            if kind == "solutions":
                marks[f"barrier {r['barrier']:.2g}"] = r["barrier_at"]
            loss_curve(
                c["alphas"],
                {"train loss": c["loss"], "train accuracy": c["accuracy"]},
                ax=ax,
                marks=marks,
                log=True,
                title=f"{r['model']}: {r['line']}",
            )
        for ax in axes[len(keys) :]:
            ax.set_visible(False)
        fig.suptitle(title)
        paths.append(save_figure(fig, out / fname))
    return paths


TABLE = [
    "model", "line", "kind", "loss_start", "loss_end", "loss_max", "monotone", "max_rise",
    "max_rise_at", "barrier", "barrier_at", "acc_start", "acc_end", "acc_min_inside", "seconds",
]  # fmt: skip


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _write_tables(rows, infos, curves, cfg: Config, out: Path, seconds: float) -> None:
    from visjax.base.io import atomic_write_bytes

    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=TABLE)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in TABLE})
    md = [
        "# Goodfellow et al. (2015) linear interpolation: results",
        "",
        f"Config: `{json.dumps(asdict(cfg))}`; total {seconds:.0f} s.",
        "",
        "Networks (test accuracy per seed, training seconds, from cache):",
        "",
    ]
    md += [
        f"- {i['name']}: {', '.join(f'{a:.1%}' for a in i['test_accuracy'])}; "
        f"{i['seconds_train']} s; cached {i['from_cache']}"
        for i in infos
    ]
    md += ["", "| " + " | ".join(TABLE) + " |", "|" + "---|" * len(TABLE)]
    md += ["| " + " | ".join(_fmt(r[k]) for k in TABLE) + " |" for r in rows]
    atomic_write_bytes(out / "results.md", ("\n".join(md) + "\n").encode())
    arrays = {}
    for k, c in curves.items():
        for m in ("alphas", "loss", "accuracy"):
            arrays[f"{k}.{m}"] = np.asarray(c[m])
    np.savez(out / "curves.npz", **arrays)


def run(
    quick: bool = False, out: str | Path | None = None, cache=None, config: Config | None = None
):
    """Run the experiment; returns ``(rows, curves)``."""
    from visjax.zoo.data import load_digits

    cfg = config or (QUICK if quick else FULL)
    out = Path(out) if out is not None else HERE / ("out_quick" if quick else "out")
    out.mkdir(parents=True, exist_ok=True)
    train = load_digits().train
    data = (jnp.asarray(train.x[: cfg.images]), jnp.asarray(train.y[: cfg.images]))
    t0 = time.perf_counter()
    rows, infos, curves = [], [], {}
    for name in MODELS:
        r, extra = study(name, cfg, data, cache)
        rows += r
        infos.append(extra["info"])
        curves.update(extra["curves"])
        seconds = time.perf_counter() - t0
        _figures(curves, out)
        _write_tables(rows, infos, curves, cfg, out, seconds)
    print(f"wrote {out} in {seconds:.0f} s")
    return rows, curves


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny configuration (seconds)")
    ap.add_argument("--seed", type=int, default=None, help="first seed (the second is seed + 1)")
    ap.add_argument("--out", default=None, help="output folder")
    ap.add_argument("--cache", default=None, help="weight cache folder (default $VISJAX_CACHE)")
    ap.add_argument("--alphas", type=int, default=None, help="points on each line")
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    over = {"seed": a.seed, "alphas": a.alphas}
    cfg = Config(**{**asdict(cfg), **{k: v for k, v in over.items() if v is not None}})
    run(quick=a.quick, out=a.out, cache=a.cache, config=cfg)


if __name__ == "__main__":
    main()
