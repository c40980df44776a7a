import numpy as np
import pytest
from sklearn import metrics as skm

from visjax.evaluation import confusion_matrix, most_confident_errors, per_class_accuracy


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_equals_sklearn(scored, normalize):
    y, p = scored
    pred = p.argmax(1)
    got = confusion_matrix(y, pred, n_classes=7, normalize=normalize)  # 2 classes never seen
    want = skm.confusion_matrix(y, pred, labels=np.arange(7), normalize=normalize)
    assert got.shape == (7, 7)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    if normalize is None:
        assert got.dtype == np.int64
        assert got.sum() == len(y)


def test_confusion_matrix_infers_classes_and_handles_empty():
    assert confusion_matrix([0, 2], [1, 1]).shape == (3, 3)
    assert confusion_matrix([], [], n_classes=3).tolist() == [[0] * 3] * 3
    assert confusion_matrix(np.zeros(0, int), np.zeros(0, int)).shape == (0, 0)
    assert confusion_matrix([], [], n_classes=2, normalize="true").tolist() == [[0, 0], [0, 0]]


def test_per_class_accuracy_is_the_recall(scored):
    y, p = scored
    pred = p.argmax(1)
    got = per_class_accuracy(y, pred, n_classes=6)
    want = skm.recall_score(y, pred, labels=np.arange(5), average=None)
    np.testing.assert_allclose(got[:5], want, rtol=0, atol=1e-9)
    assert np.isnan(got[5])
    assert np.isnan(per_class_accuracy([], [], n_classes=2)).all()


def test_most_confident_errors():
    y = np.array([0, 1, 2, 0, 1])
    p = np.array(
        [[0.1, 0.9, 0.0], [0.0, 1.0, 0.0], [0.6, 0.4, 0.0], [0.2, 0.1, 0.7], [0.9, 0.1, 0.0]]
    )
    assert most_confident_errors(y, p).tolist() == [0, 4, 3, 2]
    assert most_confident_errors(y, p, k=2).tolist() == [0, 4]
    assert most_confident_errors(y[:0], p[:0]).shape == (0,)
    assert most_confident_errors([1], [[0.0, 1.0]]).tolist() == []


@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        (([0, 1], [0]), {}, "`y_true` and `y_pred`"),
        (([0.0, 1.0], [0, 1]), {}, "`y_true`"),
        (([0, 1], [True, False]), {}, "`y_pred`"),
        (([[0, 1]], [[0, 1]]), {}, "`y_true`"),
        (([0, -1], [0, 1]), {}, "`y_true`"),
        (([0, 3], [0, 1]), {"n_classes": 3}, "`y_true`"),
        (([0, 1], [0, 1]), {"n_classes": 0}, "`n_classes`"),
        (([0, 1], [0, 1]), {"normalize": "rows"}, "`normalize`"),
    ],
)
def test_confusion_matrix_refuses_bad_input(args, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        confusion_matrix(*args, **kwargs)


def test_most_confident_errors_refuses_bad_k():
    with pytest.raises(ValueError, match="`k`"):
        most_confident_errors([0], [[1.0, 0.0]], k=0)
