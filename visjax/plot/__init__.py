"""Plotting: one function per picture, arrays in, a matplotlib Figure out.

Single-axes plots take ``ax=None`` (draw on the given axes, return ``ax.figure``), multi-panel
plots ``fig=None`` (draw into the given Figure or SubFigure and return it); by default both make
and return a new Figure.
"""

from visjax.plot.attention import attention_grid as attention_grid
from visjax.plot.attention import attention_heatmap as attention_heatmap
from visjax.plot.attention import attention_html as attention_html
from visjax.plot.attention import patch_attention as patch_attention
from visjax.plot.attention import token_scores as token_scores
from visjax.plot.attribution import attribution_grid as attribution_grid
from visjax.plot.attribution import overlay as overlay
from visjax.plot.cam import cam_grid as cam_grid
from visjax.plot.cam import cam_overlay as cam_overlay
from visjax.plot.curvature import eigenvalue_density as eigenvalue_density
from visjax.plot.curvature import eigenvalues_over_training as eigenvalues_over_training
from visjax.plot.curves import training_curves as training_curves
from visjax.plot.data import class_balance as class_balance
from visjax.plot.data import class_samples as class_samples
from visjax.plot.data import pixel_statistics as pixel_statistics
from visjax.plot.embed import embedding_scatter as embedding_scatter
from visjax.plot.embed import embedding_thumbnails as embedding_thumbnails
from visjax.plot.evaluation import confusion_matrix as confusion_matrix
from visjax.plot.evaluation import misclassified_grid as misclassified_grid
from visjax.plot.evaluation import per_class_accuracy as per_class_accuracy
from visjax.plot.evaluation import precision_recall_curves as precision_recall_curves
from visjax.plot.evaluation import reliability_diagram as reliability_diagram
from visjax.plot.evaluation import roc_curves as roc_curves
from visjax.plot.featviz import feature_map_grid as feature_map_grid
from visjax.plot.featviz import filter_grid as filter_grid
from visjax.plot.featviz import image_grid as image_grid
from visjax.plot.featviz import objective_curves as objective_curves
from visjax.plot.gradstats import gradient_norms as gradient_norms
from visjax.plot.gradstats import histograms_over_time as histograms_over_time
from visjax.plot.gradstats import loss_accuracy as loss_accuracy
from visjax.plot.gradstats import noise_scale as noise_scale
from visjax.plot.gradstats import update_ratios as update_ratios
from visjax.plot.inspect import activation_fractions as activation_fractions
from visjax.plot.inspect import activation_heatmaps as activation_heatmaps
from visjax.plot.inspect import activation_histograms as activation_histograms
from visjax.plot.inspect import weight_changes as weight_changes
from visjax.plot.inspect import weight_histogram_grid as weight_histogram_grid
from visjax.plot.landscape import loss_contour as loss_contour
from visjax.plot.landscape import loss_curve as loss_curve
from visjax.plot.landscape import loss_surface_3d as loss_surface_3d
from visjax.plot.landscape import trajectory_contour as trajectory_contour
from visjax.plot.landscape_runs import runs_contour as runs_contour
from visjax.plot.landscape_runs import surface_row as surface_row
from visjax.plot.lrp import conservation_curve as conservation_curve
from visjax.plot.lrp import relevance_heatmaps as relevance_heatmaps
from visjax.plot.perturbation import feature_values as feature_values
from visjax.plot.perturbation import feature_values_grid as feature_values_grid

__all__ = [
    "activation_fractions",
    "activation_heatmaps",
    "activation_histograms",
    "attention_grid",
    "attention_heatmap",
    "attention_html",
    "attribution_grid",
    "cam_grid",
    "cam_overlay",
    "class_balance",
    "class_samples",
    "confusion_matrix",
    "conservation_curve",
    "eigenvalue_density",
    "eigenvalues_over_training",
    "embedding_scatter",
    "embedding_thumbnails",
    "feature_map_grid",
    "feature_values",
    "feature_values_grid",
    "filter_grid",
    "gradient_norms",
    "histograms_over_time",
    "image_grid",
    "loss_accuracy",
    "loss_contour",
    "loss_curve",
    "loss_surface_3d",
    "misclassified_grid",
    "noise_scale",
    "objective_curves",
    "overlay",
    "patch_attention",
    "per_class_accuracy",
    "pixel_statistics",
    "precision_recall_curves",
    "relevance_heatmaps",
    "reliability_diagram",
    "roc_curves",
    "runs_contour",
    "surface_row",
    "token_scores",
    "training_curves",
    "trajectory_contour",
    "update_ratios",
    "weight_changes",
    "weight_histogram_grid",
]
