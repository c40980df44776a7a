"""The report's sections, listed in one place, and the runners: ``visjax demo`` and :func:`write`.

:data:`SECTIONS` lists every section of ``report.html`` in report order, each a
:class:`SectionSpec` (short name, title, ``build(ctx) -> Section``, and whether it needs the demo's
own models). :func:`run_demo` builds all of them (or those named) with one shared
:class:`~visjax.report.context.DemoContext` and writes the demo's report; :func:`write` builds the
sections that apply to any classifier for a user's model and data. A new section is a builder
function in its module under ``visjax/report/`` and one entry here.

Each section is timed; a section that does not apply raises
:class:`~visjax.report.context.SkipSection` (logged, listed as skipped); a section that fails is
recorded in the report (its error and traceback in place of its figures) and the others still run;
the report is written, then :class:`SectionError` names the failed sections. An ``OSError`` (an
unwritable output or cache folder) stops the run at once: every section would fail the same way.

Example:
  >>> section_names()[:3]
  ['model', 'data', 'training']
  >>> [s.name for s in select_sections(["landscape", "model"])]
  ['model', 'landscape']
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.progress import log as log_line
from visjax.base.progress import progress_bar, resolve_progress
from visjax.model import Model, as_model
from visjax.report.attention import attention_section
from visjax.report.attribution import attribution_section, cam_section, perturbation_section
from visjax.report.context import DemoContext, ReportContext, SkipSection
from visjax.report.curvature import curvature_section
from visjax.report.data import data_section
from visjax.report.embed import embed_section
from visjax.report.evaluation import evaluation_section
from visjax.report.featviz import dream_section, featviz_section
from visjax.report.gradstats import gradstats_section
from visjax.report.html import Section, Timing, write_report
from visjax.report.landscape import landscape_section, trajectory_section
from visjax.report.localisation import localisation_section
from visjax.report.lrp import lrp_section
from visjax.report.sections import model_section, training_section
from visjax.zoo import Split
from visjax.zoo.train import History


class SectionSpec(NamedTuple):
    """One section of the report: its name (for ``--sections``), title and builder.

    ``demo_only``: the builder needs the demo's own models or data (``ctx.digits_cnn``, the zoo's
    other models, fixed layer names); :func:`write` skips it for a user's model.
    """

    name: str
    title: str
    build: Callable[[ReportContext], Section]
    demo_only: bool = False


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("model", "Model", model_section),
    SectionSpec("data", "Data", data_section),
    SectionSpec("training", "Training", training_section),
    SectionSpec("gradstats", "Training diagnostics", gradstats_section, demo_only=True),
    SectionSpec("evaluation", "Evaluation", evaluation_section),
    SectionSpec("attribution", "Attribution", attribution_section),
    SectionSpec("cam", "Class activation maps", cam_section),
    SectionSpec("lrp", "Layer-wise relevance propagation", lrp_section),
    SectionSpec("perturbation", "Perturbation and surrogate attribution", perturbation_section),
    SectionSpec("featviz", "Feature visualisation", featviz_section),
    SectionSpec("dream", "DeepDream and top-activating examples", dream_section, demo_only=True),
    SectionSpec("embed", "Embeddings", embed_section),
    SectionSpec("landscape", "Loss landscape", landscape_section),
    SectionSpec("trajectory", "Training trajectory", trajectory_section, demo_only=True),
    SectionSpec("curvature", "Curvature", curvature_section),
    SectionSpec(
        "localisation",
        "Localisation on objects with known masks",
        localisation_section,
        demo_only=True,
    ),
    SectionSpec("attention", "Attention", attention_section, demo_only=True),
)


class SectionError(RuntimeError):
    """One or more sections failed; the report was written with their errors in place.

    Attributes:
      report: the path of the report written.
      failed: ``{section name: "ErrorType: message"}``.
    """

    def __init__(self, report: Path, failed: Mapping[str, str]):
        self.report, self.failed = report, dict(failed)
        lines = "; ".join(f"{name}: {err}" for name, err in self.failed.items())
        super().__init__(
            f"{len(self.failed)} report section(s) failed ({lines}); the report with their "
            f"tracebacks is {report}"
        )


def section_names() -> list[str]:
    """Names of the report's sections, in report order."""
    return [s.name for s in SECTIONS]


def select_sections(names: Sequence[str | SectionSpec] | None = None) -> list[SectionSpec]:
    """The sections to run: all (``names=None``) or the named ones, in report order.

    Entries may also be :class:`SectionSpec` objects (a user's own sections): they run after the
    named ones, in the order given.

    Raises:
      ValueError: an unknown name (the message lists the known ones), before anything runs.
    """
    if names is None:
        return list(SECTIONS)
    if isinstance(names, str):
        names = [names]
    known = section_names()
    wanted = {n for n in names if isinstance(n, str)}
    unknown = [n for n in names if isinstance(n, str) and n not in known]
    if unknown:
        raise ValueError(f"unknown report section(s) {unknown}; known sections: {known}")
    custom = [s for s in names if isinstance(s, SectionSpec)]
    return [s for s in SECTIONS if s.name in wanted] + custom


