"""McCandlish, Kaplan, Amodei et al. (2018), "An Empirical Model of Large-Batch Training".

Claim checked: the steps ``S`` and examples ``E = B S`` needed to reach a given loss, each with
the learning rate tuned for the batch size ``B``, trace the hyperbola
``(S / S_min - 1)(E / E_min - 1) = 1`` (equivalently ``S(B) = S_min + E_min / B``), and the
critical batch size ``B_crit = E_min / S_min`` is predicted, within an order of magnitude, by the
simple gradient noise scale ``B_simple = tr(Σ) / |G|²`` measured during training (their Fig. 4,
5 and 7; B_simple often underestimates B_crit).

Setup here: scikit-learn's 8x8 digits (1,347 training images), a one-hidden-layer ReLU MLP
(64-128-10, built with :func:`visjax.as_model`; the digits CNN was ~100x slower per step on
this machine), plain SGD with batches drawn *with replacement* (so the gradient noise of a
batch is exactly ``Σ / B``, the paper's model), the training loss of
:func:`visjax.landscape.model_losses` on all 1,347 images evaluated every
``max(1, 256 // B)`` steps inside one compiled ``lax.while_loop`` that stops at the target.
Per batch size, the learning rate is searched on a factor-2 grid from 1 outwards until the steps
to the target loss get worse. Steps to each of several loss levels are recorded on the way
(log-linear interpolation between evaluations), the hyperbola is fitted per level, and
``B_simple`` comes from :func:`visjax.gradstats.per_example_stats` over the whole training set
at the parameters where each batch size's best run first reached the level. At the median batch
size's run, the paper's Hessian-weighted ``B_noise`` and the step sizes that bound SGD
(:mod:`visjax.curvature`) are measured as diagnostics.

Run: ``python -m experiments.mccandlish2018_noise_scale.run [--quick] [--seed S] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
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

    batch_sizes: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
    levels: tuple[float, ...] = (0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01)  # last: target
    hidden: int = 128
    repeats: int = 3  # data orders per (batch size, learning rate); steps are their mean
    lr_start: float = 1.0  # the search starts here and moves by factors of lr_factor
    lr_factor: float = 2.0**0.5
    lr_min: float = 2.0**-7
    lr_max: float = 2.0**3
    max_steps: int = 20_000
    eval_examples: int = 256  # a loss evaluation every max(1, eval_examples // B) steps
    curvature_examples: int = 128  # per-example gradients for tr(HΣ) (B_noise); 0: skip it
    seed: int = 0


FULL = Config()
QUICK = Config(
    batch_sizes=(16, 128, 1024),
    levels=(0.5, 0.3),
    repeats=2,
    lr_factor=2.0,
    max_steps=3_000,
    curvature_examples=0,
)


def mlp(hidden: int, seed: int):
    """The 64-hidden-10 ReLU MLP on flattened digits as a visjax Model (LeCun-normal init)."""
    from visjax.model import as_model

    k1, k2 = jax.random.split(jax.random.key(seed))
    init = jax.nn.initializers.lecun_normal()
    params = {
        "l1": {"kernel": init(k1, (64, hidden)), "bias": jnp.zeros(hidden)},
        "l2": {"kernel": init(k2, (hidden, 10)), "bias": jnp.zeros(10)},
    }
    return as_model(_apply, params, input_shape=(8, 8, 1))


def _apply(p, x):
    h = jax.nn.relu(x.reshape(x.shape[0], -1) @ p["l1"]["kernel"] + p["l1"]["bias"])
    return h @ p["l2"]["kernel"] + p["l2"]["bias"]


def _train(loss, params, data, key, lr, levels, cap, *, batch, every):
    """SGD until the last level (or ``cap`` steps, or divergence), in one compiled loop.

    Returns the final state and, per level, the interpolated step of the first crossing (-1 if
    never) and the parameters at the first evaluation below it.
    """
    x, y = data
    n = x.shape[0]
    grad = jax.grad(loss)

    def sgd(p, k):
        idx = jax.random.randint(k, (batch,), 0, n)  # with replacement: noise exactly Σ / B
        g = grad(p, (x[idx], y[idx]))
        return jax.tree.map(lambda a, b: a - lr * b, p, g), None

    l0 = loss(params, data)
    n_lv = levels.shape[0]
    stacked = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_lv, *a.shape)), params)

    def body(s):
        p, key, t, l_old, cross, at = s
        key, sub = jax.random.split(key)
        p, _ = jax.lax.scan(sgd, p, jax.random.split(sub, every))
        t = t + every
        l_new = loss(p, data)
        new = (l_new <= levels) & (cross < 0)
        frac = (jnp.log(l_old) - jnp.log(levels)) / (jnp.log(l_old) - jnp.log(l_new))
        cross = jnp.where(new, t - every + every * jnp.clip(frac, 0.0, 1.0), cross)
        at = jax.tree.map(
            lambda c, a: jnp.where(new.reshape(-1, *([1] * a.ndim)), a[None], c), at, p
        )
        return p, key, t, l_new, cross, at

    def cond(s):
        value = s[3]
        going = (value > levels[-1]) & (s[2] < cap)
        return going & jnp.isfinite(value) & (value < 1.5 * l0)

    init = (params, key, jnp.int32(0), l0, -jnp.ones(n_lv), stacked)
    _, _, t, value, cross, at = jax.lax.while_loop(cond, body, init)
    return t, value, cross, at


@functools.partial(jax.jit, static_argnames=("loss", "batch", "every"))
def _train_repeats(loss, params, data, keys, lr, levels, cap, *, batch, every):
    """:func:`_train` for several data orders (``keys``) at once: results stacked first."""
    one = functools.partial(_train, loss, params, data, batch=batch, every=every)
    return jax.vmap(lambda k: one(k, lr, levels, cap))(keys)


def sweep(cfg: Config, model, loss, data) -> list[dict]:
    """Every (batch size, learning rate) run of the search, with its steps to each level."""
    levels = jnp.asarray(cfg.levels, jnp.float32)
    runs = []
    for b in cfg.batch_sizes:
        every = max(1, cfg.eval_examples // b)
        keys = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), b), cfg.repeats)
        done: dict[float, dict] = {}

        def one(lr, b=b, every=every, keys=keys, done=done):
            best = min((r["steps"][-1] for r in done.values() if r["steps"][-1] > 0),
                       default=None)  # fmt: skip
            cap = cfg.max_steps if best is None else min(cfg.max_steps, 2 * math.ceil(best) + every)
            t0 = time.perf_counter()
            t, final, cross, at = _train_repeats(
                loss, model.params, data, keys, lr, levels, cap, batch=b, every=every
            )
            cross = np.asarray(cross, np.float64)  # (repeats, levels)
            r = {
                "batch": b,
                "lr": lr,
                # mean over the data orders; -1 unless every order reached the level
                "steps": np.where((cross > 0).all(0), cross.mean(0), -1.0),
                "steps_spread": cross.std(0),
                "final_loss": float(np.max(final)),
                "steps_run": int(np.max(t)),
                "cap": cap,
                "seconds": time.perf_counter() - t0,
                "_params": at,
            }
            done[lr] = r
            runs.append(r)
            s = r["steps"][-1]
            print(f"B={b:5d} lr={lr:<9.4g} steps to {cfg.levels[-1]}: "
                  f"{'-' if s < 0 else f'{s:.0f}'} (ran {r['steps_run']}, loss "
                  f"{r['final_loss']:.3g}, {r['seconds']:.1f} s)", flush=True)  # fmt: skip
            return s if s > 0 else math.inf

        # line search on a log grid from lr_start: go the better way until the steps get worse
        s0 = one(cfg.lr_start)
        for factor in (cfg.lr_factor, 1 / cfg.lr_factor):
            if factor > 1 and s0 == math.inf:
                continue  # lr_start already fails: only smaller rates
            best = s0
            k = 0
            while cfg.lr_min <= cfg.lr_start * factor ** (k + 1) <= cfg.lr_max:
                k += 1
                lr = round(cfg.lr_start * factor**k, 6)
                s = one(lr)
                if s >= best:
                    break
                best = s
            if best < s0:  # improved going up: no need to go down
                break
    return runs


def fit_hyperbola(batch: np.ndarray, steps: np.ndarray) -> tuple[float, float]:
    """``S_min, E_min`` of ``S(B) = S_min + E_min / B``, least squares on ``log S``."""
    from scipy.optimize import least_squares

    b, s = np.asarray(batch, float), np.asarray(steps, float)
    # start: weighted linear least squares of S on 1/B (relative errors)
    a = np.stack([np.ones_like(b), 1 / b], 1) / s[:, None]
    start = np.linalg.lstsq(a, np.ones_like(s), rcond=None)[0]
    start = np.log(np.maximum(start, [s.min() * 1e-3, 1e-3 * (s * b).min()]))
    res = least_squares(lambda q: np.log(np.exp(q[0]) + np.exp(q[1]) / b) - np.log(s), start)
    s_min, e_min = np.exp(res.x)
    return float(s_min), float(e_min)


def _dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def curvature(cfg: Config, loss, params, data, key) -> dict:
    """The paper's Hessian-weighted quantities at ``params`` (their eq. 2.6-2.7).

    ``B_noise = tr(HΣ) / GᵀHG`` (``tr(HΣ)`` from ``curvature_examples`` per-example gradients,
    each ``(g_i - G)ᵀ H (g_i - G)`` by one Hessian-vector product over the training set), the
    optimal step of a noiseless batch ``ε_max = |G|² / GᵀHG`` and the top eigenvalue ``λ_max``
    (SGD with a constant rate diverges above ``2 / λ_max``).
    """
    from visjax.curvature import hvp, top_eigenvalues
    from visjax.gradstats.per_example import per_example_grads

    g = jax.grad(loss)(params, data)
    ghg = float(_dot(g, hvp(loss, params, g, data=data)))
    g2 = float(_dot(g, g))
    k1, k2 = jax.random.split(key)
    top = top_eigenvalues(loss, params, data=data, key=k1, n_iter=30, tol=1e-3, progress=False)
    idx = jax.random.choice(k2, data[0].shape[0], (cfg.curvature_examples,), replace=False)
    gi = per_example_grads(loss, params, data=jax.tree.map(lambda a: a[idx], data))
    d = jax.tree.map(lambda a, b: a - b[None], gi, g)
    hd = jax.vmap(lambda v: hvp(loss, params, v, data=data, batch_size=None))(d)
    trace_h_cov = float(_dot(d, hd)) / cfg.curvature_examples
    return {
        "b_noise": trace_h_cov / ghg if ghg > 0 else math.inf,
        "eps_max": g2 / ghg if ghg > 0 else math.inf,
        "lambda_max": float(top.eigenvalues[0]),
    }


def analyse(cfg: Config, runs: list[dict], loss, data) -> list[dict]:
    """Per level: best run per batch size, the hyperbola fit, and B_simple at the crossings."""
    from visjax.gradstats import per_example_stats

    out = []
    for j, level in enumerate(cfg.levels):
        points = []
        for b in cfg.batch_sizes:
            ok = [r for r in runs if r["batch"] == b and r["steps"][j] > 0]
            if not ok:
                continue
            r = min(ok, key=lambda r: r["steps"][j])
            p = jax.tree.map(lambda a, j=j: a[0, j], r["_params"])  # the first data order
            # The batches are drawn from the training set itself, so it is the population: its
            # full gradient is G exactly and Σ its (biased, 1/N) covariance (population=True).
            # The default treats the data as a sample of a larger population (tr Σ̂ / N is
            # subtracted from ‖ḡ‖²); its noise scale is kept as b_simple_sample.
            st = per_example_stats(loss, p, data=data, population=True).total
            sample = per_example_stats(loss, p, data=data).total
            trace = float(st.variance)
            points.append({
                "level": level,
                "batch": b,
                "lr": r["lr"],
                "steps": float(r["steps"][j]),
                "steps_spread": float(r["steps_spread"][j]),
                "examples": float(r["steps"][j] * b),
                "b_simple": float(st.noise_scale),
                "b_simple_sample": float(sample.noise_scale),
                "trace_cov": trace,
                "grad_norm_sq": float(st.grad_norm_sq),
                "lr_at_edge": r["lr"] in (min(x["lr"] for x in runs if x["batch"] == b),
                                          max(x["lr"] for x in runs if x["batch"] == b)),
            })  # fmt: skip
        row = {"level": level, "points": points}
        if cfg.curvature_examples and points:
            # at the best run of the median batch size (first data order), where it hit the level
            ref = points[len(points) // 2]
            r = min((r for r in runs if r["batch"] == ref["batch"] and r["steps"][j] > 0),
                    key=lambda r: r["steps"][j])  # fmt: skip
            p = jax.tree.map(lambda a, j=j: a[0, j], r["_params"])
            key = jax.random.fold_in(jax.random.key(cfg.seed), j)
            row.update(reference_batch=ref["batch"], reference_lr=ref["lr"],
                       reference_b_simple=ref["b_simple"],
                       **curvature(cfg, loss, p, data, key))  # fmt: skip
        if len(points) >= 3:
            b = np.array([q["batch"] for q in points])
            s = np.array([q["steps"] for q in points])
            s_min, e_min = fit_hyperbola(b, s)
            pred = s_min + e_min / b
            jack = [
                (lambda f: f[1] / f[0])(fit_hyperbola(np.delete(b, i), np.delete(s, i)))
                for i in range(len(b))
            ] if len(b) >= 4 else []  # fmt: skip
            tr = np.mean([q["trace_cov"] for q in points])
            g2 = np.mean([q["grad_norm_sq"] for q in points])
            b_simple = float(tr / g2) if g2 > 0 else math.inf
            row.update(
                s_min=s_min,
                e_min=e_min,
                b_crit=e_min / s_min,
                b_crit_jackknife=(float(min(jack)), float(max(jack))) if jack else None,
                rms_log_error=float(np.sqrt(np.mean(np.log(s / pred) ** 2))),
                b_simple=b_simple,
                b_simple_median=float(np.median([q["b_simple"] for q in points])),
                ratio=(e_min / s_min) / b_simple,
            )
        out.append(row)
    return out


def _figures(cfg: Config, table: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fitted = [r for r in table if "b_crit" in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    ax = axes[0]
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(fitted), 1)))
    for row, c in zip(fitted, colors, strict=False):
        e = [q["examples"] for q in row["points"]]
        s = [q["steps"] for q in row["points"]]
        label = f"loss {row['level']:g}: B_crit {row['b_crit']:.0f}"
        ax.plot(e, s, "o", color=c, ms=4, label=label)
        bb = np.geomspace(0.3 * min(cfg.batch_sizes), 3 * max(cfg.batch_sizes), 200)
        ax.plot(row["e_min"] * (1 + bb / row["b_crit"]), row["s_min"] * (1 + row["b_crit"] / bb),
                "-", color=c, lw=1)  # fmt: skip
        ax.plot(row["e_min"], row["s_min"], "x", color=c, ms=6)
        for q in row["points"][:: max(1, len(row["points"]) // 4)]:
            ax.annotate(str(q["batch"]), (q["examples"], q["steps"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("examples processed E")
    ax.set_ylabel("optimisation steps S")
    ax.set_title("steps vs examples to reach a train loss (x: E_min, S_min)", fontsize=9)
    ax.legend(fontsize=6)
    ax = axes[1]
    lv = [r["level"] for r in fitted]
    ax.plot(lv, [r["b_crit"] for r in fitted], "o-", label="B_crit = E_min / S_min (fit)")
    for r in fitted:
        if r["b_crit_jackknife"]:
            ax.plot([r["level"]] * 2, r["b_crit_jackknife"], "-", color="C0", lw=3, alpha=0.3)
    ax.plot(lv, [r["b_simple"] for r in fitted], "s-", label="B_simple (pooled tr Σ / |G|²)")
    if fitted and "b_noise" in fitted[0]:
        ax.plot(lv, [r["b_noise"] for r in fitted], "^--", color="C2",
                label="B_noise = tr(HΣ) / GᵀHG (median-B run)")  # fmt: skip
    for r in fitted:
        bs = [q["b_simple"] for q in r["points"]]
        ax.plot([r["level"]] * len(bs), bs, ".", color="C1", ms=3, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("train loss reached (training proceeds to the right)")
    ax.set_ylabel("batch size")
    ax.set_title("critical batch size vs simple noise scale", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "steps_vs_examples.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return [path]


def _write_tables(cfg: Config, runs, table, out: Path, info: dict) -> None:
    fields = ["level", "batch", "lr", "steps", "steps_spread", "examples", "b_simple",
              "b_simple_sample", "trace_cov", "grad_norm_sq", "lr_at_edge"]  # fmt: skip
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for row in table:
            for q in row["points"]:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in q.items()})
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch", "lr", *(f"steps_to_{lv:g}" for lv in cfg.levels), "steps_run",
                    "cap", "final_loss", "seconds"])  # fmt: skip
        for r in runs:
            w.writerow([r["batch"], r["lr"], *(f"{s:.1f}" for s in r["steps"]), r["steps_run"],
                        r["cap"], f"{r['final_loss']:.4g}", f"{r['seconds']:.2f}"])  # fmt: skip
    md = [
        "# McCandlish et al. (2018) noise scale: results",
        "",
        f"Config: `{json.dumps(asdict(cfg))}`; {json.dumps(info)}.",
        "",
        "Per train-loss level: the fit `S(B) = S_min + E_min / B` over the batch sizes' best runs, "
        "`B_crit = E_min / S_min` (jackknife range leaving one batch size out), and `B_simple` = "
        "mean tr Σ / mean |G|² over those runs' parameters at the level (per-example gradients "
        "over the 1,347 training images, which are the population the batches are drawn from: "
        "Σ their covariance, G their mean gradient), its median over the runs, and "
        "B_crit / B_simple.",
        "",
        "| loss | S_min | E_min | B_crit | jackknife | rms log err | B_simple | median | "
        "B_crit / B_simple |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        if "b_crit" not in r:
            md.append(f"| {r['level']:g} | (fewer than 3 batch sizes reached it) |||||||")
            continue
        jk = r["b_crit_jackknife"]
        md.append(
            f"| {r['level']:g} | {r['s_min']:.1f} | {r['e_min']:.0f} | {r['b_crit']:.1f} | "
            f"{f'{jk[0]:.0f}-{jk[1]:.0f}' if jk else '-'} | {r['rms_log_error']:.3f} | "
            f"{r['b_simple']:.1f} | {r['b_simple_median']:.1f} | {r['ratio']:.2f} |"
        )
    if "b_noise" in table[-1]:
        md += [
            "",
            "Hessian-weighted quantities at the best run of the median batch size (first data "
            "order) where it reached the level: B_simple there, the paper's B_noise = "
            "tr(HΣ) / GᵀHG, the noiseless optimal step ε_max = |G|² / GᵀHG against SGD's "
            "stability limit 2 / λ_max, and the learning rate that run used.",
            "",
            "| loss | B | lr | B_simple | B_noise | ε_max | 2 / λ_max | B_crit / B_noise |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in table:
            if "b_noise" in r:
                ratio = f"{r['b_crit'] / r['b_noise']:.2f}" if "b_crit" in r else "-"
                md.append(
                    f"| {r['level']:g} | {r['reference_batch']} | {r['reference_lr']:g} | "
                    f"{r['reference_b_simple']:.1f} | {r['b_noise']:.1f} | {r['eps_max']:.3g} | "
                    f"{2 / r['lambda_max']:.3g} | {ratio} |"
                )
    md += ["", "Target (last level) per batch size: best learning rate and steps:", ""]
    md += ["| B | lr | steps | examples | B_simple there | lr at grid edge |"]
    md += ["|---|---|---|---|---|---|"]
    for q in table[-1]["points"]:
        md.append(f"| {q['batch']} | {q['lr']:g} | {q['steps']:.0f} | {q['examples']:.0f} | "
                  f"{q['b_simple']:.1f} | {q['lr_at_edge']} |")  # fmt: skip
    (out / "results.md").write_text("\n".join(md) + "\n")


def run(quick: bool = False, out: str | Path | None = None, config: Config | None = None):
    """Run the experiment; returns ``(runs, table)`` (table: one dict per loss level)."""
    from visjax.landscape import model_losses
    from visjax.zoo import load_digits

    cfg = config or (QUICK if quick else FULL)
    out = Path(out) if out is not None else HERE / ("out_quick" if quick else "out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train = load_digits().train
    data = (jnp.asarray(train.x), jnp.asarray(train.y))
    model = mlp(cfg.hidden, cfg.seed)
    loss = model_losses(model)["cross_entropy"]
    runs = sweep(cfg, model, loss, data)
    t_sweep = time.perf_counter() - t0
    table = analyse(cfg, runs, loss, data)
    for r in table:
        if "b_crit" in r:
            extra = (f", B_noise {r['b_noise']:.1f}, eps_max {r['eps_max']:.3g}, 2/lambda_max "
                     f"{2 / r['lambda_max']:.3g}") if "b_noise" in r else ""  # fmt: skip
            print(f"loss {r['level']:g}: S_min {r['s_min']:.1f}, E_min {r['e_min']:.0f}, "
                  f"B_crit {r['b_crit']:.1f}, B_simple {r['b_simple']:.1f}, "
                  f"ratio {r['ratio']:.2f}{extra}", flush=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    info = {"runs": len(runs), "seconds_total": round(seconds, 1), "sweep": round(t_sweep, 1)}
    _figures(cfg, table, out)
    _write_tables(cfg, runs, table, out, info)
    print(f"wrote {out} in {seconds:.0f} s")
    return runs, table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 batch sizes, 2 loss levels (seconds)")
    ap.add_argument("--out", default=None, help="output folder")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--batch-sizes", default=None, help="comma-separated, e.g. 8,64,512")
    ap.add_argument("--levels", default=None, help="comma-separated train losses, target last")
    ap.add_argument("--max-steps", type=int, default=None)
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    over = {
        "seed": a.seed,
        "batch_sizes": tuple(int(v) for v in a.batch_sizes.split(",")) if a.batch_sizes else None,
        "levels": tuple(float(v) for v in a.levels.split(",")) if a.levels else None,
        "max_steps": a.max_steps,
    }
    cfg = Config(**{**asdict(cfg), **{k: v for k, v in over.items() if v is not None}})
    run(quick=a.quick, out=a.out, config=cfg)


if __name__ == "__main__":
    main()
