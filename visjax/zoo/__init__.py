"""Small reference models and datasets that work offline (tests, demos, experiments)."""

from visjax.zoo.cnn import digits_cnn as digits_cnn
from visjax.zoo.cnn import init_params as init_digits_cnn_params
from visjax.zoo.data import Digits as Digits
from visjax.zoo.data import Split as Split
from visjax.zoo.data import load_digits as load_digits
from visjax.zoo.images import SAMPLE_IMAGES as SAMPLE_IMAGES
from visjax.zoo.images import sample_image as sample_image
from visjax.zoo.images import sample_images as sample_images
from visjax.zoo.objects import OBJECT_CLASSES as OBJECT_CLASSES
from visjax.zoo.objects import Objects as Objects
from visjax.zoo.objects import ObjectsData as ObjectsData
from visjax.zoo.objects import load_objects as load_objects
from visjax.zoo.objects import make_objects as make_objects
from visjax.zoo.objects import objects_cnn as objects_cnn
from visjax.zoo.objects import trained_objects_cnn as trained_objects_cnn
from visjax.zoo.resnet import digits_resnet as digits_resnet
from visjax.zoo.shapes import SHAPE_CLASSES as SHAPE_CLASSES
from visjax.zoo.shapes import Shapes as Shapes
from visjax.zoo.shapes import load_shapes as load_shapes
from visjax.zoo.shapes import shapes_cnn as shapes_cnn
from visjax.zoo.shapes import trained_shapes_cnn as trained_shapes_cnn
from visjax.zoo.text import MarkedData as MarkedData
from visjax.zoo.text import make_marked as make_marked
from visjax.zoo.text import text_transformer as text_transformer
from visjax.zoo.text import trained_text_transformer as trained_text_transformer
from visjax.zoo.train import History as History
from visjax.zoo.train import evaluate as evaluate
from visjax.zoo.train import train as train
from visjax.zoo.vit import digits_vit as digits_vit

__all__ = [
    "OBJECT_CLASSES",
    "SAMPLE_IMAGES",
    "SHAPE_CLASSES",
    "Digits",
    "History",
    "MarkedData",
    "Objects",
    "ObjectsData",
    "Shapes",
    "Split",
    "digits_cnn",
    "digits_resnet",
    "digits_vit",
    "evaluate",
    "init_digits_cnn_params",
    "load_digits",
    "load_objects",
    "load_shapes",
    "make_marked",
    "make_objects",
    "objects_cnn",
    "sample_image",
    "sample_images",
    "shapes_cnn",
    "text_transformer",
    "train",
    "trained_objects_cnn",
    "trained_shapes_cnn",
    "trained_text_transformer",
]
