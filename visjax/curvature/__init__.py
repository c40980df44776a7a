"""Curvature of the loss: Hessian-vector products, top eigenvalues, trace, diagonal, density.

The one implementation in visjax (landscapes and gradient statistics import it). optax deprecated
its ``second_order`` helpers (hvp, hessian_diag, fisher_diag) in 0.2.7; these replace them, over
a whole dataset summed in chunks.
"""

from visjax.curvature.blocks import BlockCurvature as BlockCurvature
from visjax.curvature.blocks import block_curvature as block_curvature
from visjax.curvature.blocks import layer_groups as layer_groups
from visjax.curvature.estimators import Trace as Trace
from visjax.curvature.estimators import hessian_diag as hessian_diag
from visjax.curvature.estimators import trace as trace
from visjax.curvature.hvp import ggn_vp as ggn_vp
from visjax.curvature.hvp import hvp as hvp
from visjax.curvature.sharpness import Sharpness as Sharpness
from visjax.curvature.sharpness import sharpness as sharpness
from visjax.curvature.spectrum import Eigen as Eigen
from visjax.curvature.spectrum import SpectralDensity as SpectralDensity
from visjax.curvature.spectrum import lanczos as lanczos
from visjax.curvature.spectrum import spectral_density as spectral_density
from visjax.curvature.spectrum import top_eigenvalues as top_eigenvalues
from visjax.curvature.spread import Spread as Spread
from visjax.curvature.spread import batch_spread as batch_spread

__all__ = [
    "BlockCurvature",
    "Eigen",
    "Sharpness",
    "SpectralDensity",
    "Spread",
    "Trace",
    "batch_spread",
    "block_curvature",
    "ggn_vp",
    "hessian_diag",
    "hvp",
    "lanczos",
    "layer_groups",
    "sharpness",
    "spectral_density",
    "top_eigenvalues",
    "trace",
]
