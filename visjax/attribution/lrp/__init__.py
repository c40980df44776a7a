"""Layer-wise relevance propagation (LRP) on the traced program.

:func:`lrp` gives the relevance at the input (or at a layer), :func:`lrp_layers` every layer's
from one call; :mod:`~visjax.attribution.lrp.rules` holds the rules and
:mod:`~visjax.attribution.lrp.composites` the composites and Zennit's presets.
"""

from visjax.attribution.lrp.composites import Composite as Composite
from visjax.attribution.lrp.composites import attn_lrp as attn_lrp
from visjax.attribution.lrp.composites import epsilon_alpha2_beta1 as epsilon_alpha2_beta1
from visjax.attribution.lrp.composites import epsilon_gamma_box as epsilon_gamma_box
from visjax.attribution.lrp.composites import epsilon_plus as epsilon_plus
from visjax.attribution.lrp.composites import epsilon_plus_flat as epsilon_plus_flat
from visjax.attribution.lrp.core import lrp as lrp
from visjax.attribution.lrp.core import lrp_layers as lrp_layers
from visjax.attribution.lrp.rules import AlphaBeta as AlphaBeta
from visjax.attribution.lrp.rules import Epsilon as Epsilon
from visjax.attribution.lrp.rules import Flat as Flat
from visjax.attribution.lrp.rules import Gamma as Gamma
from visjax.attribution.lrp.rules import Norm as Norm
from visjax.attribution.lrp.rules import Pass as Pass
from visjax.attribution.lrp.rules import Rule as Rule
from visjax.attribution.lrp.rules import WSquare as WSquare
from visjax.attribution.lrp.rules import ZBox as ZBox
from visjax.attribution.lrp.rules import ZPlus as ZPlus

__all__ = [
    "AlphaBeta",
    "Composite",
    "Epsilon",
    "Flat",
    "Gamma",
    "Norm",
    "Pass",
    "Rule",
    "WSquare",
    "ZBox",
    "ZPlus",
    "attn_lrp",
    "epsilon_alpha2_beta1",
    "epsilon_gamma_box",
    "epsilon_plus",
    "epsilon_plus_flat",
    "lrp",
    "lrp_layers",
]
