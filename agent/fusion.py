"""The decision: every piece of evidence -> one label distribution and a label, in one pure function.

:func:`decide` is the whole decision of a judgment; the graph's ``reconcile`` node, the
fitting script (``benchmarks/tune_fusion.py``, through :func:`fuse`) and the tests call it.
Every constant is a field of the fusion config (:class:`~kever.agent.config.FusionConfig`).

**Evidence items.** A knowledge hit retrieved for a cue (a curated entry, a derived ImageNet
entry, a lexicon word) is one item of its cue's *stream* (colour, faces, objects, text, vlm_cues,
agent). Its strength is

    a = confidence(cue) * share * loadedness

``confidence`` is the cue's (lowered when alignment could not find a claimed cue in the image),
``share`` is the hit's part of its cue's retrieval scores (a cue that was searched spreads one
vote over its hits; a measured cue that names its entries gives each a full vote), and
``loadedness = min(1, sum of the entry's weights)`` says how emotionally loaded the entry is
(derived ImageNet entries scale their weights by it). Its profile is the centred log of its
normalised weights, ``phi(y) = log(w(y) + floor) - mean_y log(w(y) + floor)``.

**Streams.** A knowledge stream's logits are the shrunk mean of its items' profiles,

    z_s(y) = sum_i a_i phi_i(y) / (shrinkage + sum_i a_i)

so one weak cue moves little and many cues do not multiply-count. Alignment is a stream
whose items are the cues (text-embedding alignment: each cue's cosines to the label
descriptions, centred, mixed by cue confidence, times ``alignment_scale``) or one image-level
item (CLIP). Deliberation and the direct-VLM answer are one-item streams (centred log).

**Fusion.** ``Z(y) = sum_s w_s z_s(y) + b(y)`` with stream weights ``w`` and class biases ``b``
from the config (the only fitted decision parameters; ``text`` is capped at
``text_weight_cap``: words in an image inform, never decide). Everything is additive, so each
item's contribution to the decided label's log-score is exact:
``c_i = w_s * a_i * phi_i(label) / (shrinkage + sum_s a)``; the evidence a judgment shows,
and its order, is this quantity. The canonical Mikels-8 distribution ``softmax(Z / T)`` is
carried to the requested label set by its matrix ``M`` (``labels.py``), the label is its
arg-max there, and the reported distribution mixes in the base rates (``prior_mix``, the
only place the prior enters), capped so the label stays the arg-max *in that label set*.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, Field

MIKELS8 = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")
K = len(MIKELS8)
#: streams built from knowledge hits, by cue; the others come whole from their nodes
KNOWLEDGE_STREAMS = ("colour", "faces", "objects", "text", "vlm_cues", "agent")


# ----------------------------------------------------------------------------------- helpers

def normalise(v: np.ndarray) -> np.ndarray:
    """Rows made to sum to 1 (negative entries clipped to 0; an all-zero row becomes uniform)."""
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, None)
    s = v.sum(axis=-1, keepdims=True)
    return np.where(s > 0, v / np.where(s > 0, s, 1.0), 1.0 / v.shape[-1])


def softmax(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64) * scale
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=-1, keepdims=True)


def weights_vector(weights: dict[str, float]) -> np.ndarray:
    return np.array([max(0.0, float(weights.get(m, 0.0))) for m in MIKELS8])


def profile(weights: dict[str, float], floor: float) -> np.ndarray:
    """Centred log of an entry's normalised emotion weights (zeros if it has none)."""
    w = weights_vector(weights)
    if w.sum() <= 0:
        return np.zeros(K)
    return centred(np.log(w / w.sum() + floor))


