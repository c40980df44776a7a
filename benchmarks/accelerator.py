"""The one-script accelerator benchmark: the headline cases once on ``jax.devices()[0]``.

Run ``python benchmarks/accelerator.py`` (or ``make bench-gpu``) on any machine: it first runs every
case at tiny sizes (the ``smoke`` pass, about 30 seconds, which checks that everything runs), then
at the sizes for the device (``full`` on a GPU/TPU, ``cpu-small`` on a CPU), and writes
``accelerator.json`` and ``accelerator.md`` (device name, JAX version, date, one row per case) to
``--out`` (default ``out/accelerator``). ``--smoke`` runs the smoke pass only; ``--sizes`` picks
the table explicitly. Each case is timed as its first call (compile + run) and its steady state
(median of a few calls, ``jax.block_until_ready``).

A lent GPU machine brings its own (newer) Python and JAX with CUDA: the script installs nothing. It
imports visjax from this working tree (the repository root goes first on ``sys.path``) and
otherwise only what visjax itself needs; it reports the versions and any missing dependency, and
checks first that the model interface's use of JAX internals (tracing NNX modules, capturing
tagged layers, also inside ``lax.scan``) works on that JAX. Every case runs in its own
``try``: a failure is recorded with its error and the others go on; the exit status is 1 when any
case failed.

Cases: integrated gradients (32 steps, ResNet-18 at 224x224, batch 64) next to its floor (the same
input-gradient passes written directly) and Captum when a CUDA torch with captum and torchvision is
importable; 41x41 and 201x201 loss planes of the digits CNN and of a ResNet-20 at 32x32 (generated
data); the top-5 Hessian eigenvalues of that ResNet-20; feature visualisation of 64 units of
ResNet-18 at 128px; t-SNE of 60,000 generated points.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from visjax.base.io import atomic_write_text  # noqa: E402

# Sizes per mode. "runs": steady-state calls per case (the median is reported); "plane_runs": for
# the 201x201 planes, the longest cases.
SIZES: dict[str, dict[str, Any]] = {
    "smoke": {
        "runs": 0,
        "plane_runs": 0,
        "ig_batch": 2,
        "ig_size": 32,
        "ig_steps": 4,
        "ig_floor": False,  # the floor is plain JAX and runs in the main pass; its compile is 4 s
        "planes": (3, 5),
        "digits_n": 64,
        "resnet_n": 16,
        "resnet_size": 16,
        "hessian_n": 32,
        "hessian_iter": 5,
        "featviz_units": 2,
        "featviz_size": 32,
        "featviz_steps": 2,
        "tsne_n": 300,
        "tsne_dim": 10,
        "tsne_iter": (10, 10),
    },
    "cpu-small": {
        # Sized so that the whole CPU mode (smoke pass included) takes under 2 minutes on two
        # cores: compilation dominates at these sizes, so each case runs its first call and two
        # steady-state calls (the 21x21 planes and the Hessian one).
        "runs": 2,
        "plane_runs": 1,
        "ig_batch": 4,
        "ig_size": 32,
        "ig_steps": 16,
        "planes": (11, 21),
        "digits_n": 512,
        "resnet_n": 16,
        "resnet_size": 32,
        "hessian_n": 64,
        "hessian_iter": 20,
        "hessian_runs": 1,
        "featviz_units": 4,
        "featviz_size": 64,
        "featviz_steps": 16,
        "tsne_n": 2000,
        "tsne_dim": 50,
        "tsne_iter": (100, 200),
    },
    "full": {
        "runs": 3,
        "plane_runs": 1,
        "ig_batch": 64,
        "ig_size": 224,
        "ig_steps": 32,
        "planes": (41, 201),
        "digits_n": 1347,
        "resnet_n": 256,
        "resnet_size": 32,
        "hessian_n": 1024,
        "hessian_iter": 100,
        "featviz_units": 64,
        "featviz_size": 128,
        "featviz_steps": 128,
        "tsne_n": 60_000,
        "tsne_dim": 50,
        "tsne_iter": (250, 500),
    },
}
FEATVIZ_LAYER = "layer3.0.conv1"


def _ready(value: Any) -> Any:
    return jax.block_until_ready(value)


def timed_value(fn: Callable[[], Any], runs: int) -> tuple[dict[str, Any], Any]:
    """First call (compile + run) and the median of ``runs`` further calls, in seconds, and the
    last call's value (so that a case checks its result without another call)."""
    t = time.perf_counter()
    value = _ready(fn())
    first = time.perf_counter() - t
    steady = []
    for _ in range(runs):
        t = time.perf_counter()
        value = _ready(fn())
        steady.append(time.perf_counter() - t)
    stats = {
        "first_s": first,
        "steady_s": statistics.median(steady) if steady else None,
        "runs": runs,
    }
    return stats, value


