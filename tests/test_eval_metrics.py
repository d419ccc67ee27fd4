"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kever.evals import metrics as M
from kever.evals.record import ErrorInfo, Record
from kever.evals.sample import Truth, truth_from_distribution
from kever.evals.scoring import compute_metrics

Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, -1, 0]  # -1: the sample failed


def test_confusion_has_failed_column():
    cm = M.confusion(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 1]]


def test_single_label_metrics_by_hand():
    cm = M.confusion(Y_TRUE, Y_PRED, 3)
    pc = M.per_class(cm)
    assert pc["precision"].tolist() == pytest.approx([0.5, 2 / 3, 0.0])
    assert pc["recall"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert pc["f1"].tolist() == pytest.approx([0.5, 0.8, 0.0])
    assert M.accuracy(cm) == pytest.approx(0.5)
    assert M.balanced_accuracy(cm) == pytest.approx(0.5)
    assert M.macro_f1(cm) == pytest.approx((0.5 + 0.8) / 3)


def test_balanced_accuracy_ignores_absent_classes():
    cm = M.confusion([0, 0, 0, 1], [0, 0, 0, 0], 3)
    assert M.balanced_accuracy(cm) == pytest.approx(0.5)  # (1 + 0) / 2: class 2 never occurs


def test_distribution_metrics_by_hand():
    p = np.array([[0.5, 0.5, 0.0]])
    q = np.array([[0.25, 0.25, 0.5]])
    assert M.kl(p, q)[0] == pytest.approx(math.log(2))
    assert M.chebyshev(p, q)[0] == pytest.approx(0.5)
    assert M.cosine(p, q)[0] == pytest.approx(0.25 / (math.sqrt(0.5) * math.sqrt(0.375)))
    assert M.intersection(p, q)[0] == pytest.approx(0.5)
    assert M.clark(p, q)[0] == pytest.approx(math.sqrt(1 / 9 + 1 / 9 + 1))
    assert M.canberra(p, q)[0] == pytest.approx(2 / 3 + 1)
    # identical distributions: the ideal values
    assert M.kl(p, p)[0] == pytest.approx(0.0)
    assert M.cosine(p, p)[0] == pytest.approx(1.0) and M.intersection(p, p)[0] == pytest.approx(1.0)
    assert M.clark(p, p)[0] == 0.0 and M.canberra(p, p)[0] == 0.0
    # a zero in Q where P has mass is finite (clipped), not inf
    assert np.isfinite(M.kl(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0])


def test_calibration_by_hand():
    conf = np.array([0.9, 0.6, 0.65, 0.2])
    correct = np.array([1, 0, 1, 0])
    assert M.ece(conf, correct) == pytest.approx(0.1 / 4 + 0.125 * 2 / 4 + 0.2 / 4)
    bins = M.reliability(conf, correct)
    assert bins[6]["count"] == 2 and bins[6]["accuracy"] == 0.5
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert M.brier(probs, [0, 1]) == pytest.approx((0.14 + 1.46) / 2)


def test_pearson_by_hand():
    assert M.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / (math.sqrt(2) * math.sqrt(114 / 9)))
    assert math.isnan(M.pearson([1, 1, 1], [1, 2, 3]))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    x = np.array([0, 1, 1, 0, 1, 1, 1, 0, 1, 1], dtype=float)
    a = M.bootstrap_ci(lambda i: x[i].mean(), len(x), reps=500, seed=3)
    b = M.bootstrap_ci(lambda i: x[i].mean(), len(x), reps=500, seed=3)
    assert a == b and a[0] <= 0.7 <= a[1] and a[0] < a[1]
    assert M.bootstrap_ci(lambda i: 0.0, 1) is None


LABELS = ["a", "b", "c"]


def _rec(i, truth: Truth, label=None, scores=None, valence=0.0):
    if label is None:
        return Record(id=str(i), image=f"/x/{i}.jpg", truth=truth, error=ErrorInfo(type="InputError", message="bad image"))
    return Record(id=str(i), image=f"/x/{i}.jpg", truth=truth,
                  judgment={"label": label, "scores": scores, "confidence": max(scores.values()), "valence": valence, "arousal": 0.5})


def test_compute_metrics_tie_policy_and_failures():
    recs = [
        _rec(1, truth_from_distribution({"a": 3, "b": 1, "c": 0}, valence=0.9), "a", {"a": 0.6, "b": 0.4, "c": 0.0}, 0.8),
        _rec(2, truth_from_distribution({"a": 1, "b": 3, "c": 0}, valence=0.1), "a", {"a": 0.5, "b": 0.3, "c": 0.2}, 0.3),
        _rec(3, truth_from_distribution({"a": 2, "b": 2, "c": 0}, valence=0.5), "b", {"a": 0.2, "b": 0.7, "c": 0.1}, 0.5),  # tied truth
        _rec(4, truth_from_distribution({"a": 0, "b": 0, "c": 4})),  # failed
    ]
    m = compute_metrics(recs, LABELS, reps=200)
    assert m["n"] == 4 and m["n_failed"] == 1 and m["n_tied"] == 1 and m["n_single_label"] == 3
    # untied: 1 right (a), 1 wrong (b->a), 1 failed (c)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["balanced_accuracy"] == pytest.approx(1 / 3)
    assert m["confusion"]["matrix"] == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    # tie-any over all four labelled: 1 and 3 right
    assert m["accuracy_tie_any"] == pytest.approx(2 / 4)
    # distribution metrics over the three judged samples, tied one included
    kl = [0.75 * math.log(0.75 / 0.6) + 0.25 * math.log(0.25 / 0.4),
          0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.3),
          0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.7)]
    assert m["n_distribution"] == 3 and m["kl"] == pytest.approx(np.mean(kl), abs=1e-6)
    # calibration over the two judged untied samples: confidences 0.6 (right), 0.5 (wrong)
    assert m["ece"] == pytest.approx((0.4 + 0.5) / 2)
    assert m["valence_r"] == pytest.approx(M.pearson([0.9, 0.1, 0.5], [0.8, 0.3, 0.5]), abs=1e-6)
    assert set(m["ci"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "kl", "ece"}
    lo, hi = m["ci"]["kl"]
    assert lo <= m["kl"] <= hi


def test_missing_labels_in_scores_count_as_zero():
    rec = _rec(1, truth_from_distribution({"a": 1, "b": 1, "c": 2}), "c", {"c": 0.5, "a": 0.5, "zzz": 3.0})
    m = compute_metrics([rec], LABELS, reps=10)
    assert m["labels_outside_set"] == 0
    assert m["intersection"] == pytest.approx(0.25 + 0.0 + 0.5)
