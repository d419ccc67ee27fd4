"""FakeReasoner: a test double with the Reasoner's interface, for harness and server tests.

Deterministic: the label distribution is derived from the image's pixels, so the same image
always gets the same judgment. It loads no model and must never be used for real answers.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable

import numpy as np

from kever.agent.judgment import Cue, Evidence, Judgment
from kever.errors import KeverError
from kever.images import ImageInput, load_image

MIKELS8 = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"]


class FakeReasoner:
    models = {"reasoner": "fake"}

    def __init__(self, labels: list[str] | None = None):
        self.labels = labels or MIKELS8

    def explain(
        self,
        image: ImageInput,
        labels: list[str] | str | None = None,
        rationale: bool = True,
        on_event: Callable[[dict], None] | None = None,
    ) -> Judgment:
        img = load_image(image)
        names = self._labels(labels)
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
            evidence=[Evidence(id="fake:1", source="fake", text="fake evidence", weights={label: 1.0})],
            rationale=f"(fake) The image evokes {label} [C1][fake:1]." if rationale else None,
            rationale_kind="template" if rationale else "none",
            models=dict(self.models),
            label_set="custom" if labels and not isinstance(labels, str) else (labels or "mikels8"),
            image=img.source,
        )

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
        if isinstance(labels, str):
            return [x.strip() for x in labels.split(",") if x.strip()]
        return list(labels)