def mix_prior(p: np.ndarray, prior: np.ndarray, mix: float) -> np.ndarray:
    """``(1 - a) p + a prior`` with ``a = min(mix, cap)``: ``cap`` is the largest share that keeps
    the arg-max of ``p`` strictly the arg-max (only labels the prior favours over the decided
    one can overtake it). Calibrates confidence toward the base rates; the label is unchanged.
    Works on one distribution or on rows of them."""
    p = normalise(p)
    if mix <= 0.0:
        return p
    prior = normalise(prior)
    y = np.argmax(p, axis=-1)[..., None]
    gap = np.take_along_axis(p, y, axis=-1) - p
    lift = prior - np.take_along_axis(np.broadcast_to(prior, p.shape), y, axis=-1)
    mask = lift > 0
    ratio = np.where(mask, gap / np.where(mask, gap + lift, 1.0), np.inf)
    cap = np.minimum(ratio.min(axis=-1, keepdims=True), 1.0 / 0.999)
    a = np.minimum(float(mix), 0.999 * cap)
    return (1.0 - a) * p + a * prior


def confidence(p: np.ndarray) -> float:
    """Probability of the decided label."""
    return float(np.max(p))


def margin(p: np.ndarray) -> float:
    top = np.sort(np.asarray(p))[::-1]
    return float(top[0] - top[1]) if top.size > 1 else 1.0


# ----------------------------------------------------------------------------------- records

class Item(BaseModel):
    """One piece of evidence and what it did to the decision."""

    id: str = Field(description="knowledge entry id, or 'align:<cue id>' / 'align:image' / '<stream>' for whole-stream items")
    stream: str
    source: str = ""
    text: str = ""
    cue_ids: list[str] = Field(default_factory=list)
    weights: dict[str, float] = Field(default_factory=dict, description="the entry's emotion weights (knowledge items)")
    strength: float = Field(0.0, description="a: cue confidence x share x loadedness (1 for whole-stream items)")
    logits: list[float] = Field(default_factory=list, description="this item's additive part of Z (canonical order)")
    pushes: dict[str, float] = Field(default_factory=dict, description="its part of each Mikels label's centred log-score (w_s z_i / T)")
    contribution: float = Field(0.0, description="its part of the decided label's centred log-score")
    points_to: str = Field("", description="the Mikels label this item raises most")


class AlignmentInput(BaseModel):
    """What the align node measured: rows of similarities (cues x Mikels-8, or one image row)."""

    rows: list[list[float]]
    cue_ids: list[str | None]
    weights: list[float]
    scale: float
    source: str
    texts: list[str] = Field(default_factory=list)


class Decision(BaseModel):
    streams: dict[str, list[float]] = Field(description="each stream's canonical distribution softmax(z_s), before fusion")
    logits: list[float] = Field(description="Z, canonical order")
    canonical: list[float] = Field(description="softmax(Z / T) over Mikels 8, before calibration")
    label_set: list[str]
    uncalibrated: list[float] = Field(description="the label-set distribution the label is the arg-max of")
    scores: dict[str, float] = Field(description="the reported distribution over the label set (calibrated)")
    label: str
    runner_up: str | None = None
    items: list[Item] = Field(default_factory=list, description="every evidence item, by contribution (largest first)")
    bias_contribution: float = 0.0


# ----------------------------------------------------------------------------------- streams

def _cue_get(cue: Any, name: str, default=None):
    return cue.get(name, default) if isinstance(cue, dict) else getattr(cue, name, default)


def effective_confidence(cue: Any) -> float:
    """A claimed cue that alignment could not find in the image loses weight."""
    conf = float(_cue_get(cue, "confidence", 0.0))
    verified = _cue_get(cue, "verified")
    return conf if verified is None else conf * (0.25 + 0.75 * float(verified))


