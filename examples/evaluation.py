"""Evaluating the trained digits CNN: confusion matrix, calibration, ROC and precision-recall.

The model is the zoo's digits CNN (trained once, ~2 s, then loaded from the weight cache);
``ve.predict`` gives its logits on the 450 test images in chunks, and every metric takes the labels
and the class probabilities (NumPy out). The plots of the same names draw them.

Run: ``python examples/evaluation.py --out out/examples/evaluation`` (``--small``: a quick run).
"""

from __future__ import annotations

from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")

from _common import cli, out_dir, save_all

from visjax import evaluation as ve
from visjax import plot
from visjax.zoo import load_digits
from visjax.zoo.pretrained import trained_digits_cnn


def main(out: str | Path = "out/examples/evaluation", small: bool = False) -> list[Path]:
    out = out_dir(out)
    epochs = 5 if small else 30  # 5 epochs: a less accurate, less calibrated model

    test = load_digits().test
    model = trained_digits_cnn(epochs=epochs).model  # cached by its settings
    probs = np.asarray(jax.nn.softmax(ve.predict(model, test.x)))  # (450, 10)
    y, pred = test.y, probs.argmax(axis=1)

    cm = ve.confusion_matrix(y, pred, normalize="true")  # rows: true class, sum to 1
    ece = ve.expected_calibration_error(y, probs, n_bins=15)
    auc = ve.roc_auc(y, probs, average="macro")
    ap = ve.average_precision(y, probs, average="macro")
    print(f"accuracy {np.mean(pred == y):.3f}, ECE {ece:.4f}, macro AUC {auc:.4f}, AP {ap:.4f}")
    worst = ve.most_confident_errors(y, probs, k=8)  # indices, most confident first

    figures = {
        "confusion": plot.confusion_matrix(cm, annotate=not small),
        "reliability": plot.reliability_diagram(ve.calibration_bins(y, probs, n_bins=15), ece=ece),
        "roc": plot.roc_curves(ve.roc_curves(y, probs)),
        "pr": plot.precision_recall_curves(ve.precision_recall_curves(y, probs)),
        "errors": plot.misclassified_grid(
            test.x[worst],
            true_labels=y[worst],
            predicted_labels=pred[worst],
            confidences=probs[worst].max(axis=1),
        ),
    }
    return save_all(figures, out, "evaluation-")


if __name__ == "__main__":
    cli(main, __doc__, "a quick run (a shorter-trained model)", "folder for the figures")
