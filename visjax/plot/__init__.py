"""Plotting: one function per picture, arrays in, a matplotlib Figure out; and the HTML report."""

from visjax.plot.curves import training_curves as training_curves
from visjax.plot.report import Section as Section
from visjax.plot.report import write_report as write_report

__all__ = ["Section", "training_curves", "write_report"]
