"""Cohen, Kaur, Li, Kolter, Talwalkar (2021), "Gradient Descent on Neural Networks Typically
Occurs at the Edge of Stability".

Claim reproduced: with full-batch gradient descent at step size ``η``, the sharpness (the top
eigenvalue ``λ_max`` of the training loss's Hessian) first rises ("progressive sharpening") until it
reaches ``2/η``, the largest value for which gradient descent on the local quadratic is stable,
and then hovers just at or above ``2/η`` ("edge of stability") while the training loss keeps
decreasing over long time scales, non-monotonically.

Setup here: the first 1,000 images of scikit-learn's 8x8 digits training split (pixels centred,
flattened to 64 inputs), a tanh MLP 64-64-64-10 (LeCun-normal kernels, zero biases; the paper's
fully connected tanh networks), the square loss ``0.5 ‖f(x) − onehot(y)‖²`` averaged over the
examples (the paper's MSE setting, where sharpening is strongest), plain full-batch gradient
descent (``optax.sgd(η)``, no momentum) at several ``η`` from the same initialisation. Every
``every`` steps, ``λ_max`` of the full-batch Hessian by :func:`visjax.curvature.top_eigenvalues`
(Lanczos, relative tolerance 1e-3, the whole 1,000 images in one batch).

Run: ``python -m experiments.cohen2021_edge_of_stability.run [--quick] [--seed S] [--out DIR]``.
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

    etas: tuple[float, ...] = (0.4, 0.2, 0.1)
    steps: int = 6000
    every: int = 20  # λ_max every `every` steps
    images: int = 1000
    width: int = 64
    depth: int = 2  # hidden layers
    seed: int = 0
    lanczos_steps: int = 40
    tol: float = 1e-3
    late: float = 0.5  # "late" = the last `late` fraction of the steps
    band: float = 0.1  # "at the edge" = |λ_max − 2/η| ≤ band · 2/η


FULL = Config()
QUICK = Config(etas=(0.5,), steps=300, every=50, images=200, width=32, lanczos_steps=20)


def init_params(key, sizes):
    """LeCun-normal kernels, zero biases (Flax's default for ``nnx.Linear``)."""
    keys = jax.random.split(key, len(sizes) - 1)
    init = jax.nn.initializers.lecun_normal()
    return [
        {"kernel": init(k, (a, b)), "bias": jnp.zeros(b)}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def apply(params, x):
    """The tanh MLP."""
    for i, layer in enumerate(params):
        x = x @ layer["kernel"] + layer["bias"]
        if i < len(params) - 1:
            x = jnp.tanh(x)
    return x


def mse(params, batch):
    """``0.5 ‖f(x) − onehot(y)‖²``, the mean over the batch."""
    x, t = batch
    return 0.5 * jnp.mean(jnp.sum((apply(params, x) - t) ** 2, axis=-1))


def dataset(cfg: Config):
    """``(x (n, 64) centred, one-hot targets (n, 10))`` and the integer labels."""
    from visjax.zoo.data import load_digits

    d = load_digits().train
    x = d.x[: cfg.images].reshape(cfg.images, -1)
    x = (x - x.mean(0)).astype(np.float32)
    y = d.y[: cfg.images]
    return (jnp.asarray(x), jax.nn.one_hot(y, 10)), y


def descend(eta: float, params0, data, labels, cfg: Config) -> dict:
    """Full-batch gradient descent at step size ``eta``, ``λ_max`` every ``cfg.every`` steps."""
    import optax

    from visjax.curvature import top_eigenvalues

    opt = optax.sgd(eta)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(mse)(params, data)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    params, state = params0, opt.init(params0)
    losses = np.zeros(cfg.steps + 1)
    ev_steps, sharp, hvps = [], [], 0
    key = jax.random.key(cfg.seed + 1)
    t0 = time.perf_counter()
    t_eig = 0.0
    for t in range(cfg.steps + 1):
        if t % cfg.every == 0 or t == cfg.steps:
            te = time.perf_counter()
            e = top_eigenvalues(
                mse,
                params,
                data=data,
                k=1,
                n_iter=cfg.lanczos_steps,
                tol=cfg.tol,
                key=jax.random.fold_in(key, t),
                batch_size=None,
                progress=False,
            )
            t_eig += time.perf_counter() - te
            ev_steps.append(t)
            sharp.append(float(e.eigenvalues[0]))
            hvps += e.n_hvp
        if t == cfg.steps:
            losses[t] = float(mse(params, data))
            break
        params, state, loss = step(params, state)
        losses[t] = float(loss)
        if not np.isfinite(losses[t]):
            raise FloatingPointError(f"η={eta}: gradient descent diverged at step {t}")
    seconds = time.perf_counter() - t0
    acc = float(np.mean(np.asarray(apply(params, data[0]).argmax(-1)) == labels))
    ev_steps, sharp = np.array(ev_steps), np.array(sharp)
    edge = 2.0 / eta
    late = ev_steps >= (1 - cfg.late) * cfg.steps
    lt = slice(int((1 - cfg.late) * cfg.steps), cfg.steps)
    reached = np.nonzero(sharp >= (1 - cfg.band) * edge)[0]
    return {
        "eta": eta,
        "two_over_eta": edge,
        "sharpness_init": float(sharp[0]),
        "sharpness_max": float(sharp.max()),
        "sharpness_final": float(sharp[-1]),
        "step_reach_edge": int(ev_steps[reached[0]]) if reached.size else -1,
        "late_within_band": float(np.mean(np.abs(sharp[late] - edge) <= cfg.band * edge)),
        "late_sharpness_mean": float(sharp[late].mean()),
        "late_sharpness_over_edge": float(sharp[late].mean() / edge),
        "late_loss_increases": float(np.mean(np.diff(losses[lt]) > 0)),
        "loss_init": float(losses[0]),
        "loss_final": float(losses[-1]),
        "train_accuracy": acc,
        "hvps": int(hvps),
        "seconds": round(seconds, 1),
        "seconds_eigen": round(t_eig, 1),
        "_losses": losses,
        "_ev_steps": ev_steps,
        "_sharpness": sharp,
    }


TABLE = [
    "eta", "two_over_eta", "sharpness_init", "sharpness_max", "sharpness_final",
    "step_reach_edge", "late_within_band", "late_sharpness_mean", "late_sharpness_over_edge",
    "late_loss_increases", "loss_init", "loss_final", "train_accuracy", "hvps", "seconds",
    "seconds_eigen",
]  # fmt: skip


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _figures(results: list[dict], cfg: Config, out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    from visjax.base.io import save_figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_loss, ax_sharp = fig.subplots(1, 2)
    colours = [f"C{i}" for i in range(len(results))]
    for r, c in zip(results, colours, strict=True):
        ax_loss.plot(np.arange(r["_losses"].size), r["_losses"], c, lw=0.8, label=f"η={r['eta']:g}")
        ax_sharp.plot(r["_ev_steps"], r["_sharpness"], c, lw=1.2, label=f"η={r['eta']:g}")
        ax_sharp.axhline(r["two_over_eta"], color=c, ls="--", lw=0.8)
        ax_sharp.text(cfg.steps, r["two_over_eta"], f" 2/η={r['two_over_eta']:g}", color=c,
                      va="bottom", ha="right", fontsize=8)  # fmt: skip
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (MSE)")
    ax_loss.set_title("Full-batch gradient descent")
    ax_loss.legend()
    ax_sharp.set_xlabel("step")
    ax_sharp.set_ylabel("sharpness λ_max")
    ax_sharp.set_title("Top Hessian eigenvalue (dashed: 2/η)")
    ax_sharp.legend()
    fig.suptitle(f"Edge of stability (Cohen et al. 2021): tanh MLP, {cfg.images} digits, MSE")
    paths = [save_figure(fig, out / "sharpness.png")]

    # close-up of the late phase: loss non-monotone while λ_max hovers at 2/η
    fig = Figure(figsize=(4.2 * len(results), 3.6), layout="constrained")
    for ax, r, c in zip(fig.subplots(1, len(results), squeeze=False)[0], results, colours,
                        strict=True):  # fmt: skip
        start = int((1 - cfg.late) * cfg.steps)
        s = np.arange(start, cfg.steps + 1)
        ax.plot(s, r["_losses"][start:], c, lw=0.6)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss", color=c)
        ax2 = ax.twinx()
        m = r["_ev_steps"] >= start
        ax2.plot(r["_ev_steps"][m], r["_sharpness"][m], "k.", ms=3)
        ax2.axhline(r["two_over_eta"], color="k", ls="--", lw=0.8)
        ax2.set_ylabel("λ_max")
        ax.set_title(f"η={r['eta']:g}: late phase")
    paths.append(save_figure(fig, out / "late_phase.png"))
    return paths


def _write_tables(results: list[dict], cfg: Config, out: Path, info: dict) -> None:
    from visjax.base.io import atomic_write_bytes

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow({k: r[k] for k in TABLE})
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    md = [
        "# Cohen et al. (2021) edge of stability: results",
        "",
        f"Config: `{json.dumps(asdict(cfg))}`; {json.dumps(info)}.",
        "",
        "| " + " | ".join(TABLE) + " |",
        "|" + "---|" * len(TABLE),
    ]
    md += ["| " + " | ".join(_fmt(r[k]) for k in TABLE) + " |" for r in results]
    md += [
        "",
        f"`late_within_band`: fraction of the λ_max evaluations in the last {cfg.late:.0%} of "
        f"the steps with |λ_max − 2/η| ≤ {cfg.band:.0%} of 2/η; `late_loss_increases`: fraction "
        "of those steps at which the loss went up.",
    ]
    atomic_write_bytes(out / "results.md", ("\n".join(md) + "\n").encode())
    arrays = {}
    for r in results:
        for k in ("_losses", "_ev_steps", "_sharpness"):
            arrays[f"eta{r['eta']:g}.{k[1:]}"] = r[k]
    np.savez(out / "curves.npz", **arrays)


def run(quick: bool = False, out: str | Path | None = None, config: Config | None = None):
    """Run the experiment; returns one dict per step size (arrays under keys starting ``_``)."""
    cfg = config or (QUICK if quick else FULL)
    out = Path(out) if out is not None else HERE / ("out_quick" if quick else "out")
    out.mkdir(parents=True, exist_ok=True)
    data, labels = dataset(cfg)
    sizes = (data[0].shape[1],) + (cfg.width,) * cfg.depth + (10,)
    params0 = init_params(jax.random.key(cfg.seed), sizes)
    t0 = time.perf_counter()
    results = []
    for eta in cfg.etas:
        r = descend(eta, params0, data, labels, cfg)
        print(
            f"η={eta:g} (2/η={r['two_over_eta']:.3g}): λ_max {r['sharpness_init']:.3g} -> max "
            f"{r['sharpness_max']:.3g}, final {r['sharpness_final']:.3g}; late within "
            f"{cfg.band:.0%}: {r['late_within_band']:.2f}; loss {r['loss_init']:.3g} -> "
            f"{r['loss_final']:.3g} (late increases {r['late_loss_increases']:.2f}); "
            f"{r['seconds']} s ({r['seconds_eigen']} s Lanczos)",
            flush=True,
        )
        results.append(r)
        seconds = time.perf_counter() - t0
        info = {"parameters": int(sum(a.size for a in jax.tree.leaves(params0))),
                "seconds_total": round(seconds, 1)}  # fmt: skip
        _figures(results, cfg, out)
        _write_tables(results, cfg, out, info)
    print(f"wrote {out} in {seconds:.0f} s")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one η, 300 steps, 200 images (seconds)")
    ap.add_argument("--out", default=None, help="output folder")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--etas", default=None, help="comma-separated step sizes, e.g. 0.4,0.2,0.1")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--every", type=int, default=None)
    ap.add_argument("--images", type=int, default=None)
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    over = {
        "etas": tuple(float(e) for e in a.etas.split(",")) if a.etas else None,
        "seed": a.seed,
        "steps": a.steps,
        "every": a.every,
        "images": a.images,
    }
    cfg = Config(**{**asdict(cfg), **{k: v for k, v in over.items() if v is not None}})
    run(quick=a.quick, out=a.out, config=cfg)


if __name__ == "__main__":
    main()
