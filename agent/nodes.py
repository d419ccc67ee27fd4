"""The reasoning graph's nodes. Each takes the state and returns the fields it updates.

perceive -> describe_cues -> retrieve -> align -> reconcile -> (deliberate -> reconcile)* -> rationale
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kever.agent.config import FusionConfig, Preset, SystemConfig
from kever.agent.cues import perception_cues
from kever.agent.fusion import MIKELS8, margin, mix_prior, normalise, pool, prior_stream, softmax
from kever.agent.judgment import Cue, Evidence
from kever.agent.state import CueHits, GraphState
from kever.agent.vlm_cues import extract_json, parse_cues, to_cues
from kever.prompts import load_prompt

log = logging.getLogger(__name__)

#: cue family -> knowledge stream (perception cues); VLM cues go to ``vlm_cues`` except text.
FAMILY_STREAM = {
    "colour": "colour",
    "lighting": "colour",
    "composition": "colour",
    "face": "faces",
    "object": "objects",
    "scene": "objects",
    "text": "text",
}


@dataclass
class Components:
    """Everything the graph needs, constructed once (models loaded) and shared by calls."""

    preset: Preset
    system: SystemConfig
    fusion: FusionConfig
    perceiver: Any
    kb: Any = None
    embedder: Any = None
    vlm: Any = None
    aligner: Any = None
    text_lm: Any = None
    agent: Any = None  # kever.agent.consult.ToolAgent
    _cache: dict = field(default_factory=dict)

    def cached(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Text embeddings through the knowledge base's query cache when there is one."""
        if self.kb is not None and hasattr(self.kb, "embed"):
            return self.kb.embed(texts)
        return self.embedder.encode(texts)


def stream_of(cue: Cue) -> str:
    if cue.source.startswith("agent:"):
        return "agent"
    if cue.source.startswith("vlm:") and cue.family != "text":
        return "vlm_cues"
    return FAMILY_STREAM.get(cue.family, "objects")


def effective_confidence(cue: Cue) -> float:
    """A claimed cue that alignment could not find in the image loses weight."""
    if cue.verified is None:
        return cue.confidence
    return cue.confidence * (0.25 + 0.75 * cue.verified)


def _weights_vector(weights: dict[str, float]) -> np.ndarray:
    return np.array([max(0.0, float(weights.get(m, 0.0))) for m in MIKELS8])


def _image_part_messages(prompt, **fields) -> list[dict]:
    msgs = prompt.messages(**fields)
    msgs[-1] = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": msgs[-1]["content"]}]}
    return msgs


