"""Attribution: which parts of the input (or of a layer) a prediction depends on.

Every method takes ``(model, x, target, *, ...)`` and returns attributions shaped like ``x``,
except the CAM family (:mod:`visjax.attribution.cam`, whose methods are re-exported here), which
returns maps ``(N, H', W')`` on a layer's grid.

An empty batch (``N = 0``) gives an empty result of the documented shape (``(0, *x.shape[1:])``,
the layer's ``(0, ...)`` under :func:`at_layer`, ``(0, H', W')`` for a CAM) without compiling the
method's program; the arguments are checked as for a non-empty batch.
"""

from visjax.attribution.ablation import feature_ablation as feature_ablation
from visjax.attribution.ablation import occlusion as occlusion
from visjax.attribution.baselines import make_baseline as make_baseline
from visjax.attribution.blur import blur_integrated_gradients as blur_integrated_gradients
from visjax.attribution.blur import gaussian_blur as gaussian_blur
from visjax.attribution.cam import ablation_cam as ablation_cam
from visjax.attribution.cam import eigen_cam as eigen_cam
from visjax.attribution.cam import eigen_grad_cam as eigen_grad_cam
from visjax.attribution.cam import full_grad as full_grad
from visjax.attribution.cam import grad_cam as grad_cam
from visjax.attribution.cam import grad_cam_plus_plus as grad_cam_plus_plus
from visjax.attribution.cam import guided_grad_cam as guided_grad_cam
from visjax.attribution.cam import hires_cam as hires_cam
from visjax.attribution.cam import layer_cam as layer_cam
from visjax.attribution.cam import score_cam as score_cam
from visjax.attribution.cam import xgrad_cam as xgrad_cam
from visjax.attribution.deeplift import deeplift as deeplift
from visjax.attribution.deeplift import deeplift_shap as deeplift_shap
from visjax.attribution.gradients import gradient_x_input as gradient_x_input
from visjax.attribution.gradients import saliency as saliency
from visjax.attribution.integrated import completeness_error as completeness_error
from visjax.attribution.integrated import expected_gradients as expected_gradients
from visjax.attribution.integrated import gradient_shap as gradient_shap
from visjax.attribution.integrated import integrated_gradients as integrated_gradients
from visjax.attribution.integrated import rule_nodes as rule_nodes
from visjax.attribution.layer import at_layer as at_layer
from visjax.attribution.lrp import lrp as lrp
from visjax.attribution.lrp import lrp_layers as lrp_layers
from visjax.attribution.masks import feature_mask as feature_mask
from visjax.attribution.masks import grid_superpixels as grid_superpixels
from visjax.attribution.masks import slic_superpixels as slic_superpixels
from visjax.attribution.masks import square_patches as square_patches
from visjax.attribution.modified import deconvnet as deconvnet
from visjax.attribution.modified import guided_backprop as guided_backprop
from visjax.attribution.noise import noise_tunnel as noise_tunnel
from visjax.attribution.shapley import exact_shapley as exact_shapley
from visjax.attribution.shapley import shapley_value_sampling as shapley_value_sampling
from visjax.attribution.surrogate import kernel_shap as kernel_shap
from visjax.attribution.surrogate import lime as lime

__all__ = [
    "ablation_cam",
    "at_layer",
    "blur_integrated_gradients",
    "completeness_error",
    "deconvnet",
    "deeplift",
    "deeplift_shap",
    "eigen_cam",
    "eigen_grad_cam",
    "exact_shapley",
    "expected_gradients",
    "feature_ablation",
    "feature_mask",
    "full_grad",
    "gaussian_blur",
    "grad_cam",
    "grad_cam_plus_plus",
    "gradient_shap",
    "gradient_x_input",
    "grid_superpixels",
    "guided_backprop",
    "guided_grad_cam",
    "hires_cam",
    "integrated_gradients",
    "kernel_shap",
    "layer_cam",
    "lime",
    "lrp",
    "lrp_layers",
    "make_baseline",
    "noise_tunnel",
    "occlusion",
    "rule_nodes",
    "saliency",
    "score_cam",
    "shapley_value_sampling",
    "slic_superpixels",
    "square_patches",
    "xgrad_cam",
]
