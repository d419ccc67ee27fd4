"""Fitting the decision's few parameters on logged streams, and honest held-out estimates.

A judgment logs each evidence stream's canonical distribution (``streams``), so the decision
can be re-run for any fusion config without a model: ``Z = sum_s w_s log q_s + b`` is exactly
what :func:`kever.agent.fusion.fuse` computes from the stream logits, and every prediction here
goes through that function.

What is fitted (and nothing else):

1. ``weights`` (one per stream present) by minimising the class-balanced cross-entropy against
   the vote distributions, ``-(1/n) sum_i sum_y c_y t_iy log p_i(y)`` with
   ``c_y = (1/8) / mean_i t_iy`` (every label weighs alike, as in balanced accuracy), plus
   ``lam * ||w - w0||^2``: a multinomial logistic fit of one number per stream, pulled toward
   the untuned design point (``w0`` = its weights). It is convex; L-BFGS-B finds its optimum,
   with each weight in ``[0, WEIGHT_MAX]`` (text at most its cap). ``lam`` is chosen from
   ``LAMBDAS`` by an inner 5-fold cross-validation of that loss on the fitting images only.
   Class biases (8 more numbers, penalised the same way) are an option the shipped procedure
   does not use: under cross-validation on dev they raised the recall of rare labels at the
   cost of their precision (see the README's table).
2. ``temperature`` and ``prior_mix`` (and ``prior`` = the fitting images' mean vote
   distribution) by a grid search minimising the mean KL to the vote distributions; neither
   can change a label.

:func:`cross_validate` runs this whole procedure inside repeated k-fold cross-validation:
every held-out prediction comes from parameters fitted on the other folds only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kever.agent.config import FusionConfig
from kever.agent.fusion import K, MIKELS8, centred, fuse
from kever.evals import metrics as M

WEIGHT_MAX = 5.0
LAMBDAS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
GRID_T = (0.5, 0.6, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
GRID_MIX = tuple(round(0.05 * i, 2) for i in range(20))  # 0 .. 0.95


@dataclass
class Logged:
    """A run's logged streams and truths, image by image."""

    ids: list[str]
    z: list[dict[str, np.ndarray]]  # stream -> centred log q_s (= z_s up to a constant)
    t: np.ndarray  # (n, 8) vote distributions
    judgments: list[dict]

    def subset(self, idx: Sequence[int]) -> "Logged":
        idx = list(idx)
        return Logged([self.ids[i] for i in idx], [self.z[i] for i in idx], self.t[idx], [self.judgments[i] for i in idx])

    def streams(self) -> list[str]:
        return sorted({s for z in self.z for s in z})

    def __len__(self) -> int:
        return len(self.ids)


def load_run(rundir: Path) -> tuple[Logged, list]:
    from kever.evals.rundir import RunDir

    recs = [r for r in RunDir(rundir).records() if r.ok and r.truth.distribution]
    recs.sort(key=lambda r: r.id)
    z, t = [], []
    for r in recs:
        z.append({s: centred(np.log(np.clip([q[m] for m in MIKELS8], 1e-12, None))) for s, q in r.judgment["streams"].items()})
        p = np.array([r.truth.distribution[m] for m in MIKELS8], dtype=float)
        t.append(p / p.sum())
    return Logged([r.id for r in recs], z, np.array(t).reshape(-1, K), [r.judgment for r in recs]), recs


# ----------------------------------------------------------------------------------- predicting

