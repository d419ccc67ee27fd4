"""Empirical associations: what viewers said of photos, by what perception emits.

The rule-derived knowledge (``cues/imagenet.yaml``, ``cues/faces.yaml``) says what a seashore or
a sad face *should* evoke. This module holds what the labelled development photos of three
datasets *did* evoke, as a linear association table over perception's dense outputs:

    Z(x) = W^T x + b        (8 Mikels logits and one "neutral" logit, log-probability units)

``x`` (:func:`features`) is the square-rooted 1000-class softmax of EfficientNet-Lite0 and of
Lite2, the number of faces, the largest face's seven expression probabilities and five colour
statistics (standardised). Each row of ``W`` is one association ("photos showing a seashore
evoked contentment"), estimated by ``knowledge/learn_associations.py`` from the votes, with the
rule-derived profile of the same output as its prior mean (few photos: the rule stands; many:
the votes), and carries ``support``: how many labelled photos showed it.

Because Z is linear, each output's part ``x_j W[j]`` is an exact, citable push; the two
ImageNet models' parts for one class are one item. :meth:`Associations.items` returns them.
The table is data (``knowledge/empirical/associations.npz`` + ``.json``), loaded once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent / "empirical"
TABLE = HERE / "associations.npz"
META = HERE / "associations.json"

IMAGENET_MODELS = ("efficientnet-lite0", "efficientnet-lite2")
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
COLOUR_STATS = ("brightness", "saturation", "colorfulness", "warmth", "contrast")
#: output columns of the table: the Mikels 8 in canonical order, then neutral
COLUMNS = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness", "neutral")


@lru_cache(maxsize=1)
def feature_names() -> tuple[str, ...]:
    """One name per feature: ``imagenet:<model>:<index>``, ``faces:count``, ``face:<expr>``, ``colour:<stat>``."""
    names = [f"imagenet:{m}:{i}" for m in IMAGENET_MODELS for i in range(1000)]
    names += ["faces:count"] + [f"face:{e}" for e in EXPRESSIONS] + [f"colour:{c}" for c in COLOUR_STATS]
    return tuple(names)


N_IMAGENET = 1000 * len(IMAGENET_MODELS)


def features(perception: Any, view: bool = False) -> np.ndarray | None:
    """The raw feature vector of one :class:`~kever.tools.perception.Perception` (unstandardised),
    or None when the ImageNet outputs are missing (objects off or failed). ``view``: with the
    ImageNet outputs of the photo's second view (mirrored, slightly cropped)."""
    dense = getattr(perception, "imagenet_view" if view else "imagenet", None) or {}
    if any(m not in dense for m in IMAGENET_MODELS):
        return None
    parts = [np.sqrt(np.clip(np.asarray(dense[m], dtype=np.float64), 0.0, 1.0)) for m in IMAGENET_MODELS]
    faces = list(getattr(perception, "faces", None) or [])
    largest = max(faces, key=lambda f: f.area) if faces else None
    expr = [float(getattr(largest.expressions, e)) if largest is not None else 0.0 for e in EXPRESSIONS]
    colour = [float(getattr(perception, c, None) or 0.0) for c in COLOUR_STATS]
    parts.append(np.array([np.log1p(len(faces))] + expr + colour))
    return np.concatenate(parts)


@dataclass
class Item:
    """One association's part of Z for one photo."""

    id: str  # "votes:imagenet.<wnid>" / "votes:face.<expr>" / "votes:faces.count" / "votes:colour.<stat>" / "votes:base"
    text: str
    logits: np.ndarray  # (9,) its additive part of Z
    support: int
    rule: str  # the rule entry that is its prior ("" if none)
    value: float  # what perception measured (probability, count, statistic)
    cue_ids: list[str] = field(default_factory=list)  # the cues that show the same output (set by the graph)


