"""Loss landscapes: directions, 1-D and 2-D slices, and the compiled sweep engine."""

from visjax.base.trees import param_paths as param_paths
from visjax.base.trees import select as select
from visjax.landscape.directions import normalize_direction as normalize_direction
from visjax.landscape.directions import orthogonalize as orthogonalize
from visjax.landscape.directions import random_direction as random_direction
from visjax.landscape.directions import random_plane as random_plane
from visjax.landscape.directions import tree_dot as tree_dot
from visjax.landscape.directions import tree_norm as tree_norm
from visjax.landscape.export import load_npz as load_npz
from visjax.landscape.export import save_npz as save_npz
from visjax.landscape.export import save_vtk as save_vtk
from visjax.landscape.losses import model_losses as model_losses
from visjax.landscape.slices import PlaneThrough as PlaneThrough
from visjax.landscape.slices import interpolate as interpolate
from visjax.landscape.slices import plane as plane
from visjax.landscape.slices import plane_through as plane_through
from visjax.landscape.surface import dataset_mean as dataset_mean
from visjax.landscape.surface import evaluate as evaluate
from visjax.landscape.trajectory import PCADirections as PCADirections
from visjax.landscape.trajectory import TrajectoryWriter as TrajectoryWriter
from visjax.landscape.trajectory import load_trajectory as load_trajectory
from visjax.landscape.trajectory import pca_directions as pca_directions
from visjax.landscape.trajectory import trajectory_steps as trajectory_steps

__all__ = [
    "PCADirections",
    "PlaneThrough",
    "TrajectoryWriter",
    "dataset_mean",
    "evaluate",
    "interpolate",
    "load_npz",
    "load_trajectory",
    "model_losses",
    "normalize_direction",
    "orthogonalize",
    "param_paths",
    "pca_directions",
    "plane",
    "plane_through",
    "random_direction",
    "random_plane",
    "save_npz",
    "save_vtk",
    "select",
    "trajectory_steps",
    "tree_dot",
    "tree_norm",
]
