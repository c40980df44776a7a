"""The report's evaluation section: how well the model does on the held-out data, and where not."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from visjax import attribution as va
from visjax import evaluation as ev
from visjax import plot
from visjax.base.io import save_figure
from visjax.report.context import DemoContext
from visjax.report.html import Figure, Section


def evaluation_section(ctx: DemoContext) -> Section:
    """Confusion matrix, ROC and precision-recall curves, reliability diagram with its ECE,
    per-class accuracy, and the most confident mistakes with their integrated gradients."""
    test = ctx.test
    y = np.asarray(test.y)
    logits = np.asarray(ev.predict(ctx.model, test.x), np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)  # float64: rows sum to 1 well within 1e-6
    pred = probs.argmax(axis=1)
    n = ctx.num_classes
    accuracy = float((pred == y).mean())
    ece = ev.expected_calibration_error(y, probs)
    roc = ev.roc_curves(y, probs)
    pr = ev.precision_recall_curves(y, probs)
    per_class = ev.per_class_accuracy(y, pred, n_classes=n)
    worst = int(np.nanargmin(per_class))
    out = ctx.out
    figs = [
        Figure(
            save_figure(
                plot.confusion_matrix(ev.confusion_matrix(y, pred, n_classes=n)),
                out / "evaluation_confusion.png",
            ),
            "Confusion matrix of the test set: true classes in rows, predicted in columns.",
        ),
        Figure(
            save_figure(plot.roc_curves(roc), out / "evaluation_roc.png"),
            f"One-vs-rest ROC curves per class; macro AUC {roc.macro.area:.4f}.",
        ),
        Figure(
            save_figure(plot.precision_recall_curves(pr), out / "evaluation_pr.png"),
            f"One-vs-rest precision-recall curves per class; macro AP {pr.macro.area:.4f}.",
        ),
        Figure(
            save_figure(
                plot.reliability_diagram(ev.calibration_bins(y, probs), ece=ece),
                out / "evaluation_reliability.png",
            ),
            f"Reliability diagram (15 confidence bins) and examples per bin; ECE {ece:.4f}.",
        ),
        Figure(
            save_figure(
                plot.per_class_accuracy(per_class, overall=accuracy),
                out / "evaluation_per_class.png",
            ),
            f"Test accuracy per class; overall {accuracy:.2%} (dashed).",
        ),
    ]
    k = 4 if ctx.quick else 8
    errors = ev.most_confident_errors(y, probs, k=k)
    x_err = jnp.asarray(test.x[errors])
    ig = (
        va.integrated_gradients(ctx.model, x_err, jnp.asarray(pred[errors]), n_steps=32)
        if errors.size
        else None
    )
    figs.append(
        Figure(
            save_figure(
                plot.misclassified_grid(
                    x_err,
                    true_labels=y[errors],
                    predicted_labels=pred[errors],
                    confidences=probs[errors].max(axis=1),
                    attributions=ig,
                    title="most confident mistakes (IG of the predicted class)",
                ),
                out / "evaluation_mistakes.png",
            ),
            f"The {errors.size} most confidently misclassified test examples with the "
            "integrated gradients of the predicted class.",
        )
    )
    return Section(
        "Evaluation",
        f"On {y.size} held-out examples the model is {accuracy:.2%} accurate (lowest class: "
        f"{worst}, {per_class[worst]:.2%}); macro ROC AUC {roc.macro.area:.4f}, macro average "
        f"precision {pr.macro.area:.4f}, expected calibration error {ece:.4f} (15 equal-width "
        "confidence bins). The confusion matrix counts true classes (rows) against predicted "
        "ones (columns): off-diagonal cells are the mistakes. In the reliability diagram, bars "
        "below the diagonal mean over-confidence; the last figure shows the "
        f"{errors.size} most confidently misclassified examples (true -> predicted, confidence) "
        "with the integrated gradients (32 steps, zero baseline) of the predicted class: red "
        "pixels pushed the model towards its wrong answer.",
        figures=figs,
    )
