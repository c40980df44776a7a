"""Ghorbani, Krishnan, Xiao (2019), "An Investigation into Neural Net Optimization via Hessian
Eigenvalue Density" (ICML 2019).

Claim reproduced: during training the Hessian spectrum of a network without batch normalisation
develops a few large isolated eigenvalues ("outliers") far to the right of the bulk, while the
same network with BatchNorm (in training mode: batch statistics) has no such outliers; their
Fig. 6/7 (ResNet-32 with and without BN on CIFAR-10) and the full-batch densities estimated by
stochastic Lanczos quadrature (SLQ).

Setup here: scikit-learn's 8x8 digits (1,347 training images), the digits ResNet
(:func:`visjax.zoo.resnet.nnx_module`, ``depth=8``, ``width=8``) with ``norm=True`` (a BatchNorm
after every convolution) and its ``norm=False`` twin from the same seed, both trained by
:func:`visjax.zoo.train` (Adam 3e-3, batch 64). The zoo's model view runs BatchNorm in inference
mode with fresh statistics (mean 0, variance 1), which is not batch normalisation at all, so the
BatchNorm network is wrapped here as a plain function whose BatchNorm layers use the statistics
of the batch they see (training mode), for training and for the Hessian.

Hessian: of the mean cross-entropy on one fixed batch of ``hessian_images`` training images,
BatchNorm in training mode with the statistics of that whole batch (one chunk,
``batch_size=None``), i.e. the Hessian of the objective a batch of that size sees, including the
terms through the batch statistics (Ghorbani et al. compute it in training mode, the mode in
which the optimiser sees the loss). For comparison the BatchNorm network's final checkpoint is
also analysed with its statistics frozen at that batch's values (inference mode: same loss
value, no derivative through the statistics).

Spectra (:func:`visjax.curvature.spectral_density`, SLQ with Rademacher probes) at four
checkpoints (init, after epoch 1, mid, end) and ``λ_max``
(:func:`visjax.curvature.top_eigenvalues`, Lanczos) after every epoch. Outlier measure:
``λ_max / λ_edge``, where the bulk edge ``λ_edge`` is the ``1 − 10⁻³`` quantile of the SLQ
spectral measure (the Gauss nodes weighted by their weights, averaged over probes): a few
outliers carry a mass of about ``1/d`` each (``d`` parameters), far below 10⁻³, so the quantile
lands on the top of the bulk; a ratio near 1 means no outliers. Also the number of Ritz values
above ``2 λ_edge`` (well-separated outliers).

Run: ``python -m experiments.ghorbani2019_hessian_outliers.run [--quick] [--seed S] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    depth: int = 8
    width: int = 8
    epochs: int = 10
    learning_rate: float = 3e-3
    seed: int = 0
    hessian_images: int = 256  # fixed batch for every Hessian (BatchNorm statistics over it)
    lanczos_steps: int = 80  # SLQ steps per probe
    probes: int = 2
    top_steps: int = 30  # most Lanczos steps for λ_max per epoch
    quantile: float = 1e-3  # bulk edge: the 1 - quantile point of the SLQ measure


FULL = Config()
QUICK = Config(epochs=2, hessian_images=64, lanczos_steps=16, probes=1, top_steps=10)


def networks(cfg: Config) -> dict:
    """``name -> (apply(params, x), params0, graphdef, stats)`` for the two ResNets."""
    from flax import nnx

    from visjax.zoo.resnet import nnx_module

    out = {}
    for name, norm in (("no-BN", False), ("BN", True)):
        module = nnx_module(depth=cfg.depth, width=cfg.width, seed=cfg.seed, norm=norm)
        graphdef, pstate, stats = nnx.split(module, nnx.Param, nnx.BatchStat)
        out[name] = (
            _train_mode_apply(graphdef, pstate, stats),
            nnx.to_pure_dict(pstate),
            graphdef,
            pstate,
            stats,
        )
    return out


def _merge(graphdef, pstate, stats, params):
    from flax import nnx

    # fresh States made inside the current trace (BatchNorm writes its running averages)
    state = jax.tree.map(jnp.asarray, pstate)
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state, jax.tree.map(jnp.asarray, stats))


def _train_mode_apply(graphdef, pstate, stats):
    """``apply(params, x)``: BatchNorm normalises with the statistics of ``x`` (training mode)."""

    def apply(params, x):
        m = _merge(graphdef, pstate, stats, params)
        m.set_attributes(use_running_average=False, raise_if_not_found=False)
        return m(x)

    return apply


def frozen_stats_loss(graphdef, pstate, stats, params, x):
    """The cross-entropy with BatchNorm statistics frozen at those of ``x`` (inference mode)."""
    from flax import nnx

    from visjax.zoo.train import cross_entropy

    m = _merge(graphdef, pstate, stats, params)
    m.set_attributes(use_running_average=False, momentum=0.0, raise_if_not_found=False)
    m(x)  # running averages := the statistics of x
    _, _, frozen = nnx.split(m, nnx.Param, nnx.BatchStat)

    def loss(p, batch):
        mm = _merge(graphdef, pstate, frozen, p)
        mm.set_attributes(use_running_average=True, raise_if_not_found=False)
        return cross_entropy(mm(batch[0]), batch[1])

    return loss


class Keep:
    """A :class:`visjax.base.callbacks.CheckpointWriter` holding every epoch's parameters."""

    def __init__(self):
        self.params = {}

    def save(self, step, params):
        self.params[step] = params