def knowledge_items(cues: Sequence[Any], retrieved: Sequence[Any], stream_of, cfg) -> list[Item]:
    """One item per (stream, entry): hits of every cue, with their strengths and profiles."""
    by_id = {_cue_get(c, "id"): c for c in cues}
    merged: dict[tuple[str, str], Item] = {}
    profiles: dict[tuple[str, str], np.ndarray] = {}
    for r in retrieved:
        cue = by_id.get(_cue_get(r, "cue_id"))
        hits = [h for h in (_cue_get(r, "hits") or []) if weights_vector(h.weights).sum() > 0]
        if cue is None or not hits:
            continue
        stream = stream_of(cue)
        conf = effective_confidence(cue)
        if stream == "text":
            conf = min(conf, cfg.text_weight_cap)
        direct = bool(_cue_get(cue, "kb_entries"))
        total = sum(max(float(h.score), 0.0) for h in hits) or 1.0
        for h in hits:
            share = 1.0 if direct else max(float(h.score), 0.0) / total
            loaded = min(1.0, float(weights_vector(h.weights).sum()))
            a = conf * share * loaded
            if a <= 0:
                continue
            key = (stream, h.id)
            if key in merged:
                it = merged[key]
                it.strength += a
                it.cue_ids = sorted(set(it.cue_ids) | {_cue_get(cue, "id")})
            else:
                merged[key] = Item(id=h.id, stream=stream, source=h.source, text=h.text, cue_ids=[_cue_get(cue, "id")],
                                   weights={m: round(float(v), 3) for m, v in zip(MIKELS8, weights_vector(h.weights)) if v > 0},
                                   strength=a)
                profiles[key] = profile(h.weights, cfg.floor)
    for key, it in merged.items():
        it.logits = profiles[key].tolist()  # per unit strength until scaled in stream_logits
    return list(merged.values())


def alignment_items(al: AlignmentInput | None) -> list[Item]:
    if al is None or not al.rows:
        return []
    out = []
    w = np.asarray(al.weights, dtype=np.float64)
    if w.sum() <= 0:
        return []
    for row, cid, wi, text in zip(al.rows, al.cue_ids, w, al.texts or [""] * len(al.rows)):
        z = al.scale * centred(np.asarray(row)) * wi / w.sum()
        out.append(Item(id=f"align:{cid}" if cid else "align:image", stream="alignment", source=al.source,
                        text=text, cue_ids=[cid] if cid else [], strength=float(wi), logits=z.tolist()))
    return out


def distribution_item(stream: str, q: Sequence[float] | None, source: str, text: str, cue_ids: Sequence[str] = ()) -> list[Item]:
    if q is None:
        return []
    z = centred(np.log(normalise(np.asarray(q, dtype=np.float64)) + 1e-6))
    return [Item(id=stream, stream=stream, source=source, text=text, cue_ids=list(cue_ids), strength=1.0, logits=z.tolist())]


def stream_logits(items: list[Item], cfg) -> dict[str, np.ndarray]:
    """z_s per stream; knowledge items' ``logits`` are rescaled in place to their part of z_s."""
    out: dict[str, np.ndarray] = {}
    by_stream: dict[str, list[Item]] = {}
    for it in items:
        by_stream.setdefault(it.stream, []).append(it)
    for s, its in by_stream.items():
        if s in KNOWLEDGE_STREAMS:
            denom = cfg.shrinkage + sum(it.strength for it in its)
            for it in its:
                it.logits = (np.asarray(it.logits) * it.strength / denom).tolist()
        out[s] = np.sum([np.asarray(it.logits) for it in its], axis=0)
    return out


# ----------------------------------------------------------------------------------- fusion

def stream_weight(cfg, stream: str) -> float:
    w = cfg.weight(stream)
    return min(w, cfg.text_weight_cap) if stream == "text" else w


def combine(z_streams: dict[str, np.ndarray], cfg) -> np.ndarray:
    """Z = sum_s w_s z_s + b (canonical; one image, or rows of images)."""
    Z = np.zeros(K)
    for s, z in z_streams.items():
        Z = Z + stream_weight(cfg, s) * np.asarray(z)
    if cfg.bias:
        Z = Z + np.asarray(cfg.bias, dtype=np.float64)
    return Z