def run_settings(ctx: ReportContext, **extra: Any) -> dict[str, str]:
    """The settings shown at the end of the report: seed, quick, versions, backend and devices."""
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    settings = {
        "seed": str(ctx.seed),
        "quick": str(ctx.quick),
        **{k: str(v) for k, v in extra.items()},
        "model": repr(ctx.model) if not ctx.demo else "digits CNN (NNX)",
        "data": f"{len(ctx.train.y):,} training / {len(ctx.test.y):,} held-out examples of "
        f"shape {tuple(np.shape(ctx.train.x)[1:])}, {ctx.num_classes} classes",
        "backend": f"{jax.default_backend()}: {len(devices)} x {', '.join(kinds)}",
        "visjax": _version("visjax"),
        "jax": jax.__version__,
        "flax": _version("flax"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores",
    }
    return settings


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_report(
    ctx: ReportContext,
    specs: Sequence[SectionSpec],
    *,
    title: str,
    settings: Mapping[str, str] | None = None,
    progress: bool | str = "auto",
) -> Path:
    """Build ``specs`` with ``ctx``, time each, write ``ctx.out / "report.html"``.

    Demo-only sections on a user's context and sections raising :class:`SkipSection` are skipped
    (reason logged and listed in the timings); a failing section is shown with its error and the
    others still run.

    Args:
      ctx: the shared context (model, data, output folder, ``log``).
      specs: the sections to build, in order.
      title: the page title.
      settings: the Run section's settings (default: :func:`run_settings` of ``ctx``).
      progress: a bar over the sections: ``"auto"`` (default) when standard error is a
        terminal, ``True``/``False`` force it. Log lines go through ``ctx.log``.

    Returns:
      The path of ``report.html``.

    Raises:
      SectionError: a section failed (after the report is written).
      OSError: an output or cache folder is unusable (at once).
    """
    show = resolve_progress(progress)
    ctx.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    built: list[Section] = []
    timings: list[Timing] = []
    failed: dict[str, str] = {}
    with progress_bar(len(specs), desc="report sections", unit="section", enabled=show) as bar:
        for spec in specs:
            bar.set_description(f"report: {spec.name}")
            _build_one(ctx, spec, built, timings, failed)
            bar.update(1)
    report = write_report(
        ctx.out / "report.html",
        built,
        title=title,
        settings=settings if settings is not None else run_settings(ctx),
        timings=timings,
    )
    ctx.log(f"wrote {report} in {time.perf_counter() - t0:.1f} s")
    if failed:
        raise SectionError(report, failed)
    return report


def _build_one(ctx, spec, built, timings, failed):
    """Build, time and record one section (its failure recorded, not raised; OSError raised)."""
    t = time.perf_counter()
    try:
        if spec.demo_only and not ctx.demo:
            raise SkipSection("needs the demo's own models (demo only)")
        section = spec.build(ctx)
    except SkipSection as e:
        timings.append(Timing(spec.name, time.perf_counter() - t, f"skipped: {e}"))
        ctx.log(f"section {spec.name!r} skipped: {e}")
        return
    except OSError:
        raise
    except Exception as e:  # shown in the report, raised after it is written
        error = f"{type(e).__name__}: {e}"
        failed[spec.name] = error
        ctx.log(f"section {spec.name!r} failed: {error}")
        section = Section(
            spec.title,
            f"This section failed with {error}. The traceback below says where; the other "
            "sections are unaffected.",
            preformatted=[traceback.format_exc()],
        )
    seconds = time.perf_counter() - t
    status = f"failed: {failed[spec.name]}" if spec.name in failed else "ok"
    timings.append(Timing(spec.name, seconds, status))
    built.append(section if section.anchor else section._replace(anchor=spec.name))
    if spec.name not in failed:
        ctx.log(f"section {spec.name!r} done in {seconds:.1f} s")


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    quick: bool = False,
    sections: Sequence[str] | None = None,
    cache: str | Path | None = None,
    log: Callable[[str], None] = log_line,
    progress: bool | str = "auto",
) -> Path:
    """Build the demo's sections and write ``report.html`` into ``out`` (``visjax demo``).

    The first sections train the digits CNN (once; the weights are cached) and write a model
    summary and training curves; each capability adds its own section (:data:`SECTIONS`).

    Args:
      out: the output folder (created if missing).
      seed: seed for the initial weights and the shuffling.
      quick: short runs (tests use it): 15 training epochs, each section within about 10 s.
      sections: names of the sections to run (default: all of :data:`SECTIONS`).
      cache: the weight cache folder (default ``$VISJAX_CACHE`` or the user's cache directory).
      log: where log lines go (default :func:`visjax.base.progress.log`: standard output,
        through ``tqdm.write`` while a progress bar is open, so no line overprints a bar).
      progress: progress bars (the sections, training): ``"auto"`` (default) when standard
        error is a terminal, ``True``/``False`` force it.

    Returns:
      The path of ``report.html``.

    Raises:
      ValueError: an unknown section name (the message lists the known ones).
      SectionError: a section failed (the report is written, with the error in its place).
    """
    chosen = select_sections(sections)
    show = resolve_progress(progress)
    ctx = DemoContext(out=Path(out), seed=seed, quick=quick, cache=cache, log=log)
    return build_report(ctx, chosen, title="visjax demo", progress=show)


