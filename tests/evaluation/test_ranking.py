import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from visjax.evaluation import average_precision, precision_recall_curves, roc_auc, roc_curves


def _onehot(y, c):
    return (y[:, None] == np.arange(c)).astype(int)


@pytest.mark.parametrize("average", ["macro", "micro", None])
def test_roc_auc_equals_sklearn(scored, average):
    y, p = scored
    want = skm.roc_auc_score(_onehot(y, 5), p, average=average)
    np.testing.assert_allclose(roc_auc(y, p, average=average), want, rtol=0, atol=1e-9)
    if average == "macro":  # scikit-learn's own multiclass one-vs-rest form agrees
        ovr = skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
        np.testing.assert_allclose(roc_auc(y, p), ovr, rtol=0, atol=1e-9)


@pytest.mark.parametrize("average", ["macro", "micro", None])
def test_average_precision_equals_sklearn(scored, average):
    y, p = scored
    want = skm.average_precision_score(_onehot(y, 5), p, average=average)
    got = average_precision(y, p, average=average)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_curves_match_sklearn_and_areas_match_metrics(scored):
    y, p = scored
    roc = roc_curves(y, p)
    pr = precision_recall_curves(y, p)
    for k in range(5):
        fpr, tpr, _ = skm.roc_curve(y == k, p[:, k])
        np.testing.assert_array_equal(roc.per_class[k].x, fpr)
        np.testing.assert_array_equal(roc.per_class[k].y, tpr)
        prec, rec, _ = skm.precision_recall_curve(y == k, p[:, k])
        np.testing.assert_array_equal(pr.per_class[k].x, rec)
        np.testing.assert_array_equal(pr.per_class[k].y, prec)
    np.testing.assert_allclose([c.area for c in roc.per_class], roc_auc(y, p, average=None))
    assert roc.micro.area == pytest.approx(roc_auc(y, p, average="micro"), abs=1e-12)
    assert roc.macro.area == pytest.approx(roc_auc(y, p), abs=1e-12)
    assert pr.macro.area == pytest.approx(average_precision(y, p), abs=1e-12)
    assert pr.micro.area == pytest.approx(average_precision(y, p, average="micro"), abs=1e-12)
    # the macro ROC curve runs from (0, 0) to (1, 1) and its area is near the mean AUC
    assert roc.macro.x[0] == 0 and roc.macro.x[-1] == 1 and roc.macro.y[-1] == 1
    assert abs(np.trapezoid(roc.macro.y, roc.macro.x) - roc.macro.area) < 0.02


def test_absent_class_nan_auc_zero_ap_with_warnings_macro_over_present(scored):
    y, p = scored
    y = np.where(y == 2, 0, y)  # class 2 never occurs
    with pytest.warns(UserWarning, match="class 2 has no examples.*AUC is NaN"):
        per = roc_auc(y, p, average=None)
    assert np.isnan(per[2])
    with pytest.warns(UserWarning, match="class 2"):
        macro = roc_auc(y, p)
    present = [0, 1, 3, 4]
    assert macro == pytest.approx(np.mean(per[present]), abs=1e-12)
    want = skm.roc_auc_score(_onehot(y, 5)[:, present], p[:, present], average=None)
    np.testing.assert_allclose(per[present], want, rtol=0, atol=1e-9)
    with pytest.warns(UserWarning, match="class 2 has no examples.*average precision is 0.0"):
        ap = average_precision(y, p, average=None)
    assert ap[2] == 0.0
    with pytest.warns(UserWarning, match="class 2"):
        assert average_precision(y, p) == pytest.approx(np.mean(ap[present]), abs=1e-12)
    # micro pools every pair and needs no warning
    micro = roc_auc(y, p, average="micro")
    assert micro == pytest.approx(skm.roc_auc_score(_onehot(y, 5), p, average="micro"))
    with pytest.warns(UserWarning, match="class 2"):
        curves = roc_curves(y, p)
    assert curves.per_class[2].x.size == 0 and np.isnan(curves.per_class[2].area)


def test_single_class_present_gives_nan_auc():
    p = np.array([[0.7, 0.3], [0.6, 0.4]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert np.isnan(roc_auc([0, 0], p))
    assert [str(w.message).split(":")[0] for w in caught] == [
        "class 0 is the only class in `y_true`",
        "class 1 has no examples in `y_true`",
    ]


GOOD = np.array([[0.5, 0.5], [0.2, 0.8]])


@pytest.mark.parametrize("fn", [roc_auc, average_precision, roc_curves, precision_recall_curves])
@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1, 1], GOOD, "`y_true` and `probs` must have the same length"),
        ([0, 1], np.array([[0.5, 0.6], [0.2, 0.8]]), "`probs` rows must sum to 1"),
        ([0, 1], np.array([[1.5, -0.5], [0.2, 0.8]]), r"`probs` must be probabilities in \[0, 1\]"),
        ([0, 1], np.array([[np.nan, 0.5], [0.2, 0.8]]), "`probs` contains NaN"),
        ([0, 1], GOOD[:, :1], "`probs` rows must sum to 1"),
        ([0, 1], GOOD[0], r"`probs` must be \(N, C\)"),
        ([0, 2], GOOD, "`y_true` must hold class indices < 2"),
        ([0.0, 1.0], GOOD, "`y_true` must hold integer"),
        ([], GOOD[:0], "at least one example"),
    ],
)
def test_bad_input_refused_by_name(fn, y, p, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fn(np.asarray(y), p)


def test_bad_average_refused():
    with pytest.raises(ValueError, match="`average`"):
        roc_auc([0, 1], GOOD, average="weighted")
