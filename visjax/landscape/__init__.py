"""Loss landscapes: directions, 1-D and 2-D slices, and the compiled sweep engine."""

from visjax.base.grids import cover_grid as cover_grid
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
from visjax.landscape.solutions import Projection as Projection
from visjax.landscape.solutions import RunsSurface as RunsSurface
from visjax.landscape.solutions import SideBySide as SideBySide
from visjax.landscape.solutions import SolutionPlane as SolutionPlane
from visjax.landscape.solutions import SurfaceSpec as SurfaceSpec
from visjax.landscape.solutions import project as project
from visjax.landscape.solutions import runs_pca_plane as runs_pca_plane
from visjax.landscape.solutions import runs_surface as runs_surface
from visjax.landscape.solutions import side_by_side as side_by_side
from visjax.landscape.solutions import solutions_plane as solutions_plane
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
    "Projection",
    "RunsSurface",
    "SideBySide",
    "SolutionPlane",
    "SurfaceSpec",
    "TrajectoryWriter",
    "cover_grid",
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
    "project",
    "random_direction",
    "random_plane",
    "runs_pca_plane",
    "runs_surface",
    "save_npz",
    "save_vtk",
    "select",
    "side_by_side",
    "solutions_plane",
    "trajectory_steps",
    "tree_dot",
    "tree_norm",
]