class Associations:
    """The learned table, its standardisation and its provenance; apply with :meth:`logits` / :meth:`items`."""

    def __init__(self, W: np.ndarray, b: np.ndarray, mean: np.ndarray, scale: np.ndarray, support: np.ndarray,
                 rule_ids: list[str], meta: dict, Z_train: np.ndarray | None = None):
        self.W, self.b, self.mean, self.scale, self.support = W, b, mean, scale, support
        self.rule_ids = rule_ids
        self.meta = meta
        self.label_sets: dict[str, dict] = meta.get("label_sets", {})
        #: Z of the photos the table was fitted on: any label set's base rates are read from them
        self.Z_train = Z_train
        self._priors: dict = {}

    # -- persistence -----------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path = TABLE) -> "Associations":
        from kever.errors import ModelUnavailable

        meta_path = path.with_suffix(".json")
        if not path.is_file() or not meta_path.is_file():
            raise ModelUnavailable(f"the learned association table is missing ({path})",
                                   "run knowledge/learn_associations.py, or reinstall kever")
        z = np.load(path)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return cls(z["W"].astype(np.float64), z["b"], z["mean"], z["scale"], z["support"], list(meta.get("rule_ids", [])), meta,
                   z["Z_train"].astype(np.float64))

    def save(self, path: Path = TABLE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, W=self.W.astype(np.float32), b=self.b, mean=self.mean, scale=self.scale,
                            support=self.support.astype(np.int32), Z_train=np.asarray(self.Z_train, dtype=np.float32))
        meta = dict(self.meta, rule_ids=self.rule_ids)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    # -- the label-set head the decision reads (fusion.in_label_set) -----------------------------
    def bias(self, labels) -> list[float] | None:
        """The bias learned for a named set from photos labelled in it (None for other sets)."""
        if labels.name == "custom" or labels.name not in self.label_sets:
            return None
        return list(self.label_sets[labels.name]["bias"])

    def prior(self, labels, cfg) -> np.ndarray:
        """The set's base rates: the mean of its ``p`` over the photos the table was fitted on."""
        key = (labels.name, labels.labels, float(cfg.temperature))
        if key not in self._priors:
            from kever.agent.fusion import set_logits, softmax

            Z = np.asarray(self.Z_train, dtype=np.float64)
            p = softmax(set_logits(Z[:, :8], Z[:, 8], labels, cfg, self.bias(labels)))
            self._priors[key] = p.mean(axis=0)
        return self._priors[key]

    # -- application -----------------------------------------------------------------------
    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Z for raw feature rows (n, d) or one row (d,)."""
        return self.standardise(x) @ self.W + self.b

    def items(self, x: np.ndarray, classes: list[str], wnids: list[str]) -> list[Item]:
        """Every association's part of Z for one photo (they sum to :meth:`logits` exactly): one item
        per ImageNet class (both models), per face output and per colour statistic, and the base."""
        xs = self.standardise(x)
        parts = xs[:, None] * self.W  # (d, 9)
        names = feature_names()
        out: list[Item] = []
        raw = np.asarray(x, dtype=np.float64)
        for c in range(1000):
            idx = [k * 1000 + c for k in range(len(IMAGENET_MODELS))]
            z = parts[idx].sum(axis=0)
            out.append(Item(id=f"votes:imagenet.{wnids[c]}", text=f"{classes[c]} (in the top 5 of {int(max(self.support[i] for i in idx))} labelled photos)", logits=z,
                            support=int(max(self.support[i] for i in idx)), rule=self.rule_ids[idx[0]],
                            value=float(np.mean([raw[i] ** 2 for i in idx]))))
        for j in range(N_IMAGENET, len(names)):
            kind, what = names[j].split(":", 1)
            if kind == "faces":
                text = f"{int(round(np.expm1(raw[j])))} face(s)" if raw[j] > 0 else "no face"
            elif kind == "face":
                text = f"largest face {what} ({raw[j]:.0%})" if raw[j] > 0 else f"no {what} face"
            else:
                text = f"{what} {raw[j]:.2f} (typical {self.mean[j]:.2f})"
            out.append(Item(id=f"votes:{kind}.{what}", text=text, logits=parts[j], support=int(self.support[j]),
                            rule=self.rule_ids[j], value=float(raw[j])))
        out.append(Item(id="votes:base", text=f"what the {int(self.meta.get('photos', 0))} labelled photos evoked on average", logits=np.asarray(self.b, dtype=np.float64),
                        support=int(self.meta.get("photos", 0)), rule="", value=1.0))
        return out


@lru_cache(maxsize=2)
def load_associations(path: str = str(TABLE)) -> Associations:
    return Associations.load(Path(path))
