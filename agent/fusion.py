"""The decision: every piece of evidence -> one label distribution and a label, in one pure function.

:func:`decide` is the whole decision of a judgment; the graph's ``reconcile`` node and the
tests call it, and ``Reasoner.relabel`` reuses its parts (:func:`in_label_set`,
:func:`set_pushes`). Every constant is a field of the fusion config
(:class:`~kever.agent.config.FusionConfig`) or of the learned table it reads.

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
from the config (``text`` is capped at ``text_weight_cap``: words in an image inform, never
decide; nothing in the shipped configs is fitted: the fitted numbers are the learned table's).
Everything is additive, so each item's part of every logit is exact; the evidence a judgment
shows, and its order, is its part of the decided label's centred logit in the asked set.

**Votes** (``knowledge/empirical.py``): the learned association table reads perception's dense
outputs; each output's part ``x_j W[j]`` is one item of the ``votes`` stream (exact, no
shrinkage), which also carries the **neutral** logit ``Z_n`` (little emotional evidence). Without
the table, ``Z_n`` is the mean emotion level plus ``NEUTRAL_MARGIN``: neutral wins when no emotion
stands out by more than that.

**In the label set** (:func:`set_logits`): ``logit(t) = log sum_m A[t, m] exp(Z_m / T)`` with the
set's row-normalised projection ``A`` (a label that gathers several Mikels emotions gets their
mean, not their sum), ``Z_n / T`` for a neutral label, plus the set's own learned bias. ``scores``
is its softmax ``p`` (no prior mixed in). ``prior`` is the mean of ``p`` over the photos the table
was fitted on (photos in general); the label is the arg-max of ``lift = p / prior``: the emotion
this photo evokes more than photos in general do. Each item's ``set_pushes`` are its parts of the
set's logits, centred over the labels (exact for a one-to-one set, first-order otherwise).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, Field

MIKELS8 = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")
K = len(MIKELS8)
#: streams built from knowledge hits, by cue; the others come whole from their nodes
KNOWLEDGE_STREAMS = ("colour", "faces", "objects", "text", "vlm_cues", "agent")
#: the learned associations' stream (one item per perception output; exact sums, no shrinkage)
VOTES = "votes"
#: without the association table: the neutral logit's margin over the mean emotion level
NEUTRAL_MARGIN = float(np.log(2.0))
#: votes items shown one by one: the largest by effect; the rest are summed into one item
VOTES_KEPT = 40


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
    neutral: float = Field(0.0, description="its part of the neutral logit Z_n / T (votes items)")
    parts: list[float] = Field(default_factory=list, description="its part of the 8 Mikels logits and the neutral logit, after weight and temperature (9 numbers)")
    set_pushes: dict[str, float] = Field(default_factory=dict, description="its part of each label of the asked set's logit, centred over the set")
    contribution: float = Field(0.0, description="its part of the decided label's centred log-score in the asked set (set_pushes[label])")
    points_to: str = Field("", description="the label of the asked set this item raises most")
    support: int | None = Field(None, description="votes items: how many labelled photos showed this output")
    rule: str = Field("", description="votes items: the rule entry that was the association's prior")
    value: float | None = Field(None, description="votes items: what perception measured (probability, count, statistic)")


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
    neutral_logit: float = Field(0.0, description="Z_n / T: how little emotional evidence there is")
    canonical: list[float] = Field(description="softmax(Z / T) over Mikels 8")
    label_set: list[str]
    set_logits: list[float] = Field(description="the asked set's logits (its scores are their softmax)")
    scores: dict[str, float] = Field(description="p: the distribution over the label set")
    prior: dict[str, float] = Field(description="the label set's base rates: mean p over the photos the table was fitted on (empty without the table: then the label is the arg-max of p)")
    lift: dict[str, float] = Field(description="p / prior: how much more than photos in general; the label is its arg-max (empty without the table)")
    label: str
    runner_up: str | None = Field(None, description="the label with the next highest lift")
    items: list[Item] = Field(default_factory=list, description="every evidence item, by contribution (largest first)")
    bias_contribution: float = Field(0.0, description="the config's class bias and the set's learned bias: their part of the label's centred logit")
    base_rate_contribution: float = Field(0.0, description="-log prior: the base rate's part of the label's lift (centred)")
    view_label: str | None = Field(None, description="the label of the photo's second view (mirrored, 4% cropped), where perception gave one")
    stable: bool | None = Field(None, description="whether the second view keeps the label (None: no second view)")


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


def votes_items(associations: Sequence[Any]) -> list[Item]:
    """The learned table's parts for one photo (``knowledge.empirical.Item``), as fusion items:
    the largest by effect one by one, the rest summed into one item (sums stay exact)."""
    if not associations:
        return []
    eff = [float(np.ptp(a.logits[:K]) + abs(a.logits[K])) for a in associations]
    order = np.argsort(eff)[::-1]
    keep = [associations[i] for i in order[:VOTES_KEPT]]
    rest = [associations[i] for i in order[VOTES_KEPT:]]
    source = "what viewers said: labelled dev photos' votes, the rules as prior"
    out = [Item(id=a.id, stream=VOTES, source=source, text=a.text, strength=1.0, logits=list(map(float, a.logits[:K])),
                neutral=float(a.logits[K]), support=a.support, rule=a.rule, value=round(a.value, 4),
                cue_ids=list(getattr(a, "cue_ids", []) or [])) for a in keep]
    if rest:
        z = np.sum([a.logits for a in rest], axis=0)
        out.append(Item(id="votes:rest", stream=VOTES, source=source, text=f"the small probabilities of {len(rest)} other ImageNet classes and outputs, together",
                        strength=1.0, logits=list(map(float, z[:K])), neutral=float(z[K])))
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
    """Z = sum_s w_s z_s + b (canonical; one image, or rows of images; Mikels 8 only)."""
    Z = np.zeros(K)
    for s, z in z_streams.items():
        Z = Z + stream_weight(cfg, s) * np.asarray(z)
    if cfg.bias:
        Z = Z + np.asarray(cfg.bias, dtype=np.float64)
    return Z


def set_logits(Z: np.ndarray, zn: np.ndarray | float | None, labels, cfg, set_bias: Sequence[float] | None = None) -> np.ndarray:
    """The asked set's logits from the canonical ``Z`` and the neutral logit ``zn`` (both before
    the temperature; rows of images or one): the mean of each label's Mikels emotions in
    probability (row-normalised projection), ``zn / T`` for a neutral label, plus the set's bias."""
    Zt = np.asarray(Z, dtype=np.float64) / cfg.temperature
    A = labels.projection
    m = Zt.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(Zt - m) @ A.T) + m
    if labels.neutral is not None:
        if zn is None:  # no learned neutral logit: the mean emotion level plus a margin
            zn_t = np.log(np.exp(Zt - m).mean(axis=-1)) + m[..., 0] + NEUTRAL_MARGIN
        else:
            zn_t = np.asarray(zn, dtype=np.float64) / cfg.temperature
        out[..., labels.neutral] = zn_t
    if set_bias is not None:
        out = out + np.asarray(set_bias, dtype=np.float64)
    return out