def outliers(sd, quantile: float) -> dict:
    """Bulk edge (``1 − quantile`` point of the SLQ measure), ``λ_max``, their ratio, outliers."""
    nodes = np.asarray(sd.nodes, float).ravel()
    w = np.asarray(sd.weights, float).ravel() / sd.nodes.shape[0]
    ok = np.isfinite(nodes)
    nodes, w = nodes[ok], w[ok]
    order = np.argsort(nodes)
    nodes, w = nodes[order], w[order]
    cdf = np.cumsum(w) / w.sum()
    edge = float(nodes[np.searchsorted(cdf, 1 - quantile)])
    lam_max = float(nodes[-1])
    top = np.sort(np.asarray(sd.nodes[0], float)[np.isfinite(sd.nodes[0])])
    return {
        "lambda_max": lam_max,
        "lambda_edge": edge,
        "ratio": lam_max / edge if edge > 0 else float("inf"),
        "outliers_2x": int(np.sum(top > 2 * edge)) if edge > 0 else 0,
        "lambda_min": float(nodes[0]),
    }


def study(name, net, cfg: Config, data, hess, test) -> dict:
    """Train one network, then its λ_max per epoch and SLQ spectra at four checkpoints."""
    import optax

    from visjax import as_model
    from visjax.curvature import spectral_density, top_eigenvalues
    from visjax.zoo import evaluate, train
    from visjax.zoo.train import cross_entropy

    apply, params0, graphdef, pstate, stats = net
    keep = Keep()
    t0 = time.perf_counter()
    model, hist = train(
        as_model(apply, params0, input_shape=(8, 8, 1)),
        data,
        epochs=cfg.epochs,
        batch_size=64,
        optimizer=optax.adam(cfg.learning_rate),
        seed=cfg.seed,
        trajectory=keep,
        progress=False,
    )
    t_train = time.perf_counter() - t0
    # BatchNorm (training mode) on the whole test set at once: its own statistics
    test_loss, test_acc = evaluate(model, test)

    def loss(p, batch):
        return cross_entropy(apply(p, batch[0]), batch[1])

    t0 = time.perf_counter()
    key = jax.random.key(cfg.seed + 1)
    lam = []
    for e in range(cfg.epochs + 1):
        r = top_eigenvalues(
            loss, keep.params[e], data=hess, k=1, n_iter=cfg.top_steps, tol=1e-3,
            key=jax.random.fold_in(key, e), batch_size=None, progress=False,
        )  # fmt: skip
        lam.append(float(r.eigenvalues[0]))
    t_top = time.perf_counter() - t0

    t0 = time.perf_counter()
    checkpoints = sorted({0, 1, cfg.epochs // 2, cfg.epochs})
    spectra = {}
    for e in checkpoints:
        sd = spectral_density(
            loss, keep.params[e], data=hess, n_probes=cfg.probes, n_iter=cfg.lanczos_steps,
            key=jax.random.fold_in(key, 1000 + e), batch_size=None, progress=False,
        )  # fmt: skip
        spectra[e] = (sd, outliers(sd, cfg.quantile), float(loss(keep.params[e], hess)))
    frozen = None
    if stats:  # the BatchNorm network's end point with frozen statistics
        fl = frozen_stats_loss(graphdef, pstate, stats, keep.params[cfg.epochs], hess[0])
        sd = spectral_density(
            fl, keep.params[cfg.epochs], data=hess, n_probes=cfg.probes,
            n_iter=cfg.lanczos_steps, key=jax.random.fold_in(key, 1000 + cfg.epochs),
            batch_size=None, progress=False,
        )  # fmt: skip
        frozen = (sd, outliers(sd, cfg.quantile), float(fl(keep.params[cfg.epochs], hess)))
    t_slq = time.perf_counter() - t0
    return {
        "name": name,
        "parameters": int(sum(np.size(a) for a in jax.tree.leaves(params0))),
        "train_loss": hist.train_loss[-1],
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "lambda_max_per_epoch": lam,
        "spectra": spectra,
        "frozen": frozen,
        "seconds_train": round(t_train, 1),
        "seconds_top": round(t_top, 1),
        "seconds_slq": round(t_slq, 1),
    }


TABLE = ["network", "checkpoint", "epoch", "loss", "lambda_max", "lambda_edge", "ratio",
         "outliers_2x", "lambda_min"]  # fmt: skip


def _checkpoint_names(cfg: Config) -> dict:
    """Epoch -> "init" / "early" / "mid" / "end" (the earlier name wins where epochs coincide)."""
    names = {cfg.epochs: "end", cfg.epochs // 2: "mid", 1: "early", 0: "init"}
    return dict(sorted(names.items()))


def _rows(results: list[dict], cfg: Config) -> list[dict]:
    names = _checkpoint_names(cfg)
    rows = []
    for r in results:
        for e, (_, o, lv) in r["spectra"].items():
            rows.append({"network": r["name"], "checkpoint": names[e], "epoch": e, "loss": lv, **o})
        if r["frozen"] is not None:
            _, o, lv = r["frozen"]
            rows.append({"network": r["name"] + " (frozen stats)", "checkpoint": "end",
                         "epoch": cfg.epochs, "loss": lv, **o})  # fmt: skip
    return rows


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _figures(results: list[dict], cfg: Config, out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    from visjax.base.io import save_figure

    names = _checkpoint_names(cfg)
    cols = len(results[0]["spectra"])
    fig = Figure(figsize=(3.4 * cols, 2.8 * len(results)), layout="constrained")
    axes = fig.subplots(len(results), cols, squeeze=False)
    for row, r in zip(axes, results, strict=True):
        for ax, (e, (sd, o, _)) in zip(row, r["spectra"].items(), strict=True):
            ax.semilogy(sd.grid, np.maximum(sd.density, 1e-12), "C0", lw=0.8)
            ax.axvline(o["lambda_edge"], color="C1", ls="--", lw=0.8, label="bulk edge")
            ax.set_ylim(1e-8, None)
            ax.set_title(f"{r['name']}, {names[e]} (epoch {e}): λmax/edge {o['ratio']:.3g}",
                         fontsize=8)  # fmt: skip
            ax.set_xlabel("eigenvalue")
        row[0].set_ylabel("density (log)")
        row[0].legend(fontsize=7)
    fig.suptitle("Hessian eigenvalue density by SLQ (Ghorbani et al. 2019, Fig. 6-7)")
    paths = [save_figure(fig, out / "densities.png")]

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, r in enumerate(results):
        ax1.semilogy(np.arange(cfg.epochs + 1), r["lambda_max_per_epoch"], f"C{i}o-",
                     label=r["name"])  # fmt: skip
        e = list(r["spectra"])
        ax2.semilogy(e, [r["spectra"][k][1]["ratio"] for k in e], f"C{i}o-", label=r["name"])
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("λ_max")
    ax1.set_title("Top Hessian eigenvalue over training")
    ax1.legend()
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("λ_max / bulk edge")
    ax2.set_title("Outlier ratio at the SLQ checkpoints")
    ax2.axhline(1, color="k", lw=0.5)
    ax2.legend()
    paths.append(save_figure(fig, out / "top_eigenvalues.png"))
    return paths


def _write_tables(results: list[dict], cfg: Config, out: Path, seconds: float) -> None:
    from visjax.base.io import atomic_write_bytes

    rows = _rows(results, cfg)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: row[k] for k in TABLE})
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    md = [
        "# Ghorbani et al. (2019) Hessian outliers and BatchNorm: results",
        "",
        f"Config: `{json.dumps(asdict(cfg))}`; total {seconds:.0f} s.",
        "",
        "| network | parameters | train loss | test acc | λ_max per epoch | seconds "
        "train / top / SLQ |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lam = ", ".join(f"{v:.3g}" for v in r["lambda_max_per_epoch"])
        md.append(
            f"| {r['name']} | {r['parameters']} | {r['train_loss']:.4g} | "
            f"{r['test_accuracy']:.3f} | {lam} | {r['seconds_train']} / {r['seconds_top']} / "
            f"{r['seconds_slq']} |"
        )
    md += ["", "| " + " | ".join(TABLE) + " |", "|" + "---|" * len(TABLE)]
    md += ["| " + " | ".join(_fmt(row[k]) for k in TABLE) + " |" for row in rows]
    atomic_write_bytes(out / "results.md", ("\n".join(md) + "\n").encode())
    arrays = {}
    for r in results:
        arrays[f"{r['name']}.lambda_max_per_epoch"] = np.array(r["lambda_max_per_epoch"])
        for e, (sd, _, _) in r["spectra"].items():
            arrays[f"{r['name']}.epoch{e}.nodes"] = sd.nodes
            arrays[f"{r['name']}.epoch{e}.weights"] = sd.weights
    np.savez(out / "spectra.npz", **arrays)


def run(quick: bool = False, out: str | Path | None = None, config: Config | None = None):
    """Run the experiment; returns one dict per network."""
    from visjax.zoo.data import load_digits

    cfg = config or (QUICK if quick else FULL)
    out = Path(out) if out is not None else HERE / ("out_quick" if quick else "out")
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    data = digits.train
    hess = (jnp.asarray(data.x[: cfg.hessian_images]), jnp.asarray(data.y[: cfg.hessian_images]))
    t0 = time.perf_counter()
    results = []
    for name, net in networks(cfg).items():
        r = study(name, net, cfg, data, hess, digits.test)
        ratios = ", ".join(f"{e}: {v[1]['ratio']:.3g}" for e, v in r["spectra"].items())
        print(
            f"{name}: test acc {r['test_accuracy']:.3f}, λ_max per epoch "
            f"{[round(v, 3) for v in r['lambda_max_per_epoch']]}, λmax/edge by epoch {ratios}"
            + (f", frozen stats {r['frozen'][1]['ratio']:.3g}" if r["frozen"] else "")
            + f"; times train/top/SLQ {r['seconds_train']}/{r['seconds_top']}/"
            f"{r['seconds_slq']} s",
            flush=True,
        )
        results.append(r)
        seconds = time.perf_counter() - t0
        _figures(results, cfg, out)
        _write_tables(results, cfg, out, seconds)
    print(f"wrote {out} in {seconds:.0f} s")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 epochs, 64 images, 16 steps (seconds)")
    ap.add_argument("--out", default=None, help="output folder")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--hessian-images", type=int, default=None)
    ap.add_argument("--lanczos-steps", type=int, default=None)
    ap.add_argument("--probes", type=int, default=None)
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    over = {
        "seed": a.seed,
        "epochs": a.epochs,
        "width": a.width,
        "hessian_images": a.hessian_images,
        "lanczos_steps": a.lanczos_steps,
        "probes": a.probes,
    }
    cfg = Config(**{**asdict(cfg), **{k: v for k, v in over.items() if v is not None}})
    run(quick=a.quick, out=a.out, config=cfg)


if __name__ == "__main__":
    main()
