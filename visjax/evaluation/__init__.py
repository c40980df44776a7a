"""Evaluation of a classifier: arrays in, NumPy out.

:func:`predict` runs a model over a dataset in chunks; the metrics take true class indices and
``(N, C)`` probabilities (or predicted indices): :func:`confusion_matrix`,
:func:`per_class_accuracy`, :func:`roc_auc` and :func:`average_precision` (one-vs-rest, macro,
micro or per class) with their curves, :func:`expected_calibration_error` with the
:func:`calibration_bins` behind the reliability diagram, and :func:`most_confident_errors`.
scikit-learn computes the ranking metrics; ``visjax.plot`` draws the results.
"""

from visjax.evaluation.calibration import CalibrationBins as CalibrationBins
from visjax.evaluation.calibration import calibration_bins as calibration_bins
from visjax.evaluation.calibration import expected_calibration_error as expected_calibration_error
from visjax.evaluation.metrics import confusion_matrix as confusion_matrix
from visjax.evaluation.metrics import most_confident_errors as most_confident_errors
from visjax.evaluation.metrics import per_class_accuracy as per_class_accuracy
from visjax.evaluation.predict import predict as predict
from visjax.evaluation.ranking import Curve as Curve
from visjax.evaluation.ranking import Curves as Curves
from visjax.evaluation.ranking import average_precision as average_precision
from visjax.evaluation.ranking import precision_recall_curves as precision_recall_curves
from visjax.evaluation.ranking import roc_auc as roc_auc
from visjax.evaluation.ranking import roc_curves as roc_curves

__all__ = [
    "CalibrationBins",
    "Curve",
    "Curves",
    "average_precision",
    "calibration_bins",
    "confusion_matrix",
    "expected_calibration_error",
    "most_confident_errors",
    "per_class_accuracy",
    "precision_recall_curves",
    "predict",
    "roc_auc",
    "roc_curves",
]
