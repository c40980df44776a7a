"""Inspection: model summaries, activation statistics and dead units, weight views, filters."""

from visjax.inspect.activations import ActivationStats as ActivationStats
from visjax.inspect.activations import activation_maps as activation_maps
from visjax.inspect.activations import activation_stats as activation_stats
from visjax.inspect.activations import dead_units as dead_units
from visjax.inspect.activations import saturated_units as saturated_units
from visjax.inspect.filters import feature_maps as feature_maps
from visjax.inspect.filters import layer_filters as layer_filters
from visjax.inspect.graph import Graph as Graph
from visjax.inspect.graph import graph as graph
from visjax.inspect.summary import Summary as Summary
from visjax.inspect.summary import SummaryRow as SummaryRow
from visjax.inspect.summary import summary as summary
from visjax.inspect.weights import WeightChange as WeightChange
from visjax.inspect.weights import WeightHistogram as WeightHistogram
from visjax.inspect.weights import weight_change as weight_change
from visjax.inspect.weights import weight_histograms as weight_histograms

__all__ = [
    "ActivationStats",
    "Graph",
    "Summary",
    "SummaryRow",
    "WeightChange",
    "WeightHistogram",
    "activation_maps",
    "activation_stats",
    "dead_units",
    "feature_maps",
    "graph",
    "layer_filters",
    "saturated_units",
    "summary",
    "weight_change",
    "weight_histograms",
]
