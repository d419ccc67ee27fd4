"""Evaluation metrics, numpy only. Pure functions over arrays, plus ``compute_metrics`` over logs.

Tie policy (documented, applied everywhere):

- A ground truth whose top labels are tied (Flickr_LDL: two emotions with the same vote count)
  has ``label=None`` and ``labels=[the tied set]``.
- Single-label metrics (accuracy, balanced accuracy, macro-F1, per-class, confusion,
  calibration) are computed over the *untied* samples only; this is the usual protocol and the
  one the dataset README's figures use.
- ``accuracy_tie_any`` is reported beside them over *all* labelled samples, counting a
  prediction correct when it is any of the tied top labels.
- Distribution metrics (KL, Chebyshev, cosine, intersection, Clark, Canberra) use every
  sample with a ground-truth distribution, tied or not.

Failed samples (the system raised an error) count as wrong in the single-label metrics and
land in the confusion matrix's ``failed`` column; they have no distribution, so distribution,
calibration and valence/arousal metrics leave them out (``n_failed`` says how many).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12
FAILED = -1


# ---- single-label -----------------------------------------------------------------------

def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """k x (k+1) counts: rows truth, columns prediction, last column failed (y_pred == -1)."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    cols = np.where(y_pred < 0, k, y_pred)
    m = np.bincount(y_true * (k + 1) + cols, minlength=k * (k + 1))
    return m.reshape(k, k + 1)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm[:, :k].sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def accuracy(cm: np.ndarray) -> float:
    n = cm.sum()
    return float(np.trace(cm[:, : cm.shape[0]]) / n) if n else float("nan")


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present in the truth (the paper's average per-class accuracy)."""
    pc = per_class(cm)
    present = pc["support"] > 0
    return float(pc["recall"][present].mean()) if present.any() else float("nan")


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over classes present in the truth or the predictions."""
    pc = per_class(cm)
    k = cm.shape[0]
    present = (pc["support"] > 0) | (cm[:, :k].sum(axis=0) > 0)
    return float(pc["f1"][present].mean()) if present.any() else float("nan")


# ---- distributions (rows are distributions; truth P, prediction Q) ----------------------

def _norm(a: np.ndarray) -> np.ndarray:
    a = np.clip(np.asarray(a, dtype=float), 0, None)
    s = a.sum(axis=-1, keepdims=True)
    return np.divide(a, s, out=np.full_like(a, 1.0 / a.shape[-1]), where=s > 0)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(P || Q) per row, natural log; 0 log 0 = 0; Q clipped at 1e-12."""
    p, q = _norm(p), _norm(q)
    q = np.clip(q, EPS, None)
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / q), 0.0)
    return terms.sum(axis=-1)


def chebyshev(p, q):
    return np.abs(_norm(p) - _norm(q)).max(axis=-1)


def cosine(p, q):
    p, q = _norm(p), _norm(q)
    den = np.linalg.norm(p, axis=-1) * np.linalg.norm(q, axis=-1)
    return np.divide((p * q).sum(axis=-1), den, out=np.zeros(p.shape[:-1]), where=den > 0)


def intersection(p, q):
    return np.minimum(_norm(p), _norm(q)).sum(axis=-1)


def clark(p, q):
    p, q = _norm(p), _norm(q)
    s = p + q
    r = np.divide((p - q) ** 2, s ** 2, out=np.zeros_like(p), where=s > 0)
    return np.sqrt(r.sum(axis=-1))


def canberra(p, q):
    p, q = _norm(p), _norm(q)
    s = p + q
    return np.divide(np.abs(p - q), s, out=np.zeros_like(p), where=s > 0).sum(axis=-1)


DISTRIBUTION_METRICS = {"kl": kl, "chebyshev": chebyshev, "cosine": cosine, "intersection": intersection,
                        "clark": clark, "canberra": canberra}
LOWER_IS_BETTER = {"kl", "chebyshev", "clark", "canberra", "ece", "brier"}


# ---- calibration -------------------------------------------------------------------------

def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict]:
    conf = np.asarray(conf, dtype=float)
    correct = np.asarray(correct, dtype=float)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        out.append({"lo": b / bins, "hi": (b + 1) / bins, "count": int(m.sum()),
                    "confidence": float(conf[m].mean()) if m.any() else None,
                    "accuracy": float(correct[m].mean()) if m.any() else None})
    return out


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins of |acc - conf| * share."""
    n = len(conf)
    if n == 0:
        return float("nan")
    return float(sum(abs(b["accuracy"] - b["confidence"]) * b["count"] / n
                     for b in reliability(conf, correct, bins) if b["count"]))


def brier(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Multi-class Brier score: mean over samples of sum_k (p_k - onehot_k)^2."""
    probs = np.asarray(probs, dtype=float)
    if len(probs) == 0:
        return float("nan")
    onehot = np.eye(probs.shape[1])[np.asarray(y_true, dtype=int)]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


# ---- bootstrap ---------------------------------------------------------------------------

def bootstrap_ci(stat, n: int, reps: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float] | None:
    """Percentile interval of ``stat(idx)`` over ``reps`` resamples of range(n) (seeded)."""
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(reps)], dtype=float)
    vals = vals[~np.isnan(vals)]
    if len(vals) == 0:
        return None
    return float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))
