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
from kever.agent.fusion import MIKELS8, AlignmentInput, Decision, decide, effective_confidence, margin, softmax
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


def learned_items(associations, x, cues=()) -> list:
    """The learned table's parts for a photo's features ``x``, each tied to the cues that show
    the same output (an object cue its ImageNet class, a face cue its expression and the face
    count, a colour or lighting cue its statistic)."""
    from kever.agent.cues import rules
    from kever.tools.perception.objects import imagenet_classes, imagenet_wnids

    items = associations.items(x, imagenet_classes(), imagenet_wnids())
    field_of = {r["text"]: r["field"] for r in rules()["scalar_rules"]}
    expr_of = {entry: expr for expr, entry in rules()["face_entries"].items()}
    ties: dict[str, list[str]] = {}
    for cue in cues:
        keys = []
        for entry in cue.kb_entries or []:
            if entry.startswith("imagenet."):
                keys.append(f"votes:{entry}")
            elif cue.family == "face" and entry in expr_of:
                keys += [f"votes:face.{expr_of[entry]}", "votes:faces.count"]
        if cue.text in field_of:
            keys.append(f"votes:colour.{field_of[cue.text]}")
        for k in keys:
            ties.setdefault(k, []).append(cue.id)
    for it in items:
        it.cue_ids = sorted(set(ties.get(it.id, [])), key=lambda c: int(c[1:]) if c[1:].isdigit() else 0)
    return items


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
    associations: Any = None  # kever.knowledge.empirical.Associations (the learned table)
    _cache: dict = field(default_factory=dict)

    def cached(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def label_words(self) -> list[str]:
        """Every taxonomy's label names (text in the image never matches them)."""
        if self.kb is None:
            return list(MIKELS8)
        return self.cached(("label_words",), lambda: sorted({lab for t in self.kb.knowledge.taxonomies.values() for lab in t.labels}))

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


def shown_evidence(d: Decision, n: int) -> list[Evidence]:
    """The ``n`` items that moved the decided label most (either way), by contribution: first
    what raised it, then what pulled it down. E-refs follow that order."""
    # the table's base (what the labelled photos evoked on average) is not this photo's evidence:
    # the label is read against the base rates, which it mostly cancels
    moved = sorted((it for it in d.items if abs(it.contribution) > 1e-4 and it.id != "votes:base"),
                   key=lambda it: -abs(it.contribution))[:n]
    moved.sort(key=lambda it: -it.contribution)
    return [
        Evidence(id=it.id, ref=f"E{i + 1}", source=it.source, text=it.text, weights=it.weights, score=it.contribution,
                 cue_ids=it.cue_ids, stream=it.stream, points_to=it.points_to, pushes=it.pushes, set_pushes=it.set_pushes,
                 parts=it.parts, support=it.support, rule=it.rule, value=it.value)
        for i, it in enumerate(moved)
    ]


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
        cues = perception_cues(perception, notes=notes, label_words=self.c.label_words())
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
        """Measured cues read the entries they name; open-vocabulary cues are searched. Text in
        the image never reaches emotion definitions or entries named like a label."""
        c = self.c
        if c.kb is None or not c.system.use_kb or not state.cues:
            return {"retrieved": []}
        done = {r.cue_id for r in state.retrieved}
        todo = [cue for cue in state.cues if cue.id not in done and cue.source.split(":")[0] != "agent"]
        if not todo:
            return {}
        direct = [cue for cue in todo if cue.kb_entries]
        text = [cue for cue in todo if not cue.kb_entries and cue.family == "text"]
        other = [cue for cue in todo if not cue.kb_entries and cue.family != "text"]
        new = [CueHits(cue_id=cue.id, hits=c.kb.get(cue.kb_entries, missing="skip")) for cue in direct]
        k = c.fusion.hits_per_cue
        if other:
            new += [CueHits(cue_id=cue.id, hits=hits) for cue, hits in zip(other, c.kb.search_many([x.text for x in other], k=k))]
        if text:
            banned = set(c.label_words())
            found = c.kb.search_many([x.text for x in text], k=k, kinds=["cue", "concept", "lexicon"])
            new += [CueHits(cue_id=cue.id, hits=[h for h in hits if h.name.lower() not in banned]) for cue, hits in zip(text, found)]
        return {"retrieved": state.retrieved + new}

    # -- align ------------------------------------------------------------------------------
    def align(self, state: GraphState) -> dict:
        c = self.c
        if c.system.direct_vlm:
            return {}
        if c.aligner is not None and c.system.use_aligner:
            return self._clip_align(state)
        if c.fusion.weight("alignment") == 0.0 and c.system.only_streams is None:
            return {}  # text-embedding alignment verifies nothing and would decide nothing
        if c.embedder is not None and state.cues:
            return self._text_align(state)
        return {}

    def _label_prompts(self, knowledge: bool) -> list[list[str]]:
        """Per Mikels label, the texts that describe it: its curated definition (knowledge) or
        its bare name in a photo prompt (plain)."""
        plain = [[f"a photo that evokes {m}"] for m in MIKELS8]
        if not knowledge or self.c.kb is None:
            return plain
        return [[f"{m}: {self.c.kb.define(m, 'mikels8').definition}"] for m in MIKELS8]

    def _clip_align(self, state: GraphState) -> dict:
        c = self.c
        knowledge = c.system.knowledge_prompts
        label_emb = c.cached(("clip_labels", knowledge), lambda: self._encode_label_prompts(c.aligner.encode_texts, knowledge, clip=True))
        img_emb = c.aligner.encode_images([state.image.image])[0]
        sims = label_emb @ img_emb
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
        al = AlignmentInput(rows=[sims.tolist()], cue_ids=[None], weights=[1.0], scale=float(c.aligner.logit_scale),
                            source=f"CLIP alignment ({c.aligner.model_id})", texts=["the whole image against each emotion's description"])
        return {"alignment": al, "cues": cues}

    def _encode_label_prompts(self, encode, knowledge: bool, clip: bool = False) -> np.ndarray:
        groups = self._label_prompts(knowledge)
        if clip and knowledge:  # CLIP reads short captions: the plain prompt joins the definition
            groups = [[f"a photo that evokes {m}"] + g for m, g in zip(MIKELS8, groups)]
        rows = []
        for prompts in groups:
            e = encode(prompts).mean(axis=0)
            rows.append(e / (np.linalg.norm(e) + 1e-12))
        return np.stack(rows)

    def _text_align(self, state: GraphState) -> dict:
        """Each cue (text in the image excepted) against each label's description, by the
        text embedder; the decision mixes the cues by confidence."""
        c = self.c
        knowledge = c.system.knowledge_prompts
        label_emb = c.cached(("text_labels", knowledge), lambda: self._encode_label_prompts(c.embedder.encode, knowledge))
        # the agent's concepts are knowledge evidence (the "agent" stream), not what the image shows
        cues = [cue for cue in state.cues if cue.family != "text" and not cue.source.startswith("agent:")]
        if not cues:
            return {}
        sims = c.embed([cue.text for cue in cues]) @ label_emb.T  # (cues, labels)
        al = AlignmentInput(rows=sims.tolist(), cue_ids=[cue.id for cue in cues], weights=[effective_confidence(cue) for cue in cues],
                            scale=c.fusion.alignment_scale, source=f"text-embedding alignment ({c.embedder.model_id})",
                            texts=[f"'{cue.text}' read against each emotion's description" for cue in cues])
        return {"alignment": al}

    # -- reconcile --------------------------------------------------------------------------
    def reconcile(self, state: GraphState) -> dict:
        """A thin adapter: the decision is :func:`kever.agent.fusion.decide`."""
        c = self.c
        votes, delta = [], None
        if c.associations is not None and state.perception is not None:
            from kever.knowledge.empirical import features

            x, xv = features(state.perception), features(state.perception, view=True)
            if x is not None:
                votes = learned_items(c.associations, x, state.cues)
                # how the table's logits change for the photo's second view (mirrored, 4% crop)
                delta = c.associations.logits(xv) - c.associations.logits(x) if xv is not None else None
        d = decide(state.cues, state.retrieved, state.alignment, c.fusion, state.labels, stream_of=stream_of,
                   deliberation=state.deliberation, direct_vlm=state.direct_vlm, only_streams=c.system.only_streams,
                   votes=votes, head=c.associations if votes else None, view_delta=delta)
        return {
            "decision": d,
            "streams": d.streams,
            "canonical": d.canonical,
            "scores": d.scores,
            "label": d.label,
            "evidence": shown_evidence(d, c.fusion.evidence_shown),
        }

    def should_deliberate(self, state: GraphState) -> str:
        c = self.c
        if not c.system.deliberate or state.deliberation_rounds >= c.fusion.deliberate_rounds:
            return "rationale"
        if margin(np.asarray(state.canonical)) >= c.fusion.deliberate_margin:
            return "rationale"
        if (c.vlm is None or not c.system.use_vlm) and c.embedder is None:
            return "rationale"
        return "deliberate"

    # -- deliberate -------------------------------------------------------------------------
    def deliberate(self, state: GraphState) -> dict:
        c = self.c
        p = np.asarray(state.canonical)
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
            seen = [cue for cue in state.cues if cue.family != "text"] or state.cues  # text in the image never decides
            emb = c.embed([cue.text for cue in seen] + appraisal)
            cue_emb, app_emb = emb[:-2], emb[-2:]
            w = np.array([effective_confidence(cue) for cue in seen])
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

        r = write_rationale(state, self.c.text_lm)
        versions = dict(state.prompt_versions)
        if r.prompt_ref:
            versions["rationale"] = r.prompt_ref
        return {"rationale": r.text, "rationale_kind": r.kind, "rationale_attempts": r.attempts,
                "prompt_versions": versions, "warnings": state.warnings + r.notes}
