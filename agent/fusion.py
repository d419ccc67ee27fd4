"""Numeric fusion of evidence streams into one label distribution.

Every stream is a distribution over the canonical Mikels-8 labels. They are pooled
log-linearly (a weighted product of experts):

    log p(y) = (1 / T) * sum_s w_s * log(q_s(y) + floor)  + const

with weights ``w_s``, temperature ``T`` and ``floor`` from the fusion config
(``fusion_configs/*.yaml``). A stream with no evidence is uniform and so changes nothing.
The result is mapped to the requested label set by a fixed matrix (see ``labels.py``).
The pooled distribution is then calibrated by mixing in the prior (``prior_mix``,
see :func:`mix_prior`): a linear mixture that lowers the KL to vote distributions, capped per
image so that the arg-max of the pool stays the arg-max after mixing.
The label is the arg-max of this distribution: it is decided by numbers, never by free text.
"""

from __future__ import annotations

import numpy as np

from kever.agent.config import FusionConfig

MIKELS8 = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")


def normalise(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, None)
    s = v.sum()
    return v / s if s > 0 else np.full(v.shape, 1.0 / v.size)


def softmax(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64) * scale
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def pool(streams: dict[str, np.ndarray], cfg: FusionConfig, n: int = len(MIKELS8)) -> np.ndarray:
    """Log-linear pooling of the streams present, with the config's weights and temperature."""
    logits = np.zeros(n)
    for name, q in streams.items():
        w = cfg.weight(name)
        if w == 0.0:
            continue
        logits += w * np.log(normalise(q) + cfg.floor)
    return softmax(logits, 1.0 / cfg.temperature)


def mix_prior(p: np.ndarray, prior: np.ndarray, mix: float) -> np.ndarray:
    """``(1 - a) * p + a * prior`` with ``a = min(mix, cap)``, where ``cap`` is the largest share
    that keeps the arg-max of ``p`` strictly the arg-max (only labels the prior favours over the
    decided one can overtake it). Calibrates confidence towards the base rates; the label is
    unchanged."""
    p = normalise(p)
    if mix <= 0.0:
        return p
    prior = normalise(prior)
    y = int(np.argmax(p))
    gap = p[y] - p
    lift = prior - prior[y]
    mask = lift > 0
    cap = float(np.min(gap[mask] / (gap[mask] + lift[mask]))) if mask.any() else 1.0
    a = min(float(mix), 0.999 * cap)
    return (1.0 - a) * p + a * prior


def prior_stream(cfg: FusionConfig, n: int = len(MIKELS8)) -> np.ndarray:
    return normalise(np.asarray(cfg.prior, dtype=np.float64)) if cfg.prior else np.full(n, 1.0 / n)


def confidence(p: np.ndarray) -> float:
    """Probability of the decided label."""
    return float(np.max(p))


def margin(p: np.ndarray) -> float:
    top = np.sort(p)[::-1]
    return float(top[0] - top[1]) if top.size > 1 else 1.0
