"""Small reference models and datasets that work offline (tests, demos, experiments)."""

from visjax.zoo.cnn import digits_cnn as digits_cnn
from visjax.zoo.cnn import init_params as init_digits_cnn_params
from visjax.zoo.data import Digits as Digits
from visjax.zoo.data import Split as Split
from visjax.zoo.data import load_digits as load_digits
from visjax.zoo.train import History as History
from visjax.zoo.train import evaluate as evaluate
from visjax.zoo.train import train as train

__all__ = [
    "Digits",
    "History",
    "Split",
    "digits_cnn",
    "evaluate",
    "init_digits_cnn_params",
    "load_digits",
    "train",
]