class Nodes:
    def __init__(self, c: Components):
        self.c = c

    # -- perceive ---------------------------------------------------------------------------
    def perceive(self, state: GraphState) -> dict:
        perception = state.perception
        if perception is None:
            perception = self.c.perceiver.perceive(state.image)
        notes: list[str] = []
        cues = perception_cues(perception, notes=notes)
        return {"perception": perception, "cues": cues, "warnings": state.warnings + notes}

    # -- describe_cues ----------------------------------------------------------------------
    def describe_cues(self, state: GraphState) -> dict:
        c = self.c
        if c.vlm is None or not c.system.use_vlm:
            return {}
        if c.system.direct_vlm:
            return self._direct_vlm(state)
        prompt = load_prompt("describe_cues")
        versions = dict(state.prompt_versions, describe_cues=prompt.ref)
        warnings = list(state.warnings)
        img = state.image.image
        try:
            out = c.vlm.generate(_image_part_messages(prompt), images=[img], max_new_tokens=400)
        except Exception as e:  # a model failure degrades to perception cues, never a crash
            warnings.append(f"VLM failed ({type(e).__name__}: {e}); perception cues used alone")
            return {"warnings": warnings, "prompt_versions": versions}
        try:
            vc = parse_cues(out)
        except ValueError as first:
            repair = load_prompt("repair_json")
            versions["repair_json"] = repair.ref
            try:
                fixed = c.vlm.generate(repair.messages(error=str(first), output=out[:2000]), max_new_tokens=400)
                vc = parse_cues(fixed)
                warnings.append(f"VLM cue JSON repaired after: {first}")
            except Exception as second:
                warnings.append(f"VLM cue description invalid ({first}; after repair: {second}); perception cues used alone")
                return {"warnings": warnings, "prompt_versions": versions}
        new = to_cues(vc, c.vlm.model_id, start=len(state.cues) + 1)
        return {"cues": state.cues + new, "warnings": warnings, "prompt_versions": versions}

    def _direct_vlm(self, state: GraphState) -> dict:
        prompt = load_prompt("classify")
        names = list(MIKELS8)
        out = self.c.vlm.generate(_image_part_messages(prompt, labels=", ".join(names)), images=[state.image.image], max_new_tokens=10)
        words = re.findall(r"[a-z]+", out.lower())
        q = np.full(len(names), 0.3 / (len(names) - 1))
        hit = next((w for w in words if w in names), None)
        warnings = list(state.warnings)
        if hit is None:
            q = np.full(len(names), 1.0 / len(names))
            warnings.append(f"VLM named no label of the set: {out[:80]!r}")
        else:
            q[names.index(hit)] = 0.7
        return {"direct_vlm": q.tolist(), "warnings": warnings, "prompt_versions": dict(state.prompt_versions, classify=prompt.ref)}

    # -- retrieve ---------------------------------------------------------------------------
    def retrieve(self, state: GraphState) -> dict:
        c = self.c
        if c.kb is None or not c.system.use_kb or not state.cues:
            return {"retrieved": []}
        done = {r.cue_id for r in state.retrieved}
        todo = [cue for cue in state.cues if cue.id not in done]
        if not todo:
            return {}
        direct = [cue for cue in todo if cue.kb_entries]
        searched = [cue for cue in todo if not cue.kb_entries]
        new = [CueHits(cue_id=cue.id, hits=c.kb.get(cue.kb_entries)) for cue in direct]
        results = c.kb.search_many([cue.text for cue in searched], k=c.fusion.hits_per_cue) if searched else []
        new += [CueHits(cue_id=cue.id, hits=hits) for cue, hits in zip(searched, results)]
        return {"retrieved": state.retrieved + new}

    # -- align ------------------------------------------------------------------------------
    def align(self, state: GraphState) -> dict:
        c = self.c
        if c.system.direct_vlm:
            return {}
        if c.aligner is not None and c.system.use_aligner:
            return self._clip_align(state)
        if c.embedder is not None and state.cues:
            return self._text_align(state)
        return {}

    def _label_prompts(self, knowledge: bool) -> list[list[str]]:
        """Per Mikels label, the prompts describing it (knowledge-enhanced or plain)."""
        plain = [[f"a photo that evokes {m}", f"a photo that makes people feel {m}"] for m in MIKELS8]
        if not knowledge or self.c.kb is None:
            return plain
        out = []
        for m, base in zip(MIKELS8, plain):
            d = self.c.kb.define(m, "mikels8")
            prompts = base + [f"a photo that evokes {m}: {d.definition}"]
            hits = self.c.kb.search(f"{m} {d.definition}", k=8, kinds=["cue"])
            top = [h for h in hits if _weights_vector(h.weights).argmax() == MIKELS8.index(m)][:4]
            prompts += [f"a photo of {h.text}" for h in top]
            out.append(prompts)
        return out

    def _clip_align(self, state: GraphState) -> dict:
        c = self.c
        knowledge = c.system.knowledge_prompts
        label_emb = c.cached(("clip_labels", knowledge), lambda: self._encode_label_prompts(c.aligner.encode_texts, knowledge))
        img_emb = c.aligner.encode_images([state.image.image])[0]
        sims = label_emb @ img_emb
        q = softmax(sims, c.aligner.logit_scale)
        cues = list(state.cues)
        claimed = [i for i, cue in enumerate(cues) if cue.source.startswith("vlm:") and cue.family != "narrative"]
        if claimed:
            emb = c.aligner.encode_texts([f"a photo of {cues[i].text}" for i in claimed])
            base_emb = c.cached(("clip_baseline",), lambda: c.aligner.encode_texts(["a photo"])[0])
            s = emb @ img_emb
            base = float(base_emb @ img_emb)
            for j, i in enumerate(claimed):
                verified = float(1.0 / (1.0 + np.exp(-c.aligner.logit_scale * (s[j] - base))))
                cues[i] = cues[i].model_copy(update={"verified": round(verified, 3)})
        return {"alignment": q.tolist(), "cues": cues}

    def _encode_label_prompts(self, encode, knowledge: bool) -> np.ndarray:
        groups = self._label_prompts(knowledge)
        rows = []
        for prompts in groups:
            e = encode(prompts).mean(axis=0)
            rows.append(e / (np.linalg.norm(e) + 1e-12))
        return np.stack(rows)

    def _text_align(self, state: GraphState) -> dict:
        c = self.c
        knowledge = c.system.knowledge_prompts
        label_emb = c.cached(("text_labels", knowledge), lambda: self._encode_label_prompts(c.embedder.encode, knowledge))
        # the agent's concepts are knowledge evidence (the "agent" stream), not what the image shows
        seen = [cue for cue in state.cues if not cue.source.startswith("agent:")]
        cues = [cue for cue in seen if cue.family != "text"] or seen
        emb = c.embed([cue.text for cue in cues])
        w = np.array([effective_confidence(cue) for cue in cues])
        if w.sum() <= 0:
            return {}
        sims = (emb @ label_emb.T)  # (cues, labels)
        score = (w[:, None] * sims).sum(axis=0) / w.sum()
        return {"alignment": softmax(score, c.fusion.alignment_scale).tolist()}

    # -- reconcile --------------------------------------------------------------------------
    def reconcile(self, state: GraphState) -> dict:
        c = self.c
        cfg = c.fusion
        cue_by_id = {cue.id: cue for cue in state.cues}
        acc: dict[str, np.ndarray] = {}
        searched_streams: set[str] = set()
        contrib: dict[str, tuple[Any, float, set]] = {}
        for r in state.retrieved:
            cue = cue_by_id.get(r.cue_id)
            if cue is None or not r.hits:
                continue
            stream = stream_of(cue)
            top = max(float(h.score) for h in r.hits) or 1.0
            conf = effective_confidence(cue)
            searched = not cue.kb_entries
            if searched:
                searched_streams.add(stream)
            for h in r.hits:
                wv = _weights_vector(h.weights)
                if wv.sum() <= 0:
                    continue
                if searched:
                    # a search hit is one vote spread over its emotions: a lexicon word with one
                    # emotion and a curated entry with three weigh the same
                    wv = wv / wv.sum()
                strength = conf * float(h.score) / top
                acc.setdefault(stream, np.zeros(len(MIKELS8)))
                acc[stream] += strength * wv
                prev = contrib.get(h.id)
                total = strength * float(wv.max())
                if prev is None:
                    contrib[h.id] = (h, total, {cue.id})
                else:
                    contrib[h.id] = (prev[0], prev[1] + total, prev[2] | {cue.id})
        streams = {s: normalise(v + (cfg.search_smoothing if s in searched_streams else cfg.smoothing)) for s, v in acc.items()}
        if state.alignment is not None:
            streams["alignment"] = np.asarray(state.alignment)
        if state.deliberation is not None:
            streams["deliberation"] = np.asarray(state.deliberation)
        if state.direct_vlm is not None:
            streams["direct_vlm"] = np.asarray(state.direct_vlm)
        if cfg.prior:
            streams["prior"] = prior_stream(cfg)
        if c.system.only_streams is not None:
            keep = set(c.system.only_streams) | {"direct_vlm"}
            streams = {s: q for s, q in streams.items() if s in keep}
            weights = {s: (cfg.weight(s) or 1.0) for s in streams}
            cfg = cfg.model_copy(update={"weights": weights})
        elif c.system.direct_vlm:
            cfg = cfg.model_copy(update={"weights": dict(cfg.weights, direct_vlm=cfg.weight("direct_vlm") or 1.0)})
        pooled = pool(streams, cfg)
        canonical = mix_prior(pooled, prior_stream(cfg), cfg.prior_mix) if cfg.prior else pooled
        projected = state.labels.project(canonical)
        scores = state.labels.as_dict(projected)
        label = max(scores, key=scores.get)
        ranked = sorted(contrib.values(), key=lambda t: -t[1])[: cfg.evidence_shown]
        evidence = [
            Evidence(
                id=h.id, ref=f"E{i + 1}", source=h.source, text=h.text,
                weights={m: round(float(v), 3) for m, v in zip(MIKELS8, _weights_vector(h.weights)) if v > 0},
                score=round(total, 4), cue_ids=sorted(cues),
            )
            for i, (h, total, cues) in enumerate(ranked)
        ]
        return {
            "streams": {s: [round(float(x), 5) for x in q] for s, q in streams.items()},
            "pooled": pooled.tolist(),
            "canonical": canonical.tolist(),
            "scores": scores,
            "label": label,
            "evidence": evidence,
        }

    def should_deliberate(self, state: GraphState) -> str:
        c = self.c
        if not c.system.deliberate or state.deliberation_rounds >= c.fusion.deliberate_rounds:
            return "rationale"
        if margin(np.asarray(state.pooled or state.canonical)) >= c.fusion.deliberate_margin:
            return "rationale"
        if (c.vlm is None or not c.system.use_vlm) and c.embedder is None:
            return "rationale"
        return "deliberate"

    # -- deliberate -------------------------------------------------------------------------
    def deliberate(self, state: GraphState) -> dict:
        c = self.c
        p = np.asarray(state.pooled or state.canonical)
        a, b = (int(i) for i in np.argsort(p)[::-1][:2])
        la, lb = MIKELS8[a], MIKELS8[b]
        da = c.kb.define(la, "mikels8") if c.kb is not None else None
        db = c.kb.define(lb, "mikels8") if c.kb is not None else None
        q = np.full(len(MIKELS8), 1.0 / len(MIKELS8))
        update: dict = {"deliberation_rounds": state.deliberation_rounds + 1}
        if c.vlm is not None and c.system.use_vlm:
            prompt = load_prompt("deliberate")
            update["prompt_versions"] = dict(state.prompt_versions, deliberate=prompt.ref)
            fields = dict(a=la, b=lb, a_def=da.definition if da else la, b_def=db.definition if db else lb)
            try:
                out = c.vlm.generate(_image_part_messages(prompt, **fields), images=[state.image.image], max_new_tokens=200)
                data = json.loads(extract_json(out))
                sa = [str(x) for x in data.get(f"supports_{la}", []) or [] if str(x).strip()][:4]
                sb = [str(x) for x in data.get(f"supports_{lb}", []) or [] if str(x).strip()][:4]
            except Exception as e:
                update["warnings"] = state.warnings + [f"deliberation answer unusable ({type(e).__name__}); kept the first decision"]
                return update
            start = len(state.cues) + 1
            new = [Cue(id=f"C{start + i}", family="deliberation", text=t, source=f"vlm:{c.vlm.model_id}", confidence=0.6) for i, t in enumerate(sa + sb)]
            pair = softmax(np.array([len(sa), len(sb)], dtype=float), 1.0)
            update["cues"] = state.cues + new
        else:
            appraisal = [da.appraisal if da else la, db.appraisal if db else lb]
            emb = c.embed([cue.text for cue in state.cues] + appraisal)
            cue_emb, app_emb = emb[:-2], emb[-2:]
            w = np.array([effective_confidence(cue) for cue in state.cues])
            s = (w[:, None] * (cue_emb @ app_emb.T)).sum(axis=0) / max(w.sum(), 1e-9)
            pair = softmax(s, c.fusion.alignment_scale)
        q[a], q[b] = 2.0 / len(MIKELS8) * pair[0], 2.0 / len(MIKELS8) * pair[1]
        update["deliberation"] = q.tolist()
        return update

    # -- rationale --------------------------------------------------------------------------
    def rationale(self, state: GraphState) -> dict:
        if not state.want_rationale:
            return {"rationale": None, "rationale_kind": "none"}
        from kever.agent.rationale import write_rationale

        text, kind, ref, notes = write_rationale(state, self.c.text_lm, self.c if self.c.embedder is not None else None)
        versions = dict(state.prompt_versions)
        if ref:
            versions["rationale"] = ref
        return {"rationale": text, "rationale_kind": kind, "prompt_versions": versions, "warnings": state.warnings + notes}
