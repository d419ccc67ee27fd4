"""Baselines beside the full agent, run by the same harness (``kever eval run --system NAME``),
each in the label set asked for.

- ``text-zeroshot``: the naive recipe of design.md. The image's words (the top-5 ImageNet
  labels, the largest face's expression word, the dominant colour names) are joined into one
  text in which each word is repeated in proportion to its weight (``round(10 * w)`` times, at
  least once), embedded with all-MiniLM-L6-v2, against one text per label of the asked set,
  "a photo that evokes {label}"; the scores are the softmax of the cosines times
  ``alignment_scale`` (fixed). Nothing fitted.
- ``lexicon``: NRC EmoLex over the same words (Plutchik emotions mapped to Mikels 8 by the
  curated table, weighted as above), carried to the asked set as the decision carries Z
  (``fusion.set_logits``). No match: uniform scores, the first label.
- ``prior``: the asked set's base rates from the learned table (``Associations.prior``: the mean
  prediction over the labelled dev photos): it uses dev labels, and says so in ``models``.
- ``probe``: the supervised reference: a logistic model on the square-rooted EfficientNet-Lite0
  softmax, trained on the dev photos labelled in the asked set (``knowledge/empirical/probe.npz``,
  written by ``knowledge/learn_associations.py``); the label is its arg-max over the base rate,
  as kever's. Trained on dev labels, and says so; named sets only.

Each is a :class:`~kever.agent.judgment.Judgment` producer with ``explain_many``, like the
Reasoner.
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

from kever.agent.config import FusionConfig, load_fusion
from kever.agent.cues import rules
from kever.agent.fusion import MIKELS8, normalise, softmax, weights_vector
from kever.agent.judgment import Judgment
from kever.errors import ConfigError, KeverError
from kever.images import load_image

BASELINES = ("text-zeroshot", "lexicon", "prior", "probe")
#: pseudo-count per label added to the lexicon baseline's votes (a word that names one emotion must not
#: make the others impossible)
LEXICON_SMOOTHING = 0.1


def image_words(perception) -> list[tuple[str, float]]:
    """The recipe's (text, weight) segments of one image."""
    segs = [(o.label, float(o.score)) for o in perception.objects[:5]]
    face = perception.largest_face()
    if face is not None:
        segs.append((f"{face.dominant} face", 1.0))
    r = rules()
    segs += [(c.name, float(c.share)) for c in perception.colours if c.share >= r["colour_min_share"]]
    return segs


class _Baseline:
    name = "baseline"

    def __init__(self, perceiver, fusion: FusionConfig, kb=None):
        self.perceiver = perceiver
        self.fusion = fusion
        self.kb = kb
        self.labels = None

    @property
    def models(self) -> dict[str, str]:
        out = {"system": self.name, "fusion": self.fusion.version}
        out.update({f"perception.{k}": v for k, v in getattr(self.perceiver, "models", {}).items()})
        return out

    def _labels(self, labels) -> None:
        """Resolve the asked label set (named sets need no knowledge base; a list does)."""
        from kever.agent.labels import named_label_set, parse_labels, resolve_labels

        kind, items = parse_labels(labels)
        if kind == "named":
            self.labels = named_label_set(items[0])
        elif self.kb is None:
            raise ConfigError(f"the {self.name} baseline answers in the named label sets only", "use mikels8, emotion6 or sentiment")
        else:
            self.labels = resolve_labels(labels, self.kb)

    def _judgment(self, q: np.ndarray, stream: str, raw: np.ndarray, source: str, words: list[str],
                  label: int | None = None) -> Judgment:
        names = list(self.labels.labels)
        scores = {m: float(x) for m, x in zip(names, q)}
        y = int(np.argmax(q)) if label is None else label
        return Judgment(
            label=names[y], scores=scores, confidence=float(q[y]), valence=0.0, arousal=0.5,
            models=self.models, label_set=self.labels.name,
            canonical={m: float(x) for m, x in zip(MIKELS8, raw)} if len(raw) == len(MIKELS8) else {},
            warnings=[f"baseline '{self.name}'"] + ([f"words: {', '.join(words)}"] if words else []), image=source,
        )

    def explain_many(self, images: Iterable, labels=None, rationale: bool = False, batch_size: int = 8) -> list:
        self._labels(labels)
        items = list(images)
        out: list[Judgment | KeverError] = []
        for start in range(0, len(items), batch_size):
            loaded = []
            for it in items[start:start + batch_size]:
                try:
                    loaded.append(load_image(it))
                except KeverError as e:
                    loaded.append(e)
            good = [x for x in loaded if not isinstance(x, KeverError)]
            perceptions = iter(self.perceiver.perceive_many(good) if good else [])
            for x in loaded:
                p = x if isinstance(x, KeverError) else next(perceptions)
                out.append(p if isinstance(p, KeverError) else self.judge(p))
        return out

    def judge(self, perception) -> Judgment:  # pragma: no cover - abstract
        raise NotImplementedError


