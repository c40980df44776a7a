"""Inspection: model summaries (and, later, activations, dead units, graphs)."""

from visjax.inspect.summary import LayerRow as LayerRow
from visjax.inspect.summary import Summary as Summary
from visjax.inspect.summary import summary as summary

__all__ = ["LayerRow", "Summary", "summary"]
