"""``compute_metrics``: every figure in ``metrics.json``, from the logged records alone (no models)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from kever.evals import metrics as M
from kever.evals.record import Record

HEADLINE = ["accuracy", "balanced_accuracy", "macro_f1", "kl", "chebyshev", "cosine", "intersection", "ece", "brier"]


def predicted_distribution(judgment: dict, labels: list[str]) -> np.ndarray:
    """The judgment's scores in ``labels`` order; labels it did not score get 0; renormalised."""
    scores = {str(k).lower(): float(v) for k, v in (judgment.get("scores") or {}).items()}
    q = np.array([max(scores.get(k, 0.0), 0.0) for k in labels], dtype=float)
    s = q.sum()
    return q / s if s > 0 else np.full(len(labels), 1.0 / len(labels))


def predicted_index(judgment: dict, labels: list[str], q: np.ndarray) -> int:
    lab = str(judgment.get("label", "")).lower()
    return labels.index(lab) if lab in labels else int(np.argmax(q))


def _r(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), 6)


def compute_metrics(records: Iterable[Record], labels: list[str], reps: int = 1000, seed: int = 0, bins: int = 10) -> dict:
    recs = list(records)
    k = len(labels)
    index = {l: i for i, l in enumerate(labels)}
    out: dict = {"labels": labels, "n": len(recs), "n_failed": sum(not r.ok for r in recs)}

    # single-label arrays over untied labelled samples (failed included as wrong)
    y_true, y_pred, probs, ok_mask = [], [], [], []
    tie_any, n_tied, outside = [], 0, 0
    for r in recs:
        t = r.truth
        q = predicted_distribution(r.judgment, labels) if r.ok else None
        pi = predicted_index(r.judgment, labels, q) if r.ok else M.FAILED
        if r.ok and str(r.judgment.get("label", "")).lower() not in index:
            outside += 1
        if t.labels:
            tie_any.append(pi >= 0 and labels[pi] in t.labels)
        if t.label is None:
            n_tied += bool(t.labels)
            continue
        if t.label not in index:
            continue
        y_true.append(index[t.label])
        y_pred.append(pi)
        probs.append(q if q is not None else np.full(k, np.nan))
        ok_mask.append(r.ok)
    y_true_a = np.array(y_true, dtype=int)
    y_pred_a = np.array(y_pred, dtype=int)
    probs_a = np.array(probs, dtype=float).reshape(-1, k)
    ok_a = np.array(ok_mask, dtype=bool)
    out.update({"n_single_label": len(y_true), "n_tied": n_tied, "labels_outside_set": outside})
    ci: dict = {}
    if len(y_true):
        cm = M.confusion(y_true_a, y_pred_a, k)
        pc = M.per_class(cm)
        out["accuracy"] = _r(M.accuracy(cm))
        out["balanced_accuracy"] = _r(M.balanced_accuracy(cm))
        out["macro_f1"] = _r(M.macro_f1(cm))
        out["per_class"] = {l: {m: _r(pc[m][i]) for m in ("precision", "recall", "f1", "support")} for i, l in enumerate(labels)}
        out["confusion"] = {"rows": labels, "columns": labels + ["failed"], "matrix": cm.tolist()}
        n = len(y_true_a)

        def cm_of(idx):
            return M.confusion(y_true_a[idx], y_pred_a[idx], k)

        ci["accuracy"] = M.bootstrap_ci(lambda i: M.accuracy(cm_of(i)), n, reps, seed)
        ci["balanced_accuracy"] = M.bootstrap_ci(lambda i: M.balanced_accuracy(cm_of(i)), n, reps, seed)
        ci["macro_f1"] = M.bootstrap_ci(lambda i: M.macro_f1(cm_of(i)), n, reps, seed)
        if ok_a.any():
            p_ok, y_ok, pred_ok = probs_a[ok_a], y_true_a[ok_a], y_pred_a[ok_a]
            conf = p_ok[np.arange(len(p_ok)), pred_ok]
            correct = (pred_ok == y_ok).astype(float)
            out["ece"] = _r(M.ece(conf, correct, bins))
            out["brier"] = _r(M.brier(p_ok, y_ok))
            out["reliability"] = M.reliability(conf, correct, bins)
            m = len(p_ok)
            ci["ece"] = M.bootstrap_ci(lambda i: M.ece(conf[i], correct[i], bins), m, reps, seed)
            ci["brier"] = M.bootstrap_ci(lambda i: M.brier(p_ok[i], y_ok[i]), m, reps, seed)
    if tie_any:
        out["accuracy_tie_any"] = _r(float(np.mean(tie_any)))

    # distribution metrics: every successful sample with a ground-truth distribution
    P, Q = [], []
    for r in recs:
        if r.ok and r.truth.distribution:
            P.append([r.truth.distribution.get(l, 0.0) for l in labels])
            Q.append(predicted_distribution(r.judgment, labels))
    if P:
        P_a, Q_a = np.array(P), np.array(Q)
        out["n_distribution"] = len(P)
        for name, fn in M.DISTRIBUTION_METRICS.items():
            vals = fn(P_a, Q_a)
            out[name] = _r(float(vals.mean()))
            ci[name] = M.bootstrap_ci(lambda i, v=vals: float(v[i].mean()), len(vals), reps, seed)

    # valence / arousal where the data has them
    for dim in ("valence", "arousal"):
        xs, ys = [], []
        for r in recs:
            tv = getattr(r.truth, dim)
            if r.ok and tv is not None and r.judgment.get(dim) is not None:
                xs.append(tv)
                ys.append(float(r.judgment[dim]))
        if xs:
            out[f"{dim}_r"] = _r(M.pearson(xs, ys))
            out[f"n_{dim}"] = len(xs)

    secs = [r.seconds for r in recs if r.seconds is not None]
    if secs:
        out["seconds_per_sample"] = _r(float(np.mean(secs)))
    out["ci"] = {m: ([_r(v[0]), _r(v[1])] if v else None) for m, v in ci.items()}
    out["bootstrap"] = {"reps": reps, "seed": seed, "level": 0.95}
    out["tie_policy"] = ("single-label metrics over untied samples (failed = wrong); accuracy_tie_any over all "
                         "labelled samples, any tied top label counts; distribution metrics over every sample "
                         "with a distribution")
    return out
