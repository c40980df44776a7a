"""``visjax demo``: the report's sections, listed in one place, and the runner that builds them.

:data:`SECTIONS` lists every section of the demo's ``report.html`` in report order, each a
:class:`SectionSpec` (short name, title, ``build(ctx) -> Section``). :func:`run_demo` builds all of
them (or those named) with one shared :class:`~visjax.report.context.DemoContext` and writes the
report. A new section is a builder function in its module under ``visjax/report/`` and one entry
here.

Example:
  >>> section_names()[:2]
  ['model', 'training']
  >>> [s.name for s in select_sections(["landscape", "model"])]
  ['model', 'landscape']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm

from visjax.report.attribution import attribution_section, cam_section, perturbation_section
from visjax.report.context import DemoContext
from visjax.report.featviz import featviz_section
from visjax.report.gradstats import gradstats_section
from visjax.report.html import Section, write_report
from visjax.report.landscape import landscape_section
from visjax.report.sections import model_section, training_section


class SectionSpec(NamedTuple):
    """One section of the demo report: its name (for ``--sections``), title and builder."""

    name: str
    title: str
    build: Callable[[DemoContext], Section]


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("model", "Model", model_section),
    SectionSpec("training", "Training", training_section),
    SectionSpec("gradstats", "Training diagnostics", gradstats_section),
    SectionSpec("attribution", "Attribution", attribution_section),
    SectionSpec("cam", "Class activation maps", cam_section),
    SectionSpec("perturbation", "Perturbation and surrogate attribution", perturbation_section),
    SectionSpec("featviz", "Feature visualisation", featviz_section),
    SectionSpec("landscape", "Loss landscape", landscape_section),
)


def section_names() -> list[str]:
    """Names of the demo's sections, in report order."""
    return [s.name for s in SECTIONS]


def select_sections(names: Sequence[str] | None = None) -> list[SectionSpec]:
    """The sections to run: all (``names=None``) or the named ones, in report order.

    Raises:
      ValueError: an unknown name (the message lists the known ones), before anything runs.
    """
    known = section_names()
    if names is None:
        return list(SECTIONS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown report section(s) {unknown}; known sections: {known}")
    return [s for s in SECTIONS if s.name in set(names)]


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    quick: bool = False,
    sections: Sequence[str] | None = None,
    cache: str | Path | None = None,
    log: Callable[[str], None] = print,
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
      log: where progress lines go.

    Returns:
      The path of ``report.html``.

    Raises:
      ValueError: an unknown section name (the message lists the known ones).
    """
    chosen = select_sections(sections)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, seed=seed, quick=quick, cache=cache, log=log)
    t0 = time.perf_counter()
    built = []
    for spec in tqdm(chosen, desc="report sections", unit="section", leave=False):
        t = time.perf_counter()
        built.append(spec.build(ctx))
        log(f"section {spec.name!r} done in {time.perf_counter() - t:.1f} s")
    report = write_report(out / "report.html", built, title="visjax demo")
    log(f"wrote {report} in {time.perf_counter() - t0:.1f} s")
    return report
