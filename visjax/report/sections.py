"""Report sections: how each capability adds its part to ``visjax demo``'s ``report.html``.

A section is a function ``build(ctx) -> Section`` registered under a short name with
:func:`register_section`. ``visjax demo`` runs the registered sections in order (or those chosen
with ``--sections``) and writes one report. Sections share expensive work through the
:class:`DemoContext` (for example the trained digits CNN, trained once and cached on disk).

Each section's ``quick`` run should stay within about 10 s on 2 CPU cores, so the demo test stays
fast as sections are added.

Example:
  >>> @register_section("hello", title="Hello", order=99)
  ... def _hello(ctx):
  ...     return Section("Hello", "A section with text only.")
  >>> "hello" in section_names()
  True
  >>> unregister_section("hello")
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from visjax.report.html import Section
from visjax.zoo.cache import Trained

# Modules that register sections when imported; later capabilities append theirs here.
_SECTION_MODULES = (
    "visjax.report.sections",
    "visjax.report.attribution",
    "visjax.report.featviz",
    "visjax.report.gradstats",
    "visjax.report.landscape",
)


@dataclasses.dataclass
class DemoContext:
    """What sections share during one demo run.

    Attributes:
      out: the output folder (figures go here).
      seed: the run's seed.
      quick: a short run (tests): each section should stay within about 10 s.
      cache: the weight cache folder (None: ``$VISJAX_CACHE`` or the user's cache directory).
      log: where progress lines go.
    """

    out: Path
    seed: int = 0
    quick: bool = False
    cache: str | os.PathLike | None = None
    log: Callable[[str], None] = print

    @functools.cached_property
    def digits_cnn(self) -> Trained:
        """The digits CNN (NNX) trained on the digits (15 epochs if quick, else 30), cached."""
        from tqdm.auto import tqdm

        from visjax.zoo.pretrained import trained_digits_cnn

        epochs = 15 if self.quick else 30
        bars = []  # opened on the first epoch: a cache hit shows no bar

        def progress(epoch, history):
            if not bars:
                bars.append(tqdm(total=epochs, desc="training digits CNN", unit="epoch"))
            bars[0].update(1)
            bars[0].set_postfix(test_acc=f"{history.test_accuracy[-1]:.3f}")

        try:
            result = trained_digits_cnn(
                seed=self.seed, epochs=epochs, cache=self.cache, callback=progress
            )
        finally:
            for bar in bars:
                bar.close()
        source = "loaded from the cache" if result.from_cache else f"trained for {epochs} epochs"
        self.log(f"digits CNN {source}: test accuracy {result.history.test_accuracy[-1]:.2%}")
        return result


@dataclasses.dataclass(frozen=True)
class SectionSpec:
    """A registered section: its name, title, builder and position in the report."""

    name: str
    title: str
    build: Callable[[DemoContext], Section]
    order: int


_REGISTRY: dict[str, SectionSpec] = {}


def register_section(name: str, *, title: str, order: int = 50):
    """Decorator registering ``build(ctx) -> Section`` as the report section ``name``."""

    def decorator(build: Callable[[DemoContext], Section]):
        if name in _REGISTRY and _REGISTRY[name].build is not build:
            raise ValueError(f"a report section named {name!r} is already registered")
        _REGISTRY[name] = SectionSpec(name, title, build, order)
        return build

    return decorator


def unregister_section(name: str) -> None:
    """Remove a registered section (tests, notebooks)."""
    _REGISTRY.pop(name, None)


def _load_all() -> None:
    for module in _SECTION_MODULES:
        importlib.import_module(module)


def section_names() -> list[str]:
    """Names of the registered sections, in report order."""
    _load_all()
    return [s.name for s in sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))]


def select_sections(names: Sequence[str] | None = None) -> list[SectionSpec]:
    """The sections to run: all (``names=None``) or the named ones, in report order.

    Raises:
      ValueError: an unknown name (the message lists the known ones), before anything runs.
    """
    known = section_names()
    if names is None:
        return [_REGISTRY[n] for n in known]
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown report section(s) {unknown}; known sections: {known}")
    return [_REGISTRY[n] for n in known if n in set(names)]


# --------------------------------------------------------------------------- built-in sections


@register_section("model", title="Model", order=10)
def _model_section(ctx: DemoContext) -> Section:
    import jax.numpy as jnp

    from visjax.base.io import atomic_write_text
    from visjax.inspect import summary

    model = ctx.digits_cnn.model
    table = summary(model, jnp.zeros((1, 8, 8, 1), jnp.float32)).to_text()
    atomic_write_text(ctx.out / "summary.txt", table + "\n")
    return Section(
        "Model",
        "The digits CNN as a Flax NNX module, seen through visjax's model interface: layer "
        "paths, activation shapes for one example, parameter counts.",
        preformatted=[table],
    )


@register_section("training", title="Training", order=20)
def _training_section(ctx: DemoContext) -> Section:
    from visjax.base.io import save_figure
    from visjax.plot import training_curves

    result = ctx.digits_cnn
    h = result.history
    fig = save_figure(training_curves(h, title="digits CNN"), ctx.out / "training_curves.png")
    return Section(
        "Training",
        f"Adam (lr 1e-2), batch 64, {len(h.train_loss)} epochs, seed {ctx.seed}"
        f"{' (weights from the cache)' if result.from_cache else ''}. Final test accuracy "
        f"{h.test_accuracy[-1]:.2%} on 450 held-out digits.",
        figures=[fig],
    )
