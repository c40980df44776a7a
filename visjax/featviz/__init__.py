"""Feature visualisation by gradient ascent: parameterisations, transforms, objectives, render.

Lucid's vocabulary (Olah et al., "Feature Visualization", Distill 2017) in JAX: an image
parameterisation (:func:`pixel`, :func:`fourier` with decorrelated colour), random transforms
drawn each step (:func:`standard_transforms`), composable :class:`Objective` values, and
:func:`render`, which optimises many units in one compiled, vmapped program. DeepDream and the
companions (filters, feature maps, top-activating dataset examples) sit beside them.
"""

from visjax.featviz.companions import TopActivating as TopActivating
from visjax.featviz.companions import feature_maps as feature_maps
from visjax.featviz.companions import layer_filters as layer_filters
from visjax.featviz.companions import top_activating as top_activating
from visjax.featviz.dream import deepdream as deepdream
from visjax.featviz.dream import octave_shapes as octave_shapes
from visjax.featviz.objectives import Objective as Objective
from visjax.featviz.objectives import blur as blur
from visjax.featviz.objectives import channel as channel
from visjax.featviz.objectives import class_logit as class_logit
from visjax.featviz.objectives import direction as direction
from visjax.featviz.objectives import diversity as diversity
from visjax.featviz.objectives import l1 as l1
from visjax.featviz.objectives import l2 as l2
from visjax.featviz.objectives import layer as layer
from visjax.featviz.objectives import neuron as neuron
from visjax.featviz.objectives import total_variation as total_variation
from visjax.featviz.param import LUCID_COLOR_CORRELATION as LUCID_COLOR_CORRELATION
from visjax.featviz.param import Param as Param
from visjax.featviz.param import color_correlation as color_correlation
from visjax.featviz.param import fourier as fourier
from visjax.featviz.param import pixel as pixel
from visjax.featviz.rendering import Rendering as Rendering
from visjax.featviz.rendering import render as render
from visjax.featviz.transforms import compose as compose
from visjax.featviz.transforms import jitter as jitter
from visjax.featviz.transforms import output_shape as output_shape
from visjax.featviz.transforms import pad as pad
from visjax.featviz.transforms import random_rotate as random_rotate
from visjax.featviz.transforms import random_scale as random_scale
from visjax.featviz.transforms import standard_transforms as standard_transforms

__all__ = [
    "LUCID_COLOR_CORRELATION",
    "Objective",
    "Param",
    "Rendering",
    "TopActivating",
    "blur",
    "channel",
    "class_logit",
    "color_correlation",
    "compose",
    "deepdream",
    "direction",
    "diversity",
    "feature_maps",
    "fourier",
    "jitter",
    "l1",
    "l2",
    "layer",
    "layer_filters",
    "neuron",
    "octave_shapes",
    "output_shape",
    "pad",
    "pixel",
    "random_rotate",
    "random_scale",
    "render",
    "standard_transforms",
    "top_activating",
    "total_variation",
]