def in_label_set(Z: np.ndarray, zn, labels, cfg, head=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(set logits, p, prior, label index): ``p`` the softmax of the set's logits, ``prior`` the
    set's base rates from ``head`` (:meth:`kever.knowledge.empirical.Associations.head`; uniform
    without it), the label the arg-max of ``log p - log prior``. One image or rows of images."""
    bias = head.bias(labels) if head is not None else None
    logits = set_logits(Z, zn, labels, cfg, bias)
    p = softmax(logits)
    prior = head.prior(labels, cfg) if head is not None else np.full(len(labels.labels), 1.0 / len(labels.labels))
    y = np.argmax(np.log(p + 1e-12) - np.log(prior + 1e-12), axis=-1)
    return logits, p, prior, (int(y) if np.ndim(y) == 0 else y)


def label_share(labels, Z: np.ndarray, cfg) -> np.ndarray:
    """(labels, 8): how each label's logit moves with each Mikels logit ``Z_m / T``:
    ``A[t, m] exp(Z_m / T) / sum_m' A[t, m'] exp(Z_m' / T)`` (exact for a one-to-one set, its
    first-order share otherwise; zero for a neutral label)."""
    Zt = np.asarray(Z, dtype=np.float64) / cfg.temperature
    w = labels.projection * np.exp(Zt - Zt.max())[None, :]
    s = w.sum(axis=1, keepdims=True)
    return np.where(s > 0, w / np.where(s > 0, s, 1.0), 0.0)


def set_pushes(labels, Z: np.ndarray, cfg, parts: Sequence[float]) -> dict[str, float]:
    """An item's part of each label's logit in the asked set, centred over the set: ``parts`` is
    its part of the 8 Mikels logits and of the neutral logit (after weight and temperature),
    ``Z`` the fused canonical logits (the shares of a label's Mikels emotions depend on them).
    The one place a push on a label of a set is computed (decide, relabel)."""
    parts = np.asarray(parts, dtype=np.float64)
    v = label_share(labels, Z, cfg) @ parts[:K]
    if labels.neutral is not None:
        v[labels.neutral] = parts[K] if len(parts) > K else 0.0
    v = v - v.mean()
    return {t: round(float(x), 5) for t, x in zip(labels.labels, v)}


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
    votes: Sequence[Any] | None = None,
    head: Any = None,
    view_delta: Sequence[float] | None = None,
) -> Decision:
    """The whole decision of one judgment (see the module docstring).

    ``labels`` is a :class:`~kever.agent.labels.LabelSet`; ``stream_of(cue)`` names a cue's
    stream; ``only_streams`` keeps just those streams (baselines and ablations); ``votes`` are the
    learned table's parts for this photo and ``head`` the table (label-set biases and base rates);
    ``view_delta``: how the table's 9 logits change for the photo's second view (the label under
    that small change says whether the judgment is stable)."""
    items = knowledge_items(cues, retrieved, stream_of, cfg)
    items += alignment_items(alignment)
    items += distribution_item("deliberation", deliberation, "deliberation", "the cues read against the appraisal patterns of the two closest labels",
                               [_cue_get(c, "id") for c in cues])
    items += distribution_item("direct_vlm", direct_vlm, "vlm", "the VLM named the emotion directly")
    items += votes_items(votes or [])
    if only_streams is not None:
        keep = set(only_streams) | {"direct_vlm"}
        items = [it for it in items if it.stream in keep]
    items = [it for it in items if stream_weight(cfg, it.stream) != 0.0]  # a stream weighed 0 decides nothing
    z = stream_logits(items, cfg)
    Z = combine(z, cfg)
    has_votes = any(it.stream == VOTES for it in items)
    wv = stream_weight(cfg, VOTES)
    zn = wv * sum(it.neutral for it in items if it.stream == VOTES) if has_votes else None
    use_head = head if has_votes else None
    logits, p, prior, y = in_label_set(Z, zn, labels, cfg, use_head)
    names = list(labels.labels)
    label = names[y]
    view_label = None
    if view_delta is not None and has_votes:
        dv = wv * np.asarray(view_delta, dtype=np.float64)
        view_label = names[in_label_set(Z + dv[:K], zn + dv[K], labels, cfg, use_head)[3]]
    for it in items:
        zi = np.asarray(it.logits)
        w = stream_weight(cfg, it.stream) / cfg.temperature
        it.pushes = {m: round(float(x), 5) for m, x in zip(MIKELS8, w * centred(zi))}
        it.parts = [round(float(x), 6) for x in w * zi] + [round(float(w * it.neutral), 6)]
        it.neutral = it.parts[K]
        it.set_pushes = set_pushes(labels, Z, cfg, it.parts)
        it.contribution = it.set_pushes[label]
        sp = np.array(list(it.set_pushes.values()))
        it.points_to = names[int(np.argmax(sp))] if np.ptp(sp) > 1e-9 else ""
        it.logits = [round(float(x), 5) for x in zi]
    items.sort(key=lambda it: -it.contribution)
    lift = p / np.maximum(prior, 1e-12)
    order = np.argsort(-(np.log(p + 1e-12) - np.log(prior + 1e-12)))
    runner = names[int(order[1])] if len(order) > 1 else None
    share = label_share(labels, Z, cfg)

    def centred_in_set(v: np.ndarray) -> np.ndarray:
        return v - v.mean()

    bias_parts = share @ (np.asarray(cfg.bias) / cfg.temperature) if cfg.bias else np.zeros(len(names))
    if use_head is not None and use_head.bias(labels) is not None:
        bias_parts = bias_parts + np.asarray(use_head.bias(labels))
    base = -np.log(prior + 1e-12)
    return Decision(
        streams={s: [float(f"{x:.8g}") for x in softmax(v)] for s, v in z.items()},
        logits=[round(float(x), 6) for x in Z],
        neutral_logit=round(float(zn / cfg.temperature), 6) if zn is not None else 0.0,
        canonical=softmax(Z, 1.0 / cfg.temperature).tolist(),
        label_set=names,
        set_logits=[round(float(x), 6) for x in logits],
        scores=labels.as_dict(p),
        prior={t: round(float(x), 6) for t, x in zip(names, prior)} if use_head is not None else {},
        lift={t: round(float(x), 6) for t, x in zip(names, lift)} if use_head is not None else {},
        label=label,
        runner_up=runner,
        items=items,
        bias_contribution=round(float(centred_in_set(bias_parts)[y]), 5),
        base_rate_contribution=round(float(centred_in_set(base)[y]), 5),
        view_label=view_label,
        stable=None if view_label is None else view_label == label,
    )
