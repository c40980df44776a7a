"""Attribution: which parts of the input (or of a layer) a prediction depends on.

Every method takes ``(model, x, target, *, ...)`` and returns attributions shaped like ``x``.
"""

from visjax.attribution.ablation import feature_ablation as feature_ablation
from visjax.attribution.ablation import occlusion as occlusion
from visjax.attribution.blur import blur_integrated_gradients as blur_integrated_gradients
from visjax.attribution.blur import gaussian_blur as gaussian_blur
from visjax.attribution.deeplift import deeplift as deeplift
from visjax.attribution.deeplift import deeplift_shap as deeplift_shap
from visjax.attribution.gradients import gradient_x_input as gradient_x_input
from visjax.attribution.gradients import saliency as saliency
from visjax.attribution.integrated import completeness_error as completeness_error
from visjax.attribution.integrated import expected_gradients as expected_gradients
from visjax.attribution.integrated import gradient_shap as gradient_shap
from visjax.attribution.integrated import integrated_gradients as integrated_gradients
from visjax.attribution.integrated import make_baseline as make_baseline
from visjax.attribution.integrated import rule_nodes as rule_nodes
from visjax.attribution.layer import at_layer as at_layer
from visjax.attribution.masks import feature_mask as feature_mask
from visjax.attribution.masks import grid_superpixels as grid_superpixels
from visjax.attribution.masks import slic_superpixels as slic_superpixels
from visjax.attribution.masks import square_patches as square_patches
from visjax.attribution.modified import deconvnet as deconvnet
from visjax.attribution.modified import guided_backprop as guided_backprop
from visjax.attribution.noise import noise_tunnel as noise_tunnel

__all__ = [
    "at_layer",
    "blur_integrated_gradients",
    "completeness_error",
    "deconvnet",
    "deeplift",
    "deeplift_shap",
    "expected_gradients",
    "feature_ablation",
    "feature_mask",
    "gaussian_blur",
    "gradient_shap",
    "gradient_x_input",
    "grid_superpixels",
    "guided_backprop",
    "integrated_gradients",
    "make_baseline",
    "noise_tunnel",
    "occlusion",
    "rule_nodes",
    "saliency",
    "slic_superpixels",
    "square_patches",
]