def predict(data: Logged, cfg: FusionConfig, only: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, reported distributions, uncalibrated canonical) for every image, by ``fuse``
    on the (n, 8) stream arrays."""
    streams = [s for s in data.streams() if only is None or s in only]
    X = _design(data, streams)
    _, canonical, _, reported, y = fuse({s: X[:, j] for j, s in enumerate(streams)}, cfg)
    return np.asarray(y), reported, canonical


def _design(data: Logged, streams: Sequence[str]) -> np.ndarray:
    """(n, S, 8) stream logits; a stream absent from an image is zeros (it moves nothing)."""
    X = np.zeros((len(data), len(streams), K))
    for i, z in enumerate(data.z):
        for j, s in enumerate(streams):
            if s in z:
                X[i, j] = z[s]
    return X


def class_weights(t: np.ndarray, balance: float = 1.0) -> np.ndarray:
    """``((1/8) / base rate) ** balance``: 1 weighs every label alike (balanced accuracy's view),
    0 weighs every vote alike (the base rates' view)."""
    return ((1.0 / K) / np.clip(t.mean(axis=0), 1e-3, None)) ** balance


def _loss(theta, X, t, c, w0, lam):
    S = X.shape[1]
    w, b = theta[:S], theta[S:]
    Z = np.einsum("nsk,s->nk", X, w) + b
    Z = Z - Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    ct = t * c
    n = len(t)
    loss = -(ct * logp).sum() / n + lam * (((w - w0) ** 2).sum() + (b ** 2).sum())
    p = np.exp(logp)
    g_z = (ct.sum(axis=1, keepdims=True) * p - ct) / n  # dL/dZ
    g_w = np.einsum("nk,nsk->s", g_z, X) + 2 * lam * (w - w0)
    g_b = g_z.sum(axis=0) + 2 * lam * b
    return loss, np.concatenate([g_w, g_b])


def fit_decision(data: Logged, base: FusionConfig, streams: Sequence[str], lam: float, bias: bool = False,
                 balance: float = 1.0) -> FusionConfig:
    from scipy.optimize import minimize

    X = _design(data, streams)
    c = class_weights(data.t, balance)
    w0 = np.array([base.weight(s) for s in streams])
    bounds = [(0.0, base.text_weight_cap if s == "text" else WEIGHT_MAX) for s in streams]
    bounds += [(None, None) if bias else (0.0, 0.0)] * K
    theta0 = np.concatenate([np.clip(w0, 0, WEIGHT_MAX), np.zeros(K)])
    res = minimize(_loss, theta0, args=(X, data.t, c, w0, lam), jac=True, method="L-BFGS-B", bounds=bounds)
    S = len(streams)
    w, b = res.x[:S], res.x[S:]
    weights = dict(base.weights, **{s: round(float(x), 4) for s, x in zip(streams, w)})
    return base.model_copy(update={"weights": weights, "bias": [round(float(x), 4) for x in (b - b.mean())] if bias else None,
                                   "temperature": 1.0, "prior": None, "prior_mix": 0.0})


def folds_of(n: int, k: int, seed: int) -> list[np.ndarray]:
    return np.array_split(np.random.default_rng(seed).permutation(n), k)


def heldout_loss(train: Logged, test: Logged, cfg: FusionConfig, streams: Sequence[str], balance: float = 1.0) -> float:
    """The fitting loss (without its penalty) on images the fit did not see."""
    X = _design(test, streams)
    w = np.array([cfg.weight(s) for s in streams])
    b = np.asarray(cfg.bias) if cfg.bias else np.zeros(K)
    Z = np.einsum("nsk,s->nk", X, w) + b
    Z = Z - Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return float(-(test.t * class_weights(train.t, balance) * logp).sum() / len(test))


def choose_lambda(data: Logged, base: FusionConfig, streams: Sequence[str], bias: bool = False, k: int = 5) -> tuple[float, dict]:
    """``lam`` from ``LAMBDAS`` by an inner k-fold CV of the fitting loss on ``data`` alone."""
    folds = folds_of(len(data), k, seed=1000)
    scores = {}
    for lam in LAMBDAS:
        tot = 0.0
        for f in range(k):
            train = data.subset(np.concatenate([folds[i] for i in range(k) if i != f]))
            test = data.subset(folds[f])
            tot += heldout_loss(train, test, fit_decision(train, base, streams, lam, bias), streams) * len(test)
        scores[lam] = tot / len(data)
    return min(scores, key=scores.get), {str(k): round(v, 5) for k, v in scores.items()}


def fit_calibration(data: Logged, cfg: FusionConfig, only: Sequence[str] | None = None, *, mix: bool = True) -> FusionConfig:
    prior = data.t.mean(axis=0)
    best, best_kl = cfg, np.inf
    for T in GRID_T:
        for a in (GRID_MIX if mix else (0.0,)):
            cand = cfg.model_copy(update={"temperature": T, "prior": prior.round(4).tolist() if mix else None, "prior_mix": a})
            _, rep, _ = predict(data, cand, only)
            kl = float(np.mean(M.kl(data.t, rep)))
            if kl < best_kl - 1e-12:
                best, best_kl = cand, kl
    return best


# ----------------------------------------------------------------------------------- procedures

#: A procedure fits on ``train`` and returns a function predicting (labels, distributions).
Procedure = Callable[[Logged], Callable[[Logged], tuple[np.ndarray, np.ndarray]]]


def full_procedure(base: FusionConfig, streams: Sequence[str] | None = None, bias: bool = False,
                   notes: list | None = None) -> Procedure:
    """The shipped procedure: stream weights (``lam`` by inner CV), then temperature + prior
    mixture, all on the fitting images. ``bias=True`` also fits 8 class biases (an ablation)."""

    def fit(train: Logged):
        ss = list(streams or train.streams())
        cfg, lam, _ = fit_final(train, base, ss, bias)
        if notes is not None:
            notes.append({"lambda": lam, "weights": {s: cfg.weight(s) for s in ss}, "bias": cfg.bias,
                          "temperature": cfg.temperature, "prior_mix": cfg.prior_mix})
        return lambda test: predict(test, cfg, ss)[:2]

    return fit


def fit_final(data: Logged, base: FusionConfig, streams: Sequence[str], bias: bool = False) -> tuple[FusionConfig, float, dict]:
    """The procedure once on all of ``data``: (config, lam, the inner CV's loss per lam)."""
    lam, table = choose_lambda(data, base, streams, bias)
    cfg = fit_calibration(data, fit_decision(data, base, streams, lam, bias), streams)
    return cfg, lam, table


def untuned_procedure(base: FusionConfig, streams: Sequence[str] | None = None) -> Procedure:
    """Nothing fitted: the design point as it is."""
    return lambda train: (lambda test: predict(test, base, streams)[:2])


def temperature_procedure(stream: str) -> Procedure:
    """One stream as it is, with only a temperature fitted for KL (the text-zeroshot recipe)."""

    def fit(train: Logged):
        cfg = fit_calibration(train, FusionConfig(weights={stream: 1.0}), [stream], mix=False)
        return lambda test: predict(test, cfg, [stream])[:2]

    return fit


def prior_procedure() -> Procedure:
    """The fitting images' mean vote distribution for every image."""

    def fit(train: Logged):
        prior = train.t.mean(axis=0)
        return lambda test: (np.full(len(test), int(np.argmax(prior))), np.tile(prior, (len(test), 1)))

    return fit


def score(y: np.ndarray, P: np.ndarray, t: np.ndarray) -> dict:
    untied = [i for i in range(len(t)) if np.isclose(t[i], t[i].max()).sum() == 1]
    yt = t[untied].argmax(axis=1)
    cm = M.confusion(yt, y[untied], K)
    conf = P[untied, y[untied]]
    return {"accuracy": M.accuracy(cm), "balanced_accuracy": M.balanced_accuracy(cm), "macro_f1": M.macro_f1(cm),
            "kl": float(np.mean(M.kl(t, P))), "ece": M.ece(conf, (y[untied] == yt).astype(float))}


def cross_validate(data: Logged, procedure: Procedure, folds: int = 5, repeats: int = 3) -> dict:
    """Repeated k-fold: per repeat, every image predicted by parameters fitted on the other folds."""
    per_repeat, first = [], None
    for seed in range(repeats):
        y = np.zeros(len(data), dtype=int)
        P = np.zeros_like(data.t)
        parts = folds_of(len(data), folds, seed)
        for f in range(folds):
            train = data.subset(np.concatenate([parts[i] for i in range(folds) if i != f]))
            y[parts[f]], P[parts[f]] = procedure(train)(data.subset(parts[f]))
        per_repeat.append(score(y, P, data.t))
        if first is None:
            first = (y.copy(), P.copy())
    mean = {k: float(np.mean([r[k] for r in per_repeat])) for k in per_repeat[0]}
    sd = {k: float(np.std([r[k] for r in per_repeat])) for k in per_repeat[0]}
    return {"mean": mean, "sd": sd, "repeats": repeats, "folds": folds, "predictions": first}


def write_cv_run(out: Path, name: str, source_recs: list, data: Logged, y: np.ndarray, P: np.ndarray, note: str) -> Path:
    """The held-out predictions of repeat 0 as a run directory, scored by the harness."""
    from kever.evals.rundir import Manifest, RunConfig, RunDir
    from kever.evals.runner import rescore

    rd = RunDir(out)
    out.mkdir(parents=True, exist_ok=True)
    src = {r.id: r for r in source_recs}
    first = source_recs[0]
    cfg = RunConfig(dataset="flickr_ldl", root=str(Path(first.image).parent.parent), label_set="mikels8", labels=list(MIKELS8),
                    system=name, rationale=False, factory="cross-validation")
    rd.write_manifest(Manifest(config=cfg, models={"system": name, "note": note}, n_total=len(data)))
    with rd.samples_path.open("w", encoding="utf-8") as fh:
        for i, sid in enumerate(data.ids):
            r = src[sid]
            j = {"label": MIKELS8[int(y[i])], "scores": {m: float(x) for m, x in zip(MIKELS8, P[i])}, "streams": {}}
            fh.write(r.model_copy(update={"judgment": j}).model_dump_json() + "\n")
    rescore(rd)
    return out


def dump(obj) -> str:
    def conv(x):
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        raise TypeError(type(x))

    return json.dumps(obj, indent=2, default=conv)