def fuse(z_streams: dict[str, np.ndarray], cfg, matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(Z, canonical, uncalibrated label-set distribution, reported distribution, label index)
    from stream logits alone: what :func:`decide` does after building the streams, and what the
    fitting script re-runs on logged streams (there each ``z_s`` is an (n, 8) array of images;
    an image without the stream has zeros)."""
    Z = combine(z_streams, cfg)
    canonical = softmax(Z, 1.0 / cfg.temperature)
    p_set, reported, y = in_label_set(canonical, cfg, matrix)
    return Z, canonical, p_set, reported, y


def in_label_set(canonical: np.ndarray, cfg, matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(distribution over the label set, its calibrated form, the label's index): the canonical
    distribution carried by the set's matrix, the label its arg-max, the base rates (carried the
    same way) mixed in without moving the label."""
    M = np.eye(K) if matrix is None else matrix
    p_set = normalise(np.asarray(canonical, dtype=np.float64) @ M.T)
    prior = prior_vector(cfg)
    reported = mix_prior(p_set, normalise(M @ prior), cfg.prior_mix) if prior is not None else p_set
    y = np.argmax(p_set, axis=-1)
    return p_set, reported, (int(y) if np.ndim(y) == 0 else y)


def prior_vector(cfg) -> np.ndarray | None:
    return normalise(np.asarray(cfg.prior, dtype=np.float64)) if cfg.prior else None


def label_share(matrix: np.ndarray, canonical: np.ndarray, y: int) -> np.ndarray:
    """How the log-score of label ``y`` of a label set moves with each Mikels logit: the
    decided label's log-score ``log sum_m M[y, m] exp(Z_m / T)`` moves by ``pi_m`` per unit of
    ``Z_m / T`` (exact for a one-to-one label set, its first-order share otherwise)."""
    return normalise(np.asarray(matrix)[y] * np.asarray(canonical))


def decide(
    cues: Sequence[Any],
    retrieved: Sequence[Any],
    alignment: AlignmentInput | None,
    cfg,
    labels,
    *,
    stream_of,
    deliberation: Sequence[float] | None = None,
    direct_vlm: Sequence[float] | None = None,
    only_streams: Sequence[str] | None = None,
) -> Decision:
    """The whole decision of one judgment (see the module docstring).

    ``labels`` is a :class:`~kever.agent.labels.LabelSet`; ``stream_of(cue)`` names a cue's
    stream; ``only_streams`` keeps just those streams (baselines and ablations)."""
    items = knowledge_items(cues, retrieved, stream_of, cfg)
    items += alignment_items(alignment)
    items += distribution_item("deliberation", deliberation, "deliberation", "the cues read against the appraisal patterns of the two closest labels",
                               [_cue_get(c, "id") for c in cues])
    items += distribution_item("direct_vlm", direct_vlm, "vlm", "the VLM named the emotion directly")
    if only_streams is not None:
        keep = set(only_streams) | {"direct_vlm"}
        items = [it for it in items if it.stream in keep]
    z = stream_logits(items, cfg)
    Z, canonical, p_set, reported, y = fuse(z, cfg, labels.matrix)
    label = labels.labels[y]
    pi = label_share(labels.matrix, canonical, y)
    for it in items:
        zi = np.asarray(it.logits)
        push = stream_weight(cfg, it.stream) * centred(zi) / cfg.temperature
        it.pushes = {m: round(float(x), 5) for m, x in zip(MIKELS8, push)}
        it.contribution = round(float(pi @ push), 5)
        it.points_to = MIKELS8[int(np.argmax(zi))] if np.ptp(zi) > 0 else ""
        it.logits = [round(float(x), 5) for x in zi]
    items.sort(key=lambda it: -it.contribution)
    order = np.argsort(-p_set)
    runner = labels.labels[int(order[1])] if len(order) > 1 else None
    bias = centred(np.asarray(cfg.bias)) if cfg.bias else np.zeros(K)
    return Decision(
        streams={s: [float(f"{x:.8g}") for x in softmax(v)] for s, v in z.items()},
        logits=[round(float(x), 6) for x in Z],
        canonical=canonical.tolist(),
        label_set=list(labels.labels),
        uncalibrated=p_set.tolist(),
        scores=labels.as_dict(reported),
        label=label,
        runner_up=runner,
        items=items,
        bias_contribution=round(float(pi @ bias / cfg.temperature), 5),
    )
