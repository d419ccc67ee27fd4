"""``Perceiver``: loads the perception models once and measures images, one or in batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from kever.errors import ConfigError, KeverError
from kever.images import ImageInput, LoadedImage, load_image
from kever.tools.perception import colour
from kever.tools.perception.schema import Perception

log = logging.getLogger(__name__)

EXTRACTORS = ("colour", "faces", "objects", "text")


def check_extractors(extractors: Iterable[str]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(e.strip().lower() for e in extractors if e.strip()))
    aliases = {"color": "colour", "face": "faces", "object": "objects", "ocr": "text"}
    names = tuple(dict.fromkeys(aliases.get(n, n) for n in names))
    unknown = [n for n in names if n not in EXTRACTORS]
    if unknown:
        raise ConfigError(f"unknown perception extractor(s): {', '.join(unknown)}", f"choose from {', '.join(EXTRACTORS)}")
    if not names:
        raise ConfigError("no perception extractor chosen", f"choose from {', '.join(EXTRACTORS)}")
    return names


def second_view(rgb: np.ndarray) -> np.ndarray:
    """The same photo seen a little differently (mirrored, 4% cropped from each side): the
    ImageNet models also read it, so a judgment can say when its label rests on so little
    that such a change flips it (``Judgment.stable``)."""
    h, w = rgb.shape[:2]
    dy, dx = int(round(h * 0.04)), int(round(w * 0.04))
    crop = rgb[dy: h - dy or h, dx: w - dx or w]
    return np.ascontiguousarray(crop[:, ::-1])


class Perceiver:
    """Measured visual cues. Build with :meth:`load` (models load once), then call
    :meth:`perceive` / :meth:`perceive_many` as often as needed."""

    def __init__(self, extractors: Sequence[str], *, faces=None, objects=None, text=None, dense=()):
        self.extractors = tuple(extractors)
        self._faces, self._objects, self._text = faces, objects, text
        #: further ImageNet models whose full softmax is kept (``Perception.imagenet``), not shown as cues
        self._dense = tuple(dense)

    @classmethod
    def load(cls, extractors: Iterable[str] = EXTRACTORS, *, threads: int | None = None, top_k: int = 5,
             face_second_opinion: str | None = None) -> "Perceiver":
        """Load the models the chosen extractors need (raises ModelUnavailable if one cannot load)."""
        names = check_extractors(extractors)
        faces = objects = text = None
        if "faces" in names:
            from kever.tools.perception.faces import FaceExpressionReader

            faces = FaceExpressionReader(threads=threads, second_opinion=face_second_opinion)
        if "objects" in names:
            from kever.tools.perception.objects import ObjectClassifier

            objects = ObjectClassifier(threads=threads, top_k=top_k)
            dense = (ObjectClassifier(threads=threads, top_k=top_k, model="efficientnet-lite2"),)
        else:
            dense = ()
        if "text" in names:
            from kever.tools.perception.text import TextReader

            text = TextReader(threads=threads)
        return cls(names, faces=faces, objects=objects, text=text, dense=dense)

    @property
    def models(self) -> dict[str, str]:
        out = {}
        if "colour" in self.extractors:
            out["colour"] = colour.MODEL_ID
        for name, model in (("faces", self._faces), ("objects", self._objects), ("text", self._text)):
            if model is not None:
                out[name] = model.model_id
        for model in self._dense:
            out[f"objects.{model.model}"] = model.model_id
        return out

    def perceive(self, image: ImageInput) -> Perception:
        """Measure one image (a path, bytes, PIL image or LoadedImage); raises InputError if unusable."""
        return self._run([load_image(image)])[0]

    def perceive_many(self, images: Iterable[ImageInput], batch_size: int = 8) -> list[Perception | KeverError]:
        """Measure many images, the CNN in batches; an unusable item becomes its error, in place."""
        results: list[Perception | KeverError] = []
        chunk: list[tuple[int, LoadedImage]] = []

        def flush() -> None:
            for (i, _), p in zip(chunk, self._run([im for _, im in chunk])):
                results[i] = p
            chunk.clear()

        for item in images:
            results.append(None)  # type: ignore[arg-type]
            try:
                chunk.append((len(results) - 1, load_image(item)))
            except KeverError as e:
                results[-1] = e
            if len(chunk) >= max(1, batch_size):
                flush()
        flush()
        return results

    # -- internals --------------------------------------------------------------------------

    def _run(self, loaded: list[LoadedImage]) -> list[Perception]:
        arrays = [np.asarray(im.image) for im in loaded]
        records: list[dict[str, Any]] = []
        for im, rgb in zip(loaded, arrays):
            w, h = im.original_size
            scale = w / rgb.shape[1] if rgb.shape[1] else 1.0
            rec: dict[str, Any] = {"source": im.source, "width": w, "height": h, "notes": list(im.notes), "timings": {}}
            if "colour" in self.extractors:
                self._timed(rec, "colour", lambda: rec.update(colour.measure(rgb)))
            if self._faces is not None:
                self._timed(rec, "faces", lambda: rec.__setitem__("faces", self._faces(rgb, scale)))
            if self._text is not None:
                self._timed(rec, "text", lambda: rec.__setitem__("text", self._text(rgb, scale)))
            records.append(rec)
        if self._objects is not None and loaded:
            t0 = time.perf_counter()
            labels = None
            dense: dict[str, np.ndarray] = {}
            alt: dict[str, np.ndarray] = {}
            views = [second_view(a) for a in arrays]
            try:
                probs = self._objects.probabilities(arrays + views)
                probs, alt[self._objects.model] = probs[: len(arrays)], probs[len(arrays):]
                labels = self._objects.top(probs)
                dense[self._objects.model] = probs
                for model in self._dense:
                    both = model.probabilities(arrays + views)
                    dense[model.model], alt[model.model] = both[: len(arrays)], both[len(arrays):]
            except Exception as e:  # a model failure must not lose the other cues
                log.warning("objects failed on a batch: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
                for rec in records:
                    rec["notes"].append(f"objects: failed ({type(e).__name__}: {e})")
            per_image = (time.perf_counter() - t0) / len(loaded)
            for i, rec in enumerate(records):
                rec["timings"]["objects"] = round(per_image, 5)
                if labels is not None:
                    rec["objects"] = labels[i]
                rec["imagenet"] = {name: probs[i].astype(np.float32) for name, probs in dense.items()}
                rec["imagenet_view"] = {name: probs[i].astype(np.float32) for name, probs in alt.items()}
        models = self.models
        out = []
        for rec in records:
            rec["timings"]["total"] = round(sum(rec["timings"].values()), 5)
            out.append(Perception(models=models, **rec))
        return out

    @staticmethod
    def _timed(rec: dict, name: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as e:  # a model failure on one image must not lose the other cues
            log.warning("%s failed on %s: %s", name, rec["source"], e, exc_info=log.isEnabledFor(logging.DEBUG))
            rec["notes"].append(f"{name}: failed ({type(e).__name__}: {e})")
        rec["timings"][name] = round(time.perf_counter() - t0, 5)