def timed(fn: Callable[[], Any], runs: int) -> dict[str, Any]:
    """:func:`timed_value`'s timings alone."""
    return timed_value(fn, runs)[0]


# ---------------------------------------------------------------------------- environment checks


def environment() -> dict[str, Any]:
    dev = jax.devices()[0]
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    missing = []
    for name in ("jaxlib", "flax", "optax", "numpy", "sklearn", "skimage", "tqdm", "matplotlib"):
        if importlib.util.find_spec(name) is None:
            missing.append(name)
            continue
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception as e:
            missing.append(f"{name} ({type(e).__name__}: {e})")
    return {
        "device": getattr(dev, "device_kind", str(dev)),
        "platform": dev.platform,
        "device_count": jax.device_count(),
        "versions": versions,
        "missing": missing,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
    }


def interface_check() -> dict[str, Any]:
    """The model interface on this JAX: an NNX module and a tagged function, layers captured
    (also inside ``lax.scan``), gradients through the capture."""
    from flax import nnx

    from visjax import as_model, tag

    class Tiny(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(3, 4, rngs=rngs)
            self.b = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, x):
            return self.b(jax.nn.relu(self.a(x)))

    x = jnp.ones((2, 3))
    m = as_model(Tiny(nnx.Rngs(0)), input_shape=(3,))
    assert set(m.layers) >= {"a", "b"}, m.layers
    out, acts = m.activations(x, "a")
    assert acts["a"].shape == (2, 4) and out.shape == (2, 2)
    g = jax.grad(lambda z: m.activations(z, "a")[1]["a"].sum())(x)
    assert g.shape == x.shape and bool(jnp.isfinite(g).all())

    def scanned(p, z):
        def body(h, w):
            h = tag(jnp.tanh(h @ w), "step")
            return h, None

        return jax.lax.scan(body, z, p)[0]

    f = as_model(scanned, jnp.stack([jnp.eye(3)] * 4), input_shape=(3,))
    _, acts = jax.jit(lambda z: f.activations(z, "step"))(x)
    assert acts["step"].shape == (4, 2, 3), acts["step"].shape
    return {"layers": list(m.layers)}


# ------------------------------------------------------------------------------------------- cases


# The models are built once per process and shared by the cases (each build converts and traces a
# network: smoke pass on a loaded 2-core CPU, 5-16 s of a case's wall time before its first call).
@functools.cache
def _resnet18_model():
    from benchmarks.resnet18 import random_params, resnet18_model

    return resnet18_model(random_params(0))


@functools.cache
def _digits_model():
    from visjax.zoo.cnn import digits_cnn

    return digits_cnn("nnx")


@functools.cache
def _resnet20_model(size: int):
    from visjax import as_model
    from visjax.zoo.resnet import nnx_module

    # The zoo's CIFAR-style ResNet (depth 20, widths 16/32/64); its stem takes one channel.
    return as_model(nnx_module(depth=20, seed=0), input_shape=(size, size, 1))


def _resnet18(size: int, batch: int):
    model = _resnet18_model()
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(batch, size, size, 3)), jnp.float32)
    t = jnp.asarray(np.arange(batch) % 1000)
    return model, x, t