class TextZeroShot(_Baseline):
    name = "text-zeroshot"

    def __init__(self, perceiver, fusion: FusionConfig, embedder, kb=None):
        super().__init__(perceiver, fusion, kb)
        self.embedder = embedder
        self._emb: dict = {}

    def _labels(self, labels) -> None:  # any words will do: each label is embedded as it is
        from kever.agent.labels import LabelSet, named_label_set, parse_labels

        kind, items = parse_labels(labels)
        self.labels = named_label_set(items[0]) if kind == "named" else LabelSet("custom", tuple(items), np.zeros((len(items), 8)))
        key = self.labels.labels
        if key not in self._emb:
            self._emb[key] = self.embedder.encode([f"a photo that evokes {t}" for t in key])
        self.label_emb = self._emb[key]

    @property
    def models(self) -> dict[str, str]:
        return {**super().models, "embedder": self.embedder.model_id}

    @staticmethod
    def text(segs: list[tuple[str, float]]) -> str:
        return ", ".join(", ".join([t] * max(1, round(10 * w))) for t, w in segs)

    def judge(self, perception) -> Judgment:
        segs = image_words(perception)
        n = len(self.labels.labels)
        if not segs:
            q = np.full(n, 1.0 / n)
            return self._judgment(q, "alignment", q, perception.source, [])
        v = self.embedder.encode([self.text(segs)])[0]
        cos = self.label_emb @ (v / (np.linalg.norm(v) + 1e-12))
        q = softmax(cos, self.fusion.alignment_scale)  # cosines x the fixed scale
        return self._judgment(q, "alignment", q, perception.source, [t for t, _ in segs])


class Lexicon(_Baseline):
    name = "lexicon"

    def __init__(self, perceiver, fusion: FusionConfig, kb):
        super().__init__(perceiver, fusion, kb)
        self._cache: dict[str, np.ndarray] = {}

    def _word(self, word: str) -> np.ndarray:
        if word not in self._cache:
            hits = [h for h in self.kb.lookup(word) if h.id.startswith("emolex:")]
            self._cache[word] = normalise(weights_vector(hits[0].weights)) if hits and hits[0].weights else np.zeros(len(MIKELS8))
        return self._cache[word]

    def judge(self, perception) -> Judgment:
        acc = np.zeros(len(MIKELS8))
        segs = image_words(perception)
        for text, w in segs:
            for word in re.findall(r"[a-z]+", text.lower()):
                acc += w * self._word(word)
        from kever.agent.fusion import set_logits

        q = normalise(acc + LEXICON_SMOOTHING) if acc.sum() > 0 else np.full(len(MIKELS8), 1.0 / len(MIKELS8))
        p = softmax(set_logits(np.log(q), None, self.labels, self.fusion))
        return self._judgment(p, "lexicon", q, perception.source, [t for t, _ in segs])


class Prior(_Baseline):
    name = "prior"

    def __init__(self, perceiver, fusion: FusionConfig, associations):
        super().__init__(perceiver, fusion)
        self.associations = associations

    @property
    def models(self) -> dict[str, str]:
        return {"system": "prior (base rates of the labelled dev photos: uses dev labels)",
                "table": str(self.associations.meta.get("version", ""))}

    def explain_many(self, images: Iterable, labels=None, rationale: bool = False, batch_size: int = 8) -> list:
        self._labels(labels)
        q = self.associations.prior(self.labels, self.fusion)
        out: list = []
        for im in images:
            try:
                src = load_image(im).source
            except KeverError as e:
                out.append(e)
                continue
            out.append(self._judgment(q, "prior", np.zeros(0), src, []))
        return out


class Probe(_Baseline):
    """The supervised reference (see the module docstring)."""

    name = "probe"

    def __init__(self, perceiver, fusion: FusionConfig, probes: dict):
        super().__init__(perceiver, fusion)
        self.probes = probes

    @property
    def models(self) -> dict[str, str]:
        return {**super().models, "system": "probe (logistic on EfficientNet-Lite0, trained on dev labels of the asked set)"}

    def _labels(self, labels) -> None:
        super()._labels(labels)
        if self.labels.name not in self.probes:
            raise ConfigError(f"the probe baseline has no model for the '{self.labels.name}' label set",
                              f"it was trained for {', '.join(sorted(self.probes))}")

    def judge(self, perception) -> Judgment:
        W, b, prior = self.probes[self.labels.name]
        dense = (getattr(perception, "imagenet", None) or {}).get("efficientnet-lite0")
        if dense is None:
            raise KeverError("the probe baseline needs EfficientNet-Lite0's outputs, which perception did not give")
        q = softmax(np.sqrt(np.asarray(dense, dtype=np.float64)) @ W + b)
        y = int(np.argmax(np.log(q + 1e-12) - np.log(prior + 1e-12)))
        return self._judgment(q, "probe", np.zeros(0), perception.source, [], label=y)


def load_probes(path=None) -> dict:
    from pathlib import Path

    from kever.errors import ModelUnavailable
    from kever.knowledge.empirical import HERE

    path = Path(path or HERE / "probe.npz")
    if not path.is_file():
        raise ModelUnavailable(f"the probe baseline's weights are missing ({path})", "run knowledge/learn_associations.py")
    z = np.load(path)
    names = sorted({k.split(":")[0] for k in z.files})
    return {n: (z[f"{n}:W"], z[f"{n}:b"], z[f"{n}:prior"]) for n in names}


def build_baseline(name: str, preset: str = "offline", fusion: str | None = None):
    """One baseline with its models loaded once (perception, MiniLM, the knowledge base)."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}", f"choose from {', '.join(BASELINES)}")
    from kever.agent.config import load_preset

    cfg = load_fusion(fusion) if fusion else load_preset(preset if preset != "auto" else "offline").fusion
    if name == "prior":
        from kever.knowledge.empirical import load_associations

        return Prior(None, cfg, load_associations())
    from kever.tools.kb import KnowledgeBase
    from kever.tools.kb.embedder import MiniLMEmbedder
    from kever.tools.perception import Perceiver

    embedder = MiniLMEmbedder()
    kb = KnowledgeBase.open(embedder=embedder)
    perceiver = Perceiver.load()
    if name == "probe":
        return Probe(perceiver, cfg, load_probes())
    if name == "text-zeroshot":
        return TextZeroShot(perceiver, cfg, embedder, kb)
    return Lexicon(perceiver, cfg, kb)

