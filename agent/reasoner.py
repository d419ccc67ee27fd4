"""``Reasoner``: kever's Python API. Models are loaded once in ``from_preset``; ``explain``
runs the LangGraph graph on one image, ``explain_many`` on many with batched perception.

    from kever.agent.reasoner import Reasoner
    r = Reasoner.from_preset("offline")
    j = r.explain("photo.jpg")                 # Judgment
    j.label, j.scores, j.rationale
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from kever.agent.assemble import load_components, resolve_preset
from kever.agent.config import load_system
from kever.agent.fusion import MIKELS8, in_label_set, set_pushes
from kever.agent.graph import build_graph
from kever.agent.judgment import Judgment
from kever.agent.labels import LabelSet, resolve_labels
from kever.agent.nodes import Components
from kever.agent.rationale import written
from kever.agent.state import GraphState
from kever.errors import KeverError
from kever.images import ImageInput, load_image

log = logging.getLogger(__name__)


class Reasoner:
    def __init__(self, components: Components, notes: list[str] | None = None):
        self.c = components
        self.graph = build_graph(components)
        self.notes = list(notes or [])
        self._labelsets: dict = {}
        self._va: tuple[np.ndarray, np.ndarray] | None = None

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_preset(cls, preset: str = "offline", *, system: str = "full", ablate: Sequence[str] = ()) -> "Reasoner":
        """Load a preset's models once. ``system``/``ablate`` select a baseline or ablation."""
        t0 = time.perf_counter()
        p, note = resolve_preset(preset)
        sysconf = load_system(system, ablate)
        r = cls(load_components(p, sysconf), [note] if note else [])
        r.load_seconds = time.perf_counter() - t0
        return r

    @property
    def preset(self) -> str:
        return self.c.preset.name

    @property
    def system(self) -> str:
        return self.c.system.name

    @property
    def models(self) -> dict[str, str]:
        c = self.c
        out = {"preset": c.preset.name, "system": c.system.name, "fusion": c.fusion.version}
        out.update({f"perception.{k}": v for k, v in getattr(c.perceiver, "models", {}).items()})
        if c.kb is not None:
            out["knowledge"] = str(getattr(c.kb, "version", "kb"))
        if c.embedder is not None:
            out["embedder"] = c.embedder.model_id
        for role in ("vlm", "aligner", "text_lm"):
            m = getattr(c, role)
            if m is not None:
                out[role] = m.model_id
        if c.agent is not None and c.system.use_agent:
            out["agent"] = f"{c.agent.model_id} ({c.agent.protocol})"
        return out

    # -- label sets -------------------------------------------------------------------------
    def labelset(self, labels) -> LabelSet:
        key = labels if isinstance(labels, (str, type(None))) else tuple(labels)
        if key not in self._labelsets:
            self._labelsets[key] = resolve_labels(labels, self.c.kb)
        return self._labelsets[key]

    def _valence_arousal(self, canonical: np.ndarray) -> tuple[float, float]:
        if self._va is None:
            v, a = [], []
            for m in MIKELS8:
                d = self.c.kb.define(m, "mikels8") if self.c.kb is not None else None
                v.append(float(getattr(d, "valence", 0.0) or 0.0))
                a.append(float(getattr(d, "arousal", 0.5) or 0.5))
            self._va = (np.clip(v, -1, 1), np.clip(a, 0, 1))
        v, a = self._va
        return float(np.clip(canonical @ v, -1, 1)), float(np.clip(canonical @ a, 0, 1))

    # -- explaining -------------------------------------------------------------------------
    def explain(
        self,
        image: ImageInput,
        labels: str | Sequence[str] | None = None,
        rationale: bool = True,
        on_event: Callable[[dict], None] | None = None,
        *,
        perception=None,
    ) -> Judgment:
        """Judge one image. Raises :class:`~kever.errors.InputError` for an unusable image."""
        t0 = time.perf_counter()
        img = load_image(image)
        labelset = self.labelset(labels)
        state = GraphState(image=img, labels=labelset, want_rationale=rationale, perception=perception)
        config = {"configurable": {"on_event": on_event}, "recursion_limit": 50}
        final = self.graph.invoke(state, config=config)
        out = GraphState(**final) if isinstance(final, dict) else final
        timings = dict(out.timings)
        timings["total"] = round(time.perf_counter() - t0, 4)
        return self._judgment(out, labelset, img.source, timings, img.notes)

    def _judgment(self, s: GraphState, labelset: LabelSet, source: str, timings: dict, notes: list[str]) -> Judgment:
        canonical = np.asarray(s.canonical)
        valence, arousal = self._valence_arousal(canonical)
        d = s.decision
        return Judgment(
            label=s.label,
            scores=s.scores,
            confidence=round(float(s.scores[s.label]), 6),
            base_rates=d.prior if d is not None else {},
            stable=d.stable if d is not None else None,
            lift=d.lift if d is not None else {},
            logits=(list(d.logits) + [d.neutral_logit * self.c.fusion.temperature]) if d is not None else [],
            valence=round(valence, 4),
            arousal=round(arousal, 4),
            cues=s.cues,
            evidence=s.evidence,
            rationale=s.rationale,
            rationale_kind=s.rationale_kind,
            rationale_attempts=s.rationale_attempts,
            models=self.models,
            timings=timings,
            label_set=labelset.name,
            canonical={m: round(float(x), 6) for m, x in zip(MIKELS8, canonical)},
            streams={k: dict(zip(MIKELS8, v)) for k, v in s.streams.items()},
            prompt_versions=s.prompt_versions,
            warnings=list(notes) + s.warnings + self.notes + (
                [f"uncertain: a mirrored, slightly cropped copy of this photo reads as {d.view_label}, not {s.label}"]
                if d is not None and d.stable is False else []),
            tool_calls=s.tool_calls,
            image=source,
        )

    def explain_many(
        self,
        images: Iterable[ImageInput],
        labels: str | Sequence[str] | None = None,
        rationale: bool = True,
        batch_size: int = 8,
    ) -> list[Judgment | KeverError]:
        """Judge many images; perception runs in batches. A bad image yields its error in place."""
        items = list(images)
        out: list[Judgment | KeverError] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            loaded: list = []
            for it in chunk:
                try:
                    loaded.append(load_image(it))
                except KeverError as e:
                    loaded.append(e)
            good = [x for x in loaded if not isinstance(x, KeverError)]
            t0 = time.perf_counter()
            perceptions = self.c.perceiver.perceive_many(good, batch_size=batch_size) if good else []
            per_image = (time.perf_counter() - t0) / max(len(good), 1)
            it = iter(perceptions)
            for x in loaded:
                if isinstance(x, KeverError):
                    out.append(x)
                    continue
                p = next(it)
                if isinstance(p, KeverError):
                    out.append(p)
                    continue
                try:
                    j = self.explain(x, labels=labels, rationale=rationale, perception=p)
                    j.timings["perceive"] = round(per_image, 4)  # batched: this image's share
                    j.timings["total"] = round(j.timings["total"] + per_image, 4)
                    out.append(j)
                except KeverError as e:
                    out.append(e)
        return out

    def relabel(self, judgment: Judgment, labels) -> Judgment:
        """The same judgment for another label set, from its stored fused distribution:
        no perception, retrieval or alignment is re-run."""
        labelset = self.labelset(labels)
        cfg = self.c.fusion
        if len(judgment.logits) == len(MIKELS8) + 1:
            Z, zn = np.asarray(judgment.logits[:-1]), judgment.logits[-1]
        else:  # a judgment without logits (older, or a baseline): its canonical distribution
            Z, zn = np.log(np.array([judgment.canonical.get(m, 0.0) for m in MIKELS8]) + 1e-12) * cfg.temperature, None
        votes = any(e.stream == "votes" for e in judgment.evidence)
        head = self.c.associations if votes else None
        _, p, prior, y = in_label_set(Z, zn if votes else None, labelset, cfg, head)
        scores = labelset.as_dict(p)
        label = labelset.labels[y]
        evidence = []
        for e in judgment.evidence:
            sp = set_pushes(labelset, Z, cfg, e.parts) if e.parts else {}
            evidence.append(e.model_copy(update={"set_pushes": sp, "score": sp.get(label, 0.0) if sp else e.score,
                                                 "points_to": max(sp, key=sp.get) if sp else e.points_to}))
        j = judgment.model_copy(update={
            "label": label, "scores": scores, "label_set": labelset.name, "evidence": evidence,
            "confidence": round(float(scores[label]), 6),
            "base_rates": {t: round(float(x), 6) for t, x in zip(labelset.labels, prior)} if head is not None else {},
            "lift": {t: round(float(a / max(b, 1e-12)), 6) for t, a, b in zip(labelset.labels, p, prior)} if head is not None else {},
        })
        if judgment.rationale is not None:
            j.rationale = written(_WithLabels(j, labelset))
            j.rationale_kind = "template"
        return j

    @property
    def writes_followups(self) -> bool:
        """Whether this preset has a language model to answer chat follow-ups (:meth:`followup`)."""
        return self.c.text_lm is not None

    def followup(self, judgment: Judgment, question: str, asked: str | None):
        """A chat follow-up about ``judgment`` answered by this preset's language model, checked
        (:mod:`kever.agent.followup`); only where :attr:`writes_followups`."""
        from kever.agent.followup import answer_followup

        return answer_followup(self.c.text_lm, judgment, question, asked)


class _WithLabels:
    """A judgment seen with its label set (what the written explanation reads)."""

    def __init__(self, judgment: Judgment, labels: LabelSet):
        self._j, self.labels = judgment, labels

    def __getattr__(self, name):
        return getattr(self._j, name)
