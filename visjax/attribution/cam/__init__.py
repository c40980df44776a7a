"""The CAM family: class activation maps at any layer path, batched.

Every method is ``method(model, x, target, *, layer=None, ...)`` and returns the raw map
``(N, H', W')`` on the layer's grid, before any ReLU or scaling (pytorch-grad-cam's
``get_cam_image``); :func:`postprocess` applies ReLU, min-max scaling and upsampling to the input
size, :func:`multi_layer` averages processed maps over several layers.
"""

from visjax.attribution.cam.dff import DFFResult as DFFResult
from visjax.attribution.cam.dff import deep_feature_factorization as deep_feature_factorization
from visjax.attribution.cam.eigen import eigen_cam as eigen_cam
from visjax.attribution.cam.eigen import eigen_grad_cam as eigen_grad_cam
from visjax.attribution.cam.eigen import principal_projection as principal_projection
from visjax.attribution.cam.fullgrad import full_grad as full_grad
from visjax.attribution.cam.gradient import grad_cam as grad_cam
from visjax.attribution.cam.gradient import grad_cam_map as grad_cam_map
from visjax.attribution.cam.gradient import grad_cam_plus_plus as grad_cam_plus_plus
from visjax.attribution.cam.gradient import grad_cam_plus_plus_map as grad_cam_plus_plus_map
from visjax.attribution.cam.gradient import guided_grad_cam as guided_grad_cam
from visjax.attribution.cam.gradient import hires_cam as hires_cam
from visjax.attribution.cam.gradient import hires_cam_map as hires_cam_map
from visjax.attribution.cam.gradient import layer_cam as layer_cam
from visjax.attribution.cam.gradient import layer_cam_map as layer_cam_map
from visjax.attribution.cam.gradient import xgrad_cam as xgrad_cam
from visjax.attribution.cam.gradient import xgrad_cam_map as xgrad_cam_map
from visjax.attribution.cam.process import multi_layer as multi_layer
from visjax.attribution.cam.process import normalize as normalize
from visjax.attribution.cam.process import positive as positive
from visjax.attribution.cam.process import postprocess as postprocess
from visjax.attribution.cam.process import upsample as upsample
from visjax.attribution.cam.score import ablation_cam as ablation_cam
from visjax.attribution.cam.score import score_cam as score_cam
from visjax.attribution.layer import no_layer as _no_layer

for _cam in (
    ablation_cam,
    eigen_cam,
    eigen_grad_cam,
    full_grad,
    grad_cam,
    grad_cam_plus_plus,
    guided_grad_cam,
    hires_cam,
    layer_cam,
    score_cam,
    xgrad_cam,
):
    _no_layer(_cam, "a CAM method already attributes to a layer: pass `layer=` (or `layers=`)")

__all__ = [
    "DFFResult",
    "ablation_cam",
    "deep_feature_factorization",
    "eigen_cam",
    "eigen_grad_cam",
    "full_grad",
    "grad_cam",
    "grad_cam_map",
    "grad_cam_plus_plus",
    "grad_cam_plus_plus_map",
    "guided_grad_cam",
    "hires_cam",
    "hires_cam_map",
    "layer_cam",
    "layer_cam_map",
    "multi_layer",
    "normalize",
    "positive",
    "postprocess",
    "principal_projection",
    "score_cam",
    "upsample",
    "xgrad_cam",
    "xgrad_cam_map",
]
