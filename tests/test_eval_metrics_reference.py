"""kever's metrics against scikit-learn and SciPy, on random and edge cases.

kever computes them with numpy (``kever.evals.metrics``) because it needs things the libraries
do not give in one call: a ``failed`` column in the confusion matrix, the bootstrap resampling
of a confusion matrix thousands of times, and one tie policy. These tests hold that code to the
kept libraries' numbers.

The one deliberate difference: a failed sample (``y_pred == -1``) counts as wrong but is not a
class. scikit-learn, given -1 in ``y_pred``, makes it a class of its own and averages its F1
(always 0) into macro-F1; kever does not, so macro-F1 is compared with ``labels=`` the real
classes present in truth or predictions. Without failures the two agree with sklearn's defaults.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kever.evals import metrics as M
from kever.evals.record import ErrorInfo, Record
from kever.evals.sample import truth_from_label
from kever.evals.scoring import compute_metrics

skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the 'test' extra")
scipy_distance = pytest.importorskip("scipy.spatial.distance")
scipy_stats = pytest.importorskip("scipy.stats")


def reference(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict:
    """The same figures from scikit-learn."""
    classes = list(range(k))
    present = sorted((set(y_true.tolist()) | set(y_pred.tolist())) - {M.FAILED})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" is expected here
        p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
        return {
            "accuracy": skm.accuracy_score(y_true, y_pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
            "macro_f1": skm.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
            "precision": p, "recall": r, "f1": f, "support": s,
            "confusion": skm.confusion_matrix(y_true, y_pred, labels=classes + [M.FAILED])[:k],
        }


def ours(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict:
    cm = M.confusion(y_true, y_pred, k)
    pc = M.per_class(cm)
    return {"accuracy": M.accuracy(cm), "balanced_accuracy": M.balanced_accuracy(cm), "macro_f1": M.macro_f1(cm),
            **pc, "confusion": cm}


def assert_same(y_true, y_pred, k) -> None:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    a, b = ours(y_true, y_pred, k), reference(y_true, y_pred, k)
    assert a["confusion"].tolist() == b["confusion"].tolist()
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert a[key] == pytest.approx(b[key], abs=1e-12), (key, y_true.tolist(), y_pred.tolist())
    for key in ("precision", "recall", "f1", "support"):
        assert np.allclose(a[key], b[key], atol=1e-12), (key, y_true.tolist(), y_pred.tolist())


def random_case(rng: np.random.Generator):
    k = int(rng.integers(2, 10))
    n = int(rng.integers(1, 80))
    truth_classes = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)  # some classes absent
    pred_classes = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)  # some never predicted
    y_true = rng.choice(truth_classes, n)
    y_pred = np.where(rng.random(n) < rng.uniform(0, 0.7), y_true, rng.choice(pred_classes, n))
    y_pred = np.where(rng.random(n) < rng.choice([0.0, 0.1, 0.4]), M.FAILED, y_pred)
    return y_true, y_pred, k


def test_random_cases_match_sklearn():
    rng = np.random.default_rng(11)
    for _ in range(400):
        assert_same(*random_case(rng))


@pytest.mark.parametrize("y_true, y_pred, k", [
    ([0, 0, 1, 1], [0, 0, 0, 0], 3),              # class 1 never predicted, class 2 absent everywhere
    ([0, 0, 0, 0], [0, 1, 2, 0], 3),              # predicted classes that the truth never has
    ([2, 2, 2], [2, 2, 2], 3),                     # one class, all right
    ([1], [0], 2),                                 # one sample, wrong
    ([0, 1, 2], [-1, -1, -1], 3),                  # every sample failed
    ([0, 1, 1, 2], [1, -1, 1, 0], 4),              # failures mixed in, class 3 absent
    (list(range(8)) * 3, [7 - x for x in range(8)] * 3, 8),  # Mikels-8, all wrong
])
def test_edge_cases_match_sklearn(y_true, y_pred, k):
    assert_same(y_true, y_pred, k)


def test_without_failures_sklearn_defaults_agree():
    """No labels= given to sklearn at all: the usual definitions, with nothing bent to kever's."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        y_true, y_pred, k = random_case(rng)
        y_pred = np.where(y_pred == M.FAILED, y_true, y_pred)
        cm = M.confusion(y_true, y_pred, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert M.macro_f1(cm) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12)
            assert M.balanced_accuracy(cm) == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred), abs=1e-12)


def test_failures_count_as_wrong_not_as_a_class():
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, -1, 1, 1])
    cm = M.confusion(y_true, y_pred, 2)
    assert M.macro_f1(cm) == pytest.approx(skm.f1_score(y_true, y_pred, labels=[0, 1], average="macro"))
    assert M.macro_f1(cm) > skm.f1_score(y_true, y_pred, average="macro")  # sklearn's extra "-1" class, F1 0


def test_compute_metrics_matches_sklearn_through_the_records():
    """The scoring path: labels as strings, failed records, a label outside the set."""
    labels = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"]
    rng = np.random.default_rng(2)
    records, y_true, y_pred = [], [], []
    for i in range(120):
        t = int(rng.choice([0, 1, 2, 6, 7]))  # three classes never in the truth
        roll = rng.random()
        if roll < 0.1:
            records.append(Record(id=str(i), image="x", truth=truth_from_label(labels[t]),
                                  error=ErrorInfo(type="RuntimeError", message="x")))
            p = M.FAILED
        else:
            p = t if roll < 0.45 else int(rng.integers(0, 8))
            scores = {l: (0.6 if j == p else 0.4 / 7) for j, l in enumerate(labels)}
            records.append(Record(id=str(i), image="x", truth=truth_from_label(labels[t]),
                                  judgment={"label": labels[p], "scores": scores, "confidence": 0.6}))
        y_true.append(t)
        y_pred.append(p)
    m = compute_metrics(records, labels, reps=10)
    ref = reference(np.array(y_true), np.array(y_pred), 8)
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert m[key] == pytest.approx(ref[key], abs=1e-6), key
    assert m["confusion"]["matrix"] == ref["confusion"].tolist()
    for j, l in enumerate(labels):
        for key in ("precision", "recall", "f1", "support"):
            assert m["per_class"][l][key] == pytest.approx(float(ref[key][j]), abs=1e-6), (l, key)


def test_distribution_metrics_match_scipy():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.full(8, 0.5), 50)
    q = rng.dirichlet(np.full(8, 0.5), 50)
    p[::7, 3] = 0.0  # zeros in the truth
    p /= p.sum(axis=1, keepdims=True)
    assert np.allclose(M.kl(p, q), [scipy_stats.entropy(a, b) for a, b in zip(p, q)], atol=1e-9)
    assert np.allclose(M.chebyshev(p, q), [scipy_distance.chebyshev(a, b) for a, b in zip(p, q)])
    assert np.allclose(M.cosine(p, q), [1 - scipy_distance.cosine(a, b) for a, b in zip(p, q)])
    assert np.allclose(M.canberra(p, q), [scipy_distance.canberra(a, b) for a, b in zip(p, q)])
    x, y = rng.random(30), rng.random(30)
    assert M.pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y)[0], abs=1e-12)


def test_brier_matches_sklearn_where_it_has_multiclass():
    rng = np.random.default_rng(8)
    probs = rng.dirichlet(np.ones(4), 40)
    y = rng.integers(0, 4, 40)
    try:
        ref = skm.brier_score_loss(y, probs, labels=[0, 1, 2, 3])
    except (TypeError, ValueError):
        pytest.skip("this scikit-learn's brier_score_loss is binary only")
    assert M.brier(probs, y) == pytest.approx(ref, abs=1e-12)
