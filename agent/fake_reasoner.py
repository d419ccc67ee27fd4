"""FakeReasoner: a test double with the Reasoner's interface, for harness and server tests.

Deterministic: the label distribution is derived from the image's pixels, so the same image
always gets the same judgment. It loads no model and must never be used for real answers.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Callable, Iterable

import numpy as np

from kever.agent.fusion import MIKELS8
from kever.agent.judgment import Cue, Evidence, Judgment
from kever.errors import KeverError
from kever.images import ImageInput, load_image

#: Named label sets the fake knows (the real ones come from the knowledge base).
NAMED_SETS = {
    "mikels8": list(MIKELS8),
    "emotion6": ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"],
    "sentiment": ["positive", "negative"],
}


class FakeReasoner:
    models = {"reasoner": "fake"}

    def __init__(self, labels: list[str] | None = None, delay_s: float | None = None):
        self.labels = labels or list(MIKELS8)
        #: seconds each explain() sleeps (to test queues and timeouts); env KEVER_FAKE_DELAY_S
        self.delay_s = float(os.environ.get("KEVER_FAKE_DELAY_S", "0") or 0) if delay_s is None else delay_s

    def explain(
        self,
        image: ImageInput,
        labels: list[str] | str | None = None,
        rationale: bool = True,
        on_event: Callable[[dict], None] | None = None,
    ) -> Judgment:
        img = load_image(image)
        names = self._labels(labels)
        if self.delay_s:
            time.sleep(self.delay_s)
        seed = int(hashlib.sha1(img.image.tobytes()).hexdigest()[:8], 16)
        for node in ("perceive", "retrieve", "reconcile"):
            if on_event:
                on_event({"node": node, "status": "end", "seconds": 0.0})
        p = np.random.default_rng(seed).dirichlet(np.ones(len(names)))
        scores = {n: float(v) for n, v in zip(names, p)}
        label = max(scores, key=scores.get)
        return Judgment(
            label=label,
            scores=scores,
            confidence=float(max(p)),
            valence=0.0,
            arousal=0.5,
            cues=[Cue(id="C1", family="colour", text="fake cue", source="fake", confidence=1.0)],
            evidence=[Evidence(id="fake:1", source="fake", text="fake evidence", weights={label: 1.0}, score=1.0,
                               pushes={label: 1.0}, points_to=label)],
            rationale=f"(fake) The image evokes {label} [C1][fake:1]." if rationale else None,
            rationale_kind="template" if rationale else "none",
            models=dict(self.models),
            label_set="custom" if labels and not isinstance(labels, str) else (labels or "mikels8"),
            image=img.source,
            warnings=list(img.notes),
        )

    def relabel(self, judgment: Judgment, labels: list[str] | str) -> Judgment:
        """Re-score a judgment over another label set without looking at the image again."""
        names = self._labels(labels)
        seed = int(hashlib.sha1(("|".join(names) + judgment.label).encode()).hexdigest()[:8], 16)
        p = np.random.default_rng(seed).dirichlet(np.ones(len(names)))
        scores = {n: float(v) for n, v in zip(names, p)}
        label = max(scores, key=scores.get)
        evidence = [e.model_copy(update={"weights": {**e.weights, label: 1.0}}) for e in judgment.evidence]
        return judgment.model_copy(update={
            "label": label, "scores": scores, "confidence": float(max(p)), "evidence": evidence,
            "label_set": labels if isinstance(labels, str) else "custom",
            "rationale": f"(fake) Re-scored: {label} [C1]." if judgment.rationale else None,
        })

    def explain_many(self, images: Iterable[ImageInput], labels=None, rationale: bool = True) -> list[Judgment | KeverError]:
        out: list[Judgment | KeverError] = []
        for im in images:
            try:
                out.append(self.explain(im, labels=labels, rationale=rationale))
            except KeverError as e:
                out.append(e)
        return out

    def _labels(self, labels) -> list[str]:
        if labels is None or labels == "mikels8":
            return list(self.labels)
        if isinstance(labels, str) and labels in NAMED_SETS:
            return list(NAMED_SETS[labels])
        if isinstance(labels, str):
            return [x.strip() for x in labels.split(",") if x.strip()]
        return list(labels)
