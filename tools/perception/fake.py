"""``FakePerceiver``: the ``Perceiver`` interface without models, for tests and demos.

Colour statistics are real (they need no model); faces, objects and text are derived
deterministically from the image's pixels, so the same image always gives the same record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from kever.errors import KeverError
from kever.images import ImageInput, load_image
from kever.tools.perception import colour
from kever.tools.perception.perceiver import EXTRACTORS, check_extractors
from kever.tools.perception.schema import EXPRESSIONS, Expressions, Face, ObjectLabel, Perception, TextSpan

FAKE_LABELS = ("seashore", "alp", "golden retriever", "balloon", "church", "volcano", "tabby", "space shuttle")


class FakePerceiver:
    def __init__(self, extractors: Iterable[str] = EXTRACTORS, *, faces: bool | None = None, text: str | None = None):
        """``faces``/``text`` force a face / a text span on every image (None: decided by the pixels)."""
        self.extractors = check_extractors(extractors)
        self._force_faces, self._force_text = faces, text

    @classmethod
    def load(cls, extractors: Iterable[str] = EXTRACTORS, **kwargs) -> "FakePerceiver":
        return cls(extractors, **kwargs)

    @property
    def models(self) -> dict[str, str]:
        ids = {"colour": colour.MODEL_ID, "faces": "fake-faces/1", "objects": "fake-objects/1", "text": "fake-text/1"}
        return {k: v for k, v in ids.items() if k in self.extractors}

    def perceive(self, image: ImageInput) -> Perception:
        im = load_image(image)
        digest = hashlib.sha1(im.image.tobytes()).digest()
        w, h = im.original_size
        rec: dict = {"source": im.source, "width": w, "height": h, "notes": list(im.notes), "models": self.models, "timings": {}}
        if "colour" in self.extractors:
            import numpy as np

            rec.update(colour.measure(np.asarray(im.image)))
            rec["timings"]["colour"] = 0.0
        if "faces" in self.extractors and (self._force_faces if self._force_faces is not None else digest[0] % 3 == 0):
            k = digest[1] % len(EXPRESSIONS)
            probs = {e: (0.7 if i == k else 0.05) for i, e in enumerate(EXPRESSIONS)}
            rec["faces"] = [Face(box=(w // 4, h // 4, w // 4, h // 4), score=0.8, expressions=Expressions(**probs), dominant=EXPRESSIONS[k], dominant_score=0.7)]
            rec["timings"]["faces"] = 0.0
        if "objects" in self.extractors:
            from kever.tools.perception.objects import imagenet_classes

            i = digest[2] % len(FAKE_LABELS)
            names = [FAKE_LABELS[i], FAKE_LABELS[(i + 1) % len(FAKE_LABELS)]]
            rec["objects"] = [ObjectLabel(label=n, score=s, index=imagenet_classes().index(n)) for n, s in zip(names, (0.6, 0.2))]
            rec["timings"]["objects"] = 0.0
        if "text" in self.extractors and self._force_text:
            rec["text"] = [TextSpan(text=self._force_text, score=0.9, box=(0, 0, w // 2, h // 8))]
            rec["timings"]["text"] = 0.0
        rec["timings"]["total"] = 0.0
        return Perception(**rec)

    def perceive_many(self, images: Iterable[ImageInput], batch_size: int = 8) -> list[Perception | KeverError]:
        out: list[Perception | KeverError] = []
        for item in images:
            try:
                out.append(self.perceive(item))
            except KeverError as e:
                out.append(e)
        return out