def case_ig(s: dict[str, Any]) -> dict[str, Any]:
    from visjax import attribution as va
    from visjax.attribution.integrated import rule_nodes

    n, steps = s["ig_batch"], s["ig_steps"]
    model, x, t = _resnet18(s["ig_size"], n)
    res, ours = timed_value(
        lambda: va.integrated_gradients(model, x, t, n_steps=steps, rule="riemann_trapezoid"),
        s["runs"],
    )
    alphas, weights = (
        jnp.asarray(a, jnp.float32) for a in rule_nodes("riemann_trapezoid", n_steps=steps)
    )

    @jax.jit
    def floor(x, t):  # one batch of n examples per step, the input gradients summed over steps
        def f(xb):
            out = model(xb)
            return out[jnp.arange(n), t].sum()

        def one(aw):
            a, w = aw
            return w * jax.grad(f)(a * x)

        return x * jax.lax.map(one, (alphas, weights)).sum(0)

    res["extra"] = {"captum": captum_ig(s)}
    if not s.get("ig_floor", True):
        res["extra"]["floor"] = "skipped in this pass"
        return res
    fl, floor_value = timed_value(lambda: floor(x, t), s["runs"])
    res["extra"].update(floor_first_s=fl["first_s"], floor_steady_s=fl["steady_s"])
    diff = jnp.abs(ours - floor_value).max() / jnp.abs(ours).max()
    res["extra"]["floor_rel_diff"] = float(diff)  # the same passes: float32 reordering only
    return res


