"""Judging attributions: faithfulness (deletion, insertion, ROAD, infidelity, sensitivity) and
localisation (pointing game, relevance mass and rank) metrics.

Every metric that needs maps takes them as an array or as a method: any visjax method, a
``functools.partial`` of one, or a function ``(model, x, target) -> maps``.
"""

from visjax.attribution.metrics._common import Curves as Curves
from visjax.attribution.metrics.deletion import deletion as deletion
from visjax.attribution.metrics.deletion import insertion as insertion
from visjax.attribution.metrics.deletion import noisy_linear_impute as noisy_linear_impute
from visjax.attribution.metrics.deletion import road as road
from visjax.attribution.metrics.localisation import pointing_game as pointing_game
from visjax.attribution.metrics.localisation import relevance_mass as relevance_mass
from visjax.attribution.metrics.localisation import relevance_rank as relevance_rank
from visjax.attribution.metrics.perturbation import infidelity as infidelity
from visjax.attribution.metrics.perturbation import sensitivity_max as sensitivity_max
from visjax.attribution.metrics.randomisation import data_randomisation as data_randomisation
from visjax.attribution.metrics.randomisation import model_randomisation as model_randomisation
from visjax.attribution.metrics.similarity import hog as hog
from visjax.attribution.metrics.similarity import hog_similarity as hog_similarity
from visjax.attribution.metrics.similarity import spearman as spearman
from visjax.attribution.metrics.similarity import ssim as ssim

__all__ = [
    "Curves",
    "data_randomisation",
    "deletion",
    "hog",
    "hog_similarity",
    "infidelity",
    "insertion",
    "model_randomisation",
    "noisy_linear_impute",
    "pointing_game",
    "relevance_mass",
    "relevance_rank",
    "road",
    "sensitivity_max",
    "spearman",
    "ssim",
]
