"""Label sets: ``mikels8`` (default), ``emotion6``, ``sentiment``, or a user's list.

Fusion works in the canonical Mikels-8 space (plus one "neutral" logit: little emotional
evidence). A label set is its ordered labels plus

- ``matrix`` ``M`` (labels x Mikels-8), column-stochastic, ``M[t, m] = P(t | m)``: how each
  Mikels emotion spreads over the labels (valence, explanations);
- ``projection`` ``A``: the same rows, each normalised to sum to 1. A label's logit is
  ``log sum_m A[t, m] exp(Z_m)``: the weighted *mean* of its Mikels emotions in probability, so a
  label that gathers four of them does not win by their sum (``fusion.set_logits``);
- ``neutral``: the index of a label that reads the neutral logit instead ("neutral", "calm" is
  not neutral), or None.

Named taxonomies take ``M`` from the knowledge base's curated mapping tables
(``named_label_set``, which needs no knowledge index); a user's labels take it from each
label's emotion profile in the knowledge base (``kb.emotions_of(label, "mikels8")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kever.agent.fusion import MIKELS8, normalise
from kever.errors import InputError, KeverError

NAMED = ("mikels8", "emotion6", "sentiment")
MAX_CUSTOM = 32


NEUTRAL_WORDS = ("neutral", "none", "no emotion")


@dataclass(frozen=True)
class LabelSet:
    name: str
    labels: tuple[str, ...]
    matrix: np.ndarray  # (len(labels), 8), column-stochastic

    @property
    def neutral(self) -> int | None:
        return next((i for i, t in enumerate(self.labels) if t in NEUTRAL_WORDS), None)

    @property
    def projection(self) -> np.ndarray:
        """Rows of ``matrix`` normalised to sum to 1 (a neutral label's row is zero)."""
        A = np.array(self.matrix, dtype=np.float64)
        if self.neutral is not None:
            A[self.neutral] = 0.0
        s = A.sum(axis=1, keepdims=True)
        return np.where(s > 0, A / np.where(s > 0, s, 1.0), 0.0)

    def as_dict(self, p: np.ndarray) -> dict[str, float]:
        p = normalise(p)
        return {label: float(v) for label, v in zip(self.labels, p)}


def parse_labels(spec: str | list[str] | tuple[str, ...] | None) -> tuple[str, list[str]]:
    """('named', [name]) or ('custom', labels); raises InputError on a malformed list.

    None means the default (mikels8); an empty or blank string is an error, not the default:
    ``--labels ""`` is more likely a shell variable that was never set than a choice."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("mikels8", "mikels")):
        return "named", ["mikels8"]
    if isinstance(spec, str) and not spec.strip():
        raise InputError(
            f"empty label set {spec!r}",
            "leave --labels out to get mikels8, or name a set: mikels8, emotion6, sentiment, "
            "or a list such as 'joy,fear,calm'",
        )
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in NAMED:
            return "named", [key]
        if key in ("ekman", "ekman6"):
            return "named", ["emotion6"]
        items = [x.strip().lower() for x in spec.split(",")]
    else:
        items = [str(x).strip().lower() for x in spec]
    items = [x for x in items if x]
    uniq = list(dict.fromkeys(items))
    if len(uniq) < 2:
        raise InputError(
            f"label set {spec!r} is neither a known set nor a list of at least two labels",
            f"use one of {', '.join(NAMED)} or a comma-separated list such as 'joy,fear,calm'",
        )
    if len(uniq) > MAX_CUSTOM:
        raise InputError(f"{len(uniq)} labels given; at most {MAX_CUSTOM} are supported")
    if any(len(x) > 40 for x in uniq):
        raise InputError("a label is longer than 40 characters", "labels are emotion words, e.g. 'joy,fear,calm'")
    return "custom", uniq


def named_label_set(name: str) -> LabelSet:
    """A named taxonomy from the curated mapping tables alone (no knowledge index needed)."""
    from kever.knowledge.loader import load_knowledge

    knowledge = load_knowledge()
    if name == "mikels8":
        return LabelSet("mikels8", MIKELS8, np.eye(len(MIKELS8)))
    labels = tuple(knowledge.taxonomies[name].labels)
    table = knowledge.mappings[("mikels8", name)].table
    matrix = np.array([[float(table.get(m, {}).get(t, 0.0)) for m in MIKELS8] for t in labels])
    matrix = matrix / np.clip(matrix.sum(axis=0, keepdims=True), 1e-12, None)
    return LabelSet(name, labels, matrix)


def resolve_labels(spec, kb) -> LabelSet:
    kind, items = parse_labels(spec)
    if kind == "named":
        return named_label_set(items[0])
    rows = []
    unknown = []
    taxonomies = kb.knowledge.taxonomies if hasattr(kb, "knowledge") else {}
    for label in items:
        if label in NEUTRAL_WORDS:  # reads the neutral logit; its row here only feeds valence
            rows.append(np.zeros(len(MIKELS8)))
            continue
        if label in MIKELS8:
            rows.append(np.eye(len(MIKELS8))[MIKELS8.index(label)])
            continue
        home = next((t for t in taxonomies.values() if label in t.labels and t.name != "sentiment"), None)
        if home is not None:  # another taxonomy's label: its curated mapping to Mikels 8
            mapped = kb.map_distribution({label: 1.0}, home.name, "mikels8")
            rows.append(np.array([float(mapped.get(m, 0.0)) for m in MIKELS8]))
            continue
        try:
            profile = kb.emotions_of(label, "mikels8")
        except KeverError:
            profile = None
        # a label must be a known word or concept: nearest-neighbour search finds *something*
        # for any string, so it does not count
        if profile is None or not profile.evidence or profile.match in ("search", "none"):
            unknown.append(label)
            continue
        rows.append(np.array([float(profile.distribution.get(m, 0.0)) for m in MIKELS8]))
    if unknown:
        raise InputError(
            f"label(s) {', '.join(unknown)} have no emotion associations in the knowledge base",
            "use emotion words (e.g. joy, grief, calm, dread) or a named set: mikels8, emotion6, sentiment",
        )
    matrix = np.array(rows) + 1e-6
    matrix = matrix / matrix.sum(axis=0, keepdims=True)
    return LabelSet("custom", tuple(items), matrix)
