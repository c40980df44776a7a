"""A landscape sweep of a zoo model from settings: what `visjax landscape` and the demo run."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from visjax.base.checks import check_batch_size
from visjax.base.io import save_figure
from visjax.base.progress import log as log_line
from visjax.base.progress import resolve_progress
from visjax.landscape import interpolate, model_losses, plane, random_plane, save_npz, save_vtk
from visjax.landscape.losses import NAMES
from visjax.plot.landscape import loss_contour, loss_curve, loss_surface_3d
from visjax.zoo import digits_cnn, digits_resnet, load_digits
from visjax.zoo.pretrained import trained_digits_cnn, trained_digits_resnet


class LandscapeRun(NamedTuple):
    """Paths written by :func:`run_landscape` and the surfaces themselves."""

    surfaces: dict[str, np.ndarray]
    line: dict[str, np.ndarray]
    xs: np.ndarray
    alphas: np.ndarray
    files: dict[str, Path]
    seconds: float


ZOO_MODELS = ("digits_cnn", "digits_resnet", "digits_resnet_noskip")


def _trained(name: str, seed: int, cache: Any):
    if name == "digits_cnn":
        return trained_digits_cnn(seed=seed, cache=cache)
    if name in ("digits_resnet", "digits_resnet_noskip"):
        return trained_digits_resnet(skip=name == "digits_resnet", seed=seed, cache=cache)
    raise ValueError(f"`model` must be one of {ZOO_MODELS}, got {name!r}")


def _initial(name: str, seed: int):
    if name == "digits_cnn":
        return digits_cnn("nnx", seed=seed)
    return digits_resnet(skip=name == "digits_resnet", seed=seed)


def run_landscape(
    out: str | Path,
    *,
    model: str = "digits_cnn",
    seed: int = 0,
    cache: Any = None,
    **settings: Any,
) -> LandscapeRun:
    """:func:`sweep_trained` on a trained zoo model (trained once, then cached).

    Args:
      out: the output folder.
      model: one of ``ZOO_MODELS``.
      seed: the model's seed (initial weights, shuffling) and the plane's.
      cache: the weight cache folder.
      settings: passed to :func:`sweep_trained`.
    """
    if model not in ZOO_MODELS:
        raise ValueError(f"`model` must be one of {ZOO_MODELS}, got {model!r}")
    _check_settings(**settings)  # before training
    trained = _trained(model, seed, cache).model
    return sweep_trained(
        out, trained, _initial(model, seed).params, name=model, seed=seed, **settings
    )


def _check_settings(
    *,
    resolution: int = 21,
    span: float = 1.0,
    metrics: tuple[str, ...] = (),
    batch_size: Any = "auto",
    **_: Any,
) -> None:
    check_batch_size(batch_size)
    if not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"`resolution` must be an int >= 2, got {resolution!r}")
    if not span > 0:
        raise ValueError(f"`span` must be positive, got {span!r}")
    unknown = [m for m in metrics if m not in NAMES]
    if unknown or not metrics:
        raise ValueError(f"unknown loss name(s) {unknown}; known: {list(NAMES)}")


def sweep_trained(
    out: str | Path,
    m: Any,
    initial_params: Any,
    *,
    name: str = "model",
    resolution: int = 21,
    span: float = 1.0,
    metrics: tuple[str, ...] = ("cross_entropy", "accuracy"),
    normalization: str | None = "filter",
    batch_size: int | str | None = "auto",
    strategy: str = "auto",
    seed: int = 0,
    progress: bool | str = "auto",
    resume: bool = True,
    devices: Any = None,
    log: Callable[[str], None] = log_line,
) -> LandscapeRun:
    """Sweep a trained digits model: the line from its initial to its trained weights and a
    (filter-normalised) random plane around the trained weights, over the digits training set.

    Writes ``landscape.npz`` (surfaces, grids, configuration), ``landscape_<metric>.vtp``
    (ParaView), ``line.png``, ``contour.png`` and ``surface3d.png`` into ``out``, and the
    finished blocks of both sweeps into ``out/sweep/{line,plane}``: an interrupted run resumes
    from there (``resume=True``); ``resume=False`` deletes them and starts over. A run with other
    settings in the same folder raises a ``ValueError`` (resume it with the old settings, or pass
    ``resume=False``). ``devices``: the points are sharded over them (default: all devices).
    ``batch_size``: data examples per chunk (``"auto"``: see :mod:`visjax.landscape.surface`).
    ``progress``: bars over both sweeps' blocks (``"auto"``: when standard error is a terminal).
    ``log``: where log lines go (default :func:`visjax.base.progress.log`, which never
    overprints a bar).
    """
    progress = resolve_progress(progress)
    _check_settings(resolution=resolution, span=span, metrics=metrics, batch_size=batch_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweeps = out / "sweep"
    if not resume and sweeps.exists():
        shutil.rmtree(sweeps)
    elif resume and (sweeps / "plane").exists():
        log(f"resuming from {sweeps}")
    losses = model_losses(m, *metrics)  # checks the names before any work
    train = load_digits().train
    data = (train.x, train.y)
    t0 = time.perf_counter()
    alphas = np.linspace(-0.5, 1.5, 2 * resolution - 1, dtype=np.float32)
    log(f"line from initial to trained weights: {alphas.size} points")
    line = interpolate(
        losses,
        initial_params,
        m.params,
        alphas,
        data=data,
        batch_size=batch_size,
        strategy=strategy,
        progress=progress,
        devices=devices,
        run_dir=sweeps / "line",
    )
    d1, d2 = random_plane(m.params, key=jax.random.key(seed), normalization=normalization)
    xs = np.linspace(-span, span, resolution, dtype=np.float32)
    log(f"{normalization}-normalised random plane: {resolution}x{resolution} points")
    surfaces = plane(
        losses,
        m.params,
        d1,
        d2,
        xs,
        xs,
        data=data,
        batch_size=batch_size,
        strategy=strategy,
        progress=progress,
        devices=devices,
        run_dir=sweeps / "plane",
    )
    seconds = time.perf_counter() - t0
    config = dict(
        model=name,
        resolution=resolution,
        span=span,
        metrics=list(metrics),
        normalization=normalization,
        batch_size=batch_size,
        strategy=strategy,
        seed=seed,
        data="digits train (1347)",
    )
    files = {
        "npz": save_npz(
            out / "landscape.npz",
            xs=xs,
            ys=xs,
            alphas=alphas,
            **{f"surface_{k}": v for k, v in surfaces.items()},
            **{f"line_{k}": v for k, v in line.items()},
            config=json.dumps(config),
        )
    }
    for k, v in surfaces.items():
        files[f"vtp_{k}"] = save_vtk(out / f"landscape_{k}.vtp", xs, xs, v, name=k)
    main = metrics[0]
    files["line"] = save_figure(
        loss_curve(
            alphas, line, marks={"init": 0.0, "trained": 1.0}, title=f"{name}: init -> trained"
        ),
        out / "line.png",
    )
    files["contour"] = save_figure(
        loss_contour(
            xs, xs, surfaces[main], marks={"trained": (0.0, 0.0)}, title=f"{name}: {main}"
        ),
        out / "contour.png",
    )
    files["surface3d"] = save_figure(
        loss_surface_3d(xs, xs, surfaces[main], title=f"{name}: {main}"), out / "surface3d.png"
    )
    log(f"swept {alphas.size + resolution**2} points in {seconds:.1f} s; wrote {out}")
    return LandscapeRun(surfaces, line, xs, alphas, files, seconds)