def captum_ig(s: dict[str, Any]) -> Any:
    """Captum's IG on a CUDA torch ResNet-18 (seconds, median), or why it was skipped."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "skipped: torch has no CUDA device"
        captum = importlib.import_module("captum.attr")
        torchvision = importlib.import_module("torchvision")
    except Exception as e:
        return f"skipped: {type(e).__name__}: {e}"
    net = torchvision.models.resnet18().cuda().eval()
    n = s["ig_batch"]
    x = torch.rand(n, 3, s["ig_size"], s["ig_size"], device="cuda")
    t = torch.arange(n, device="cuda") % 1000
    ig = captum.IntegratedGradients(net)

    def run():
        ig.attribute(
            x, target=t, n_steps=s["ig_steps"], method="riemann_trapezoid", internal_batch_size=n
        )
        torch.cuda.synchronize()

    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    runs = []
    for _ in range(s["runs"]):
        t0 = time.perf_counter()
        run()
        runs.append(time.perf_counter() - t0)
    return {"first_s": first, "steady_s": statistics.median(runs) if runs else None}


def _digits_cnn(s):
    rng = np.random.default_rng(0)
    n = s["digits_n"]
    data = (
        jnp.asarray(rng.uniform(0, 16, (n, 8, 8, 1)), jnp.float32),
        jnp.asarray(rng.integers(0, 10, n)),
    )
    return _digits_model(), data


def _resnet20(s):
    size, n = s["resnet_size"], s["resnet_n"]
    model = _resnet20_model(size)
    rng = np.random.default_rng(1)
    data = (
        jnp.asarray(rng.normal(size=(n, size, size, 1)), jnp.float32),
        jnp.asarray(rng.integers(0, 10, n)),
    )
    return model, data


def case_plane(which: str, res_index: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(s: dict[str, Any]) -> dict[str, Any]:
        from visjax.landscape import model_losses, plane, random_plane

        model, data = _digits_cnn(s) if which == "digits" else _resnet20(s)
        loss = model_losses(model)["cross_entropy"]
        d1, d2 = random_plane(model.params, key=jax.random.key(0))
        res = s["planes"][res_index]
        xs = np.linspace(-1, 1, res)
        runs = s["runs"] if res_index == 0 else s["plane_runs"]
        out = timed(
            lambda: plane(loss, model.params, d1, d2, xs, xs, data=data, progress=False), runs
        )
        out["extra"] = {"points": res * res, "examples": int(data[0].shape[0])}
        return out

    return run


def case_hessian(s: dict[str, Any]) -> dict[str, Any]:
    from visjax.curvature import top_eigenvalues
    from visjax.landscape import model_losses

    s = dict(s, resnet_n=s["hessian_n"])
    model, data = _resnet20(s)
    loss = model_losses(model)["cross_entropy"]
    values = []

    def run():
        e = top_eigenvalues(
            loss,
            model.params,
            data=data,
            k=5,
            n_iter=s["hessian_iter"],
            key=jax.random.key(0),
            progress=False,
        )
        values[:] = [float(v) for v in np.asarray(e.eigenvalues)]
        return e.eigenvalues

    out = timed(run, s.get("hessian_runs", s["runs"]))
    out["extra"] = {"eigenvalues": values}
    return out


def case_featviz(s: dict[str, Any]) -> dict[str, Any]:
    import optax

    from visjax.featviz import fourier, render, standard_transforms

    size = s["featviz_size"]
    model, _, _ = _resnet18(size, 1)
    units = [(FEATVIZ_LAYER, c) for c in range(s["featviz_units"])]
    param, transforms = fourier((size, size, 3)), standard_transforms()
    opt = optax.adam(0.05)  # one object: a new one per call would recompile

    def run():
        return render(
            model,
            units=units,
            param=param,
            transforms=transforms,
            n_steps=s["featviz_steps"],
            optimizer=opt,
            key=jax.random.key(0),
            progress=False,
        ).images

    return timed(run, s["runs"])


def case_tsne(s: dict[str, Any]) -> dict[str, Any]:
    from visjax.embed import tsne

    n, d = s["tsne_n"], s["tsne_dim"]
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=4.0, size=(10, d))
    x = (centres[rng.integers(0, 10, n)] + rng.normal(size=(n, d))).astype(np.float32)
    early, late = s["tsne_iter"]
    return timed(
        lambda: (
            tsne(
                x, key=jax.random.key(0), early_exaggeration_iter=early, n_iter=late, progress=False
            ).embedding
        ),
        s["runs"],
    )


def case_names(s: dict[str, Any]) -> dict[str, str]:
    """Readable case names for a size table."""
    a, b = s["planes"]
    r = s["resnet_size"]
    return {
        "ig": f"IG {s['ig_steps']} steps, ResNet-18 {s['ig_size']}², batch {s['ig_batch']}",
        "plane_digits_small": f"plane {a}x{a}, digits CNN, {s['digits_n']} ex.",
        "plane_digits_large": f"plane {b}x{b}, digits CNN, {s['digits_n']} ex.",
        "plane_resnet_small": f"plane {a}x{a}, ResNet-20 {r}², {s['resnet_n']} ex.",
        "plane_resnet_large": f"plane {b}x{b}, ResNet-20 {r}², {s['resnet_n']} ex.",
        "hessian": f"top-5 Hessian eigenvalues, ResNet-20 {r}², {s['hessian_n']} ex.",
        "featviz": f"featviz {s['featviz_units']} units, ResNet-18 {s['featviz_size']}px, "
        f"{s['featviz_steps']} steps",
        "tsne": f"t-SNE {s['tsne_n']:,} points",
    }


CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ig": case_ig,
    "plane_digits_small": case_plane("digits", 0),
    "plane_digits_large": case_plane("digits", 1),
    "plane_resnet_small": case_plane("resnet", 0),
    "plane_resnet_large": case_plane("resnet", 1),
    "hessian": case_hessian,
    "featviz": case_featviz,
    "tsne": case_tsne,
}


def run_pass(mode: str, only: set[str] | None = None) -> list[dict[str, Any]]:
    s = SIZES[mode]
    names = case_names(s)
    rows = []
    for key, fn in CASES.items():
        row: dict[str, Any] = {"mode": mode, "case": key, "name": names[key]}
        if only is not None and key not in only:
            row.update(status="skipped", error="failed in the smoke pass")
        else:
            t, cpu = time.perf_counter(), time.process_time()
            try:
                row.update(fn(s))
                row["status"] = "ok"
            except Exception as e:
                row.update(
                    status="failed",
                    error=f"{type(e).__name__}: {e}",
                    traceback=traceback.format_exc(limit=8),
                )
            row["wall_s"] = time.perf_counter() - t
            # CPU seconds of this process (all threads): on a shared, loaded machine the wall
            # clock measures the neighbours, this the case's own work.
            row["cpu_s"] = time.process_time() - cpu
        print(_line(row), flush=True)
        rows.append(row)
    return rows


def _line(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"[{row['mode']}] {row['name']}: {row['status'].upper()} {row.get('error', '')}"
    return (
        f"[{row['mode']}] {row['name']}: first {row['first_s']:.2f} s, "
        f"steady {_fmt(row.get('steady_s')) or '-'} s (case {row['wall_s']:.1f} s wall, "
        f"{row['cpu_s']:.1f} s CPU)"
    )


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.3f}"


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    v = env["versions"]
    lines = [
        f"# visjax accelerator benchmark: {env['device']} ({env['platform']})",
        "",
        f"{env['date']}; jax {v.get('jax')}, jaxlib {v.get('jaxlib', '?')}, "
        f"flax {v.get('flax', '?')}, Python {v.get('python')}; "
        f"{env['device_count']} device(s); missing: {', '.join(env['missing']) or 'none'}.",
        f"Model interface check: {report['interface']['status']}"
        + (f" ({report['interface']['error']})" if report["interface"].get("error") else "")
        + ".",
        "",
        "| mode | case | first call (s) | steady (s) | notes |",
        "|---|---|---:|---:|---|",
    ]
    for r in report["results"]:
        notes = r.get("error", "") if r["status"] != "ok" else ""
        extra = r.get("extra") or {}
        if "floor_steady_s" in extra:
            floor = _fmt(extra["floor_steady_s"]) or "-"
            notes = f"floor {floor} s (first {extra['floor_first_s']:.2f})"
            if "floor_rel_diff" in extra:
                notes += f", max rel. diff. {extra['floor_rel_diff']:.1e}"
            c = extra.get("captum")
            notes += (
                f"; Captum {_fmt(c['steady_s']) or '-'} s (first {c['first_s']:.2f})"
                if isinstance(c, dict)
                else f"; Captum {c}"
            )
        elif "eigenvalues" in extra:
            notes = "λ = " + ", ".join(f"{e:.3g}" for e in extra["eigenvalues"])
        status = "" if r["status"] == "ok" else f"**{r['status']}** "
        lines.append(
            f"| {r['mode']} | {status}{r['name']} | {_fmt(r.get('first_s'))} | "
            f"{_fmt(r.get('steady_s'))} | {notes.replace('|', '/')} |"
        )
    lines.append("")
    lines.append(f"Total wall time {report['total_s']:.1f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the tiny smoke pass only")
    parser.add_argument(
        "--sizes",
        choices=sorted(SIZES),
        default=None,
        help="the main pass's size table (default: full on an accelerator, cpu-small on a CPU)",
    )
    parser.add_argument("--out", default=str(ROOT / "out" / "accelerator"), help="output folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    env = environment()
    print(
        f"device {env['device']} ({env['platform']}), jax {env['versions']['jax']}, "
        f"missing: {env['missing'] or 'none'}",
        flush=True,
    )
    try:
        interface = {"status": "ok", **interface_check()}
    except Exception as e:
        interface = {
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=8),
        }
    print(
        f"model interface check on jax {jax.__version__}: {interface['status']} "
        f"{interface.get('error', '')}",
        flush=True,
    )
    results = run_pass("smoke")
    if not args.smoke:
        mode = args.sizes or ("cpu-small" if env["platform"] == "cpu" else "full")
        passed = {r["case"] for r in results if r["status"] == "ok"}
        results += run_pass(mode, passed)
    report = {
        "environment": env,
        "interface": interface,
        "results": results,
        "total_s": time.perf_counter() - start,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "accelerator.json", json.dumps(report, indent=2, default=str))
    atomic_write_text(out / "accelerator.md", markdown(report))
    print(
        f"wrote {out / 'accelerator.json'} and {out / 'accelerator.md'} "
        f"({report['total_s']:.1f} s)",
        flush=True,
    )
    failed = interface["status"] != "ok" or any(r["status"] != "ok" for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
