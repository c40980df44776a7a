"""The report layer: HTML report writing, the demo's sections and the runners behind the CLI.

It sits above the method packages and the plots (it calls both); nothing below imports it.
"""

from visjax.report.html import Section as Section
from visjax.report.html import write_report as write_report

__all__ = ["Section", "write_report"]
