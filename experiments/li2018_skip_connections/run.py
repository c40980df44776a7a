"""Li et al. (2018), "Visualizing the Loss Landscape of Neural Nets": skip connections.

Claim reproduced: with filter-normalised random planes, the loss surface of a deep ResNet stays
convex-looking, while the same network without skip connections turns chaotic (many local
minima, large regions of negative curvature) as depth grows. The paper's convexity measure is
``|λ_min| / λ_max`` of the Hessian at points of the plane (their Fig. 7): near 0 means locally
convex, large means strong negative curvature.

Setup here (the "same small image task" for every network): scikit-learn's 8x8 digits
(1,347 training / 450 test images), CIFAR-style ResNets :func:`visjax.zoo.digits_resnet` of
depth 20 and 56 (``width=16``: stages of 16, 32, 64 channels), with and without skips, with a
BatchNorm after every convolution (``norm=True``, as Li et al.), each trained in train mode by
:func:`experiments.li2018_skip_connections.bn.trained_bn_resnet` (Adam 3e-3 after a one-epoch
warm-up, batch 64, the same number of epochs for every network, cached), running statistics
recomputed on the training split after training and then held fixed (inference mode) on the
plane; ``norm=False`` (``--no-norm``) gives the plain networks of
:func:`visjax.zoo.pretrained.trained_digits_resnet`, whose no-short versions stay at chance. Around
each trained minimum: a filter-normalised random plane (``random_plane(normalization="filter",
ignore="biasbn")``, Li et al.'s convention: zero on biases and BatchNorm parameters, one key
shared by all networks), the training loss on a grid over ``[-1, 1]²``, and
Lanczos (``visjax.curvature.lanczos``, full reorthogonalisation) on a coarse sub-grid of the same
plane, giving the extreme Ritz values ``λ_max`` and ``λ_min`` (most negative) of the Hessian of
the loss on a fixed subset of training images.

Run: ``python -m experiments.li2018_skip_connections.run [--quick] [--out DIR]``.
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
from jax.flatten_util import ravel_pytree

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    depths: tuple[int, ...] = (20, 56)
    width: int = 16
    epochs: int = 10
    learning_rate: float = 3e-3
    norm: bool = True  # BatchNorm, trained in train mode (as Li et al.); False: the plain nets
    warmup_epochs: int = 1  # linear learning-rate warm-up (BatchNorm training only)
    seed: int = 0
    grid: int = 21  # surface points per axis, over [-extent, extent]
    extent: float = 1.0
    surface_images: int = 512  # first training images for the surface
    hessian_stride: int = 5  # Lanczos at every `hessian_stride`-th grid point per axis (5x5)
    hessian_images: int = 128  # first training images for the Hessian
    lanczos_steps: int = 12
    batch_size: int = 256  # data chunk for losses and HVPs


FULL = Config()
QUICK = Config(
    depths=(8,),
    epochs=2,
    grid=5,
    surface_images=200,
    hessian_stride=2,
    hessian_images=200,
    lanczos_steps=8,
    batch_size=200,
)


def _name(depth: int, skip: bool) -> str:
    return f"resnet{depth}" + ("" if skip else "-noshort")


def _local_minima(z: np.ndarray) -> int:
    """Strict local minima of a grid surface (each cell against its 8 neighbours, edges too)."""
    pad = np.pad(z, 1, constant_values=np.inf)
    m, n = z.shape
    count = 0
    for i in range(m):
        for j in range(n):
            nb = pad[i : i + 3, j : j + 3].copy()
            nb[1, 1] = np.inf
            count += bool(z[i, j] < nb.min())
    return count


def extreme_eigenvalues(loss_fn, params, data, cfg: Config, key) -> tuple[float, float]:
    """``(λ_min, λ_max)``: extreme Ritz values of ``cfg.lanczos_steps`` Lanczos steps."""
    from visjax.curvature import lanczos
    from visjax.curvature.spectrum import Matvec, tridiagonal_eigh

    flat, _ = ravel_pytree(params)
    mv = Matvec(loss_fn, params, data, cfg.batch_size)
    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    res = lanczos(mv, v0, min(cfg.lanczos_steps, flat.size))
    theta, _ = tridiagonal_eigh(res.alpha, res.beta)
    return float(theta.min()), float(theta.max())


def study(depth: int, skip: bool, cfg: Config, data, plane_key, cache) -> dict:
    """Train (or load) one network; its surface and convexity map on a filter-normalised plane."""
    from visjax.landscape import model_losses, plane, random_plane
    from visjax.zoo.pretrained import trained_digits_resnet

    from .bn import trained_bn_resnet

    t0 = time.perf_counter()
    if cfg.norm:
        trained = trained_bn_resnet(
            skip=skip,
            depth=depth,
            width=cfg.width,
            seed=cfg.seed,
            epochs=cfg.epochs,
            learning_rate=cfg.learning_rate,
            warmup_epochs=cfg.warmup_epochs,
            cache=cache,
        )
        model, from_cache = trained["model"], trained["from_cache"]
        hist = trained["history"]
    else:
        trained = trained_digits_resnet(
            skip=skip,
            depth=depth,
            width=cfg.width,
            seed=cfg.seed,
            epochs=cfg.epochs,
            learning_rate=cfg.learning_rate,
            cache=cache,
        )
        model, from_cache = trained.model, trained.from_cache
        hist = trained.history._asdict()
    t_train = time.perf_counter() - t0
    params = model.params
    loss_fn = model_losses(model, "cross_entropy")["cross_entropy"]
    d1, d2 = random_plane(params, key=plane_key, normalization="filter", ignore="biasbn")
    xs = np.linspace(-cfg.extent, cfg.extent, cfg.grid, dtype=np.float32)

    t0 = time.perf_counter()
    surf_data = (
        jnp.asarray(data.x[: cfg.surface_images]),
        jnp.asarray(data.y[: cfg.surface_images]),
    )
    surface = np.asarray(
        plane(loss_fn, params, d1, d2, xs, xs, data=surf_data, batch_size=cfg.batch_size)["loss"]
    )
    t_surface = time.perf_counter() - t0

    t0 = time.perf_counter()
    hess_data = (
        jnp.asarray(data.x[: cfg.hessian_images]),
        jnp.asarray(data.y[: cfg.hessian_images]),
    )
    idx = np.arange(0, cfg.grid, cfg.hessian_stride)
    hx = xs[idx]
    lam_min = np.full((idx.size, idx.size), np.nan)
    lam_max = np.full((idx.size, idx.size), np.nan)
    key = jax.random.key(cfg.seed + 1)
    for a, x in enumerate(hx):
        for b, y in enumerate(hx):
            p = jax.tree.map(lambda w, u, v, x=x, y=y: w + x * u + y * v, params, d1, d2)
            lo, hi = extreme_eigenvalues(
                loss_fn, p, hess_data, cfg, jax.random.fold_in(key, a * 97 + b)
            )
            lam_min[a, b], lam_max[a, b] = lo, hi
    t_hessian = time.perf_counter() - t0
    # Li et al.'s map: |λ_min / λ_max|; where λ_min >= 0 the Hessian (restricted to the Krylov
    # space) has no negative curvature and the ratio is 0 by their convention.
    ratio = np.where(lam_min < 0, np.abs(lam_min) / np.abs(lam_max), 0.0)
    centre = idx.size // 2
    return {
        "name": _name(depth, skip),
        "depth": depth,
        "skip": skip,
        "parameters": int(ravel_pytree(params)[0].size),
        "train_loss": hist["train_loss"][-1],
        "train_accuracy": hist["train_accuracy"][-1],
        "test_accuracy": hist["test_accuracy"][-1],
        "loss_centre": float(surface[cfg.grid // 2, cfg.grid // 2]),
        "loss_min": float(np.nanmin(surface)),
        "loss_max": float(np.nanmax(surface)),
        "local_minima": _local_minima(surface),
        "lambda_max_centre": float(lam_max[centre, centre]),
        "lambda_min_centre": float(lam_min[centre, centre]),
        "ratio_centre": float(ratio[centre, centre]),
        "ratio_mean": float(np.mean(ratio)),
        "ratio_max": float(np.max(ratio)),
        "frac_ratio_gt_0.1": float(np.mean(ratio > 0.1)),
        "seconds_train": round(t_train, 1),
        "from_cache": from_cache,
        "seconds_surface": round(t_surface, 1),
        "seconds_hessian": round(t_hessian, 1),
        # arrays (not in the table)
        "_xs": xs,
        "_surface": surface,
        "_hx": hx,
        "_ratio": ratio,
        "_lam_min": lam_min,
        "_lam_max": lam_max,
    }


def _cell_extent(h: np.ndarray) -> list[float]:
    half = (h[1] - h[0]) / 2 if h.size > 1 else 0.5
    return [h[0] - half, h[-1] + half, h[0] - half, h[-1] + half]


def _figures(results: list[dict], out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    from visjax.base.io import save_figure
    from visjax.plot import landscape as lp

    n = len(results)
    paths = []
    fig = Figure(figsize=(4.2 * n, 3.8), layout="constrained")
    for ax, r in zip(fig.subplots(1, n, squeeze=False)[0], results, strict=True):
        lp.loss_contour(
            r["_xs"],
            r["_xs"],
            r["_surface"],
            ax=ax,
            levels=np.arange(0.1, 10.01, 0.5),
            labels=False,
            title=f"{r['name']} (test acc {r['test_accuracy']:.1%})",
        )
    fig.suptitle("Training loss on a filter-normalised random plane (Li et al. 2018, Fig. 5)")
    paths.append(save_figure(fig, out / "contours.png"))

    fig = Figure(figsize=(4.2 * n, 3.8), layout="constrained")
    for ax, r in zip(fig.subplots(1, n, squeeze=False)[0], results, strict=True):
        lp.loss_contour(
            r["_xs"],
            r["_xs"],
            r["_surface"],
            ax=ax,
            levels=20,
            log=True,
            labels=False,
            title=r["name"],
        )
    fig.suptitle("Same surfaces, log-spaced levels over each network's own range")
    paths.append(save_figure(fig, out / "contours_log.png"))

    fig = Figure(figsize=(4.2 * n, 3.6), layout="constrained")
    for ax, r in zip(fig.subplots(1, n, squeeze=False)[0], results, strict=True):
        im = ax.imshow(
            r["_ratio"].T,
            origin="lower",
            cmap="coolwarm",
            vmin=0,
            vmax=1,
            extent=_cell_extent(r["_hx"]),
        )
        for a, x in enumerate(r["_hx"]):
            for b, y in enumerate(r["_hx"]):
                ax.text(x, y, f"{r['_ratio'][a, b]:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"{r['name']}: |λmin/λmax|")
        ax.set_xlabel("alpha")
        ax.set_ylabel("beta")
        fig.colorbar(im, ax=ax)
    fig.suptitle("Convexity map (blue: convex, red: strong negative curvature; Li et al. Fig. 7)")
    paths.append(save_figure(fig, out / "convexity.png"))
    return paths


TABLE = [
    "name", "depth", "skip", "parameters", "train_loss", "train_accuracy", "test_accuracy",
    "loss_centre", "loss_min", "loss_max", "local_minima", "lambda_max_centre",
    "lambda_min_centre", "ratio_centre", "ratio_mean", "ratio_max", "frac_ratio_gt_0.1",
    "seconds_train", "from_cache", "seconds_surface", "seconds_hessian",
]  # fmt: skip


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _write_tables(results: list[dict], cfg: Config, out: Path, seconds: float) -> None:
    from visjax.base.io import atomic_write_bytes

    rows = [{k: r[k] for k in TABLE} for r in results]
    buf = [",".join(TABLE)]
    w = csv.DictWriter(_Lines(buf), fieldnames=TABLE, lineterminator="")
    for row in rows:
        w.writerow(row)
    atomic_write_bytes(out / "results.csv", ("\n".join(buf) + "\n").encode())
    md = [
        "# Li et al. (2018) skip connections: results",
        "",
        f"Config: `{json.dumps(asdict(cfg))}`; total {seconds:.0f} s.",
        "",
        "| " + " | ".join(TABLE) + " |",
        "|" + "---|" * len(TABLE),
    ]
    md += ["| " + " | ".join(_fmt(row[k]) for k in TABLE) + " |" for row in rows]
    md += [
        "",
        "Convexity ratio |λmin/λmax| on the Hessian sub-grid (rows alpha, columns beta):",
        "",
    ]
    for r in results:
        md += [f"**{r['name']}** (grid {', '.join(f'{v:g}' for v in r['_hx'])})", "", "```"]
        md += ["  ".join(f"{v:6.3f}" for v in row) for row in r["_ratio"]]
        md += ["```", ""]
    atomic_write_bytes(out / "results.md", ("\n".join(md) + "\n").encode())
    arrays = {}
    for r in results:
        for k in ("_xs", "_surface", "_hx", "_ratio", "_lam_min", "_lam_max"):
            arrays[f"{r['name']}{k.replace('_', '.', 1)}"] = r[k]
    np.savez(out / "surfaces.npz", **arrays)


class _Lines:
    def __init__(self, buf):
        self.buf = buf

    def write(self, s):
        self.buf.append(s)


def run(
    quick: bool = False, out: str | Path | None = None, cache=None, config: Config | None = None
):
    """Run the experiment; returns the table rows (dicts, arrays under keys starting with ``_``)."""
    from visjax.zoo.data import load_digits

    cfg = config or (QUICK if quick else FULL)
    out = Path(out) if out is not None else HERE / ("out_quick" if quick else "out")
    out.mkdir(parents=True, exist_ok=True)
    data = load_digits().train
    plane_key = jax.random.key(cfg.seed)
    t0 = time.perf_counter()
    results = []
    for depth in cfg.depths:
        for skip in (True, False):
            r = study(depth, skip, cfg, data, plane_key, cache)
            print(
                f"{r['name']}: test acc {r['test_accuracy']:.3f}, loss at centre "
                f"{r['loss_centre']:.3g}, ratio centre/mean/max {r['ratio_centre']:.3f}/"
                f"{r['ratio_mean']:.3f}/{r['ratio_max']:.3f}, local minima {r['local_minima']}, "
                f"times train/surface/hessian {r['seconds_train']}/{r['seconds_surface']}/"
                f"{r['seconds_hessian']} s",
                flush=True,
            )
            results.append(r)
            # written after every network, so an interrupted run leaves its partial results
            seconds = time.perf_counter() - t0
            _figures(results, out)
            _write_tables(results, cfg, out, seconds)
    print(f"wrote {out} in {seconds:.0f} s")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny configuration (depth 8, ~1 min)")
    ap.add_argument("--out", default=None, help="output folder")
    ap.add_argument("--cache", default=None, help="weight cache folder (default $VISJAX_CACHE)")
    ap.add_argument("--depths", default=None, help="comma-separated depths, e.g. 20,56")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--learning-rate", type=float, default=None)
    ap.add_argument("--warmup-epochs", type=int, default=None)
    ap.add_argument(
        "--no-norm", action="store_true", help="the plain networks (no BatchNorm), as before"
    )
    ap.add_argument("--grid", type=int, default=None)
    ap.add_argument("--hessian-stride", type=int, default=None)
    ap.add_argument("--surface-images", type=int, default=None)
    ap.add_argument("--hessian-images", type=int, default=None)
    ap.add_argument("--lanczos-steps", type=int, default=None)
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    over = {
        "depths": tuple(int(d) for d in a.depths.split(",")) if a.depths else None,
        "epochs": a.epochs,
        "seed": a.seed,
        "learning_rate": a.learning_rate,
        "warmup_epochs": a.warmup_epochs,
        "norm": False if a.no_norm else None,
        "grid": a.grid,
        "hessian_stride": a.hessian_stride,
        "surface_images": a.surface_images,
        "hessian_images": a.hessian_images,
        "lanczos_steps": a.lanczos_steps,
    }
    cfg = Config(**{**asdict(cfg), **{k: v for k, v in over.items() if v is not None}})
    run(quick=a.quick, out=a.out, cache=a.cache, config=cfg)


if __name__ == "__main__":
    main()