def _splits(data: Any) -> tuple[Split, Split, int | None]:
    if hasattr(data, "train") and hasattr(data, "test"):
        parts = (*data.train, *data.test)
        n = getattr(data, "num_classes", None)
    else:
        parts, n = tuple(data), None
    if len(parts) != 4:
        raise ValueError(
            "`data` must be (x_train, y_train, x_test, y_test) or have .train and .test "
            f"(x, y) pairs, got {len(parts)} arrays"
        )
    x_tr, y_tr, x_te, y_te = (np.asarray(a) for a in parts)
    for name, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if y.ndim != 1 or len(x) != len(y) or len(y) == 0:
            raise ValueError(
                f"`data`'s {name} split needs labels (N,) matching N > 0 inputs, got x "
                f"{x.shape} and y {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"`data`'s {name} labels must be class indices, got {y.dtype}")
    return Split(x_tr, y_tr), Split(x_te, y_te), n


def write(
    out: str | Path,
    *,
    model: Any,
    data: Any,
    sections: Sequence[str | SectionSpec] | None = None,
    history: History | Mapping[str, Sequence[float]] | None = None,
    params: Any = None,
    num_classes: int | None = None,
    seed: int = 0,
    quick: bool = False,
    title: str = "visjax report",
    log: Callable[[str], None] = log_line,
    progress: bool | str = "auto",
) -> Path:
    """Write ``report.html`` and its figures into ``out`` for your own classifier.

    The same report as ``visjax demo`` on your model and data: each section that applies to any
    image classifier (model table, training curves, evaluation, data views, attribution...);
    the demo-only sections (zoo-specific sweeps and models) are left out, or skipped with the
    reason when named.

    Example:
      >>> visjax.report.write("out/mine", model=nnx_module, data=(x_tr, y_tr, x_te, y_te),
      ...                     history=history, quick=True)  # doctest: +SKIP

    Args:
      out: the output folder (created if missing).
      model: a :class:`visjax.Model`, or anything :func:`visjax.as_model` accepts (an NNX module;
        a Linen module with its variables as ``params``).
      data: ``(x_train, y_train, x_test, y_test)`` (images NHWC, labels as class indices), or an
        object with ``.train`` and ``.test`` ``(x, y)`` pairs (:class:`visjax.zoo.Digits`).
      sections: section names (:func:`section_names`) or :class:`SectionSpec` objects; default:
        every section that is not demo-only.
      history: the training history (:class:`visjax.zoo.History` or a dict of its lists), for the
        training section (skipped without it).
      params: a Linen module's variables or a plain function's parameters (see ``as_model``).
      num_classes: number of classes (default: ``data.num_classes`` or the model's output width).
      seed: seed of the sections' random draws.
      quick: short runs (each section within about 10 s).
      title: the page title.
      log: where log lines go (default :func:`visjax.base.progress.log`: standard output,
        through ``tqdm.write`` while a progress bar is open, so no line overprints a bar).
      progress: progress bars (the sections, training): ``"auto"`` (default) when standard
        error is a terminal, ``True``/``False`` force it.

    Returns:
      The path of ``report.html``.

    Raises:
      ValueError: an unknown section name or malformed ``data``, before anything runs.
      SectionError: a section failed (the report is written, with the error in its place).
    """
    show = resolve_progress(progress)
    chosen = select_sections(sections)
    if sections is None:
        left_out = [s.name for s in chosen if s.demo_only]
        chosen = [s for s in chosen if not s.demo_only]
        log(f"demo-only sections left out: {', '.join(left_out)}")
    train, test, n = _splits(data)
    m: Model = as_model(model, params)
    if num_classes is None:
        num_classes = n or int(np.shape(m(jnp.asarray(test.x[:1])))[-1])
    if isinstance(history, Mapping):
        history = History(**{f: list(history.get(f, [])) for f in History._fields})
    ctx = ReportContext(
        out,
        model=m,
        train=train,
        test=test,
        num_classes=num_classes,
        history=history,
        seed=seed,
        quick=quick,
        log=log,
    )
    return build_report(ctx, chosen, title=title, progress=show)
