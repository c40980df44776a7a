"""Gradient statistics during training, inside ``jit``: per layer, per example, writers.

:func:`track` wraps any optax optimiser and keeps per-layer statistics of the gradients and
updates in its state (a ring buffer or running aggregates; no host callbacks); :func:`snapshot`
brings them to the host. :func:`per_example_stats` computes the quantities that need the loss and
the batch (gradient variance, signal-to-noise, the noise scale B_simple, Cockpit's norm and
inner-product tests). The writers turn a :class:`Snapshot` into CSV, JSON lines or TensorBoard
event files; ``visjax.plot`` draws it.
"""

from visjax.gradstats.per_example import GradientNoise as GradientNoise
from visjax.gradstats.per_example import PerExampleStats as PerExampleStats
from visjax.gradstats.per_example import per_example_grads as per_example_grads
from visjax.gradstats.per_example import per_example_stats as per_example_stats
from visjax.gradstats.stats import DEFAULT_STATS as DEFAULT_STATS
from visjax.gradstats.stats import STATISTICS as STATISTICS
from visjax.gradstats.stats import default_edges as default_edges
from visjax.gradstats.stats import flags as flags
from visjax.gradstats.stats import groups_of as groups_of
from visjax.gradstats.stats import histogram as histogram
from visjax.gradstats.stats import layer_stats as layer_stats
from visjax.gradstats.transform import Snapshot as Snapshot
from visjax.gradstats.transform import TrackState as TrackState
from visjax.gradstats.transform import find_track_state as find_track_state
from visjax.gradstats.transform import snapshot as snapshot
from visjax.gradstats.transform import track as track
from visjax.gradstats.writers import TensorBoardWriter as TensorBoardWriter
from visjax.gradstats.writers import write_csv as write_csv
from visjax.gradstats.writers import write_histograms_csv as write_histograms_csv
from visjax.gradstats.writers import write_jsonl as write_jsonl
from visjax.gradstats.writers import write_tensorboard as write_tensorboard

__all__ = [
    "DEFAULT_STATS",
    "STATISTICS",
    "GradientNoise",
    "PerExampleStats",
    "Snapshot",
    "TensorBoardWriter",
    "TrackState",
    "default_edges",
    "find_track_state",
    "flags",
    "groups_of",
    "histogram",
    "layer_stats",
    "per_example_grads",
    "per_example_stats",
    "snapshot",
    "track",
    "write_csv",
    "write_histograms_csv",
    "write_jsonl",
    "write_tensorboard",
]
