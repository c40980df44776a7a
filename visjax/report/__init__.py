"""The report layer: HTML report writing, the report's sections and the runners behind the CLI.

It sits above the method packages and the plots (it calls both); nothing below imports it.
:func:`write` builds the report for your own model and data; it, :class:`SectionSpec` and
:class:`SectionError` are imported on first use (they load every method package).
"""

from typing import Any

from visjax.report.html import Figure as Figure
from visjax.report.html import Section as Section
from visjax.report.html import Timing as Timing
from visjax.report.html import write_report as write_report

__all__ = ["Figure", "Section", "SectionError", "SectionSpec", "Timing", "write", "write_report"]

_LAZY = ("SectionError", "SectionSpec", "write")


def __getattr__(name: str) -> Any:
    # These live with the sections (visjax.report.demo), which import JAX, matplotlib and every
    # method package; `from visjax.report import Section` need not wait for them.
    if name in _LAZY:
        from visjax.report import demo  # noqa: PLC0415 - heavy, on first use

        return getattr(demo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
