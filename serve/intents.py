"""Rule-based parsing of chat follow-ups about a stored judgment.

Intents: ``relabel`` (another label set: "answer for Ekman's six instead", "labels: a, b, c"),
``contrast`` ("why not fear?", "what about anger?"), ``support`` ("what in the image made it
awe?", "why awe?"), ``scores`` ("how sure are you?"), ``summary`` (anything else). The
vocabulary is data (vocab.yaml).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel

Kind = Literal["relabel", "contrast", "support", "scores", "summary"]


class Vocab(BaseModel):
    label_sets: dict[str, dict[str, list[str]]]
    synonyms: dict[str, list[str]]


class Intent(BaseModel):
    kind: Kind
    label: str | None = None
    label_set: str | list[str] | None = None


@lru_cache(maxsize=1)
def vocab() -> Vocab:
    from kever.agent.fusion import MIKELS8

    v = Vocab.model_validate(yaml.safe_load((Path(__file__).parent / "vocab.yaml").read_text(encoding="utf-8")))
    v.label_sets["mikels8"]["labels"] = list(MIKELS8)
    return v


def _norm(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9'/ -]+", " ", text.lower().replace("’", "'")) + " "


def label_mentions(text: str, labels: list[str]) -> list[str]:
    """Labels (from ``labels`` or any known set) named in ``text``, in order of appearance."""
    t = _norm(text)
    forms: dict[str, str] = {}
    for label, words in vocab().synonyms.items():
        for w in words:
            forms[w] = label
    for label in labels:
        forms[label.lower()] = label
    hits: list[tuple[int, str]] = []
    for form, label in forms.items():
        m = re.search(rf"(?<![a-z]){re.escape(form)}(?![a-z])", t)
        if m:
            hits.append((m.start(), label))
    seen: list[str] = []
    for _, label in sorted(hits):
        if label not in seen:
            seen.append(label)
    return seen


def _label_set(text: str) -> str | list[str] | None:
    m = re.search(r"\blabels?\s*[:=]\s*([a-z][a-z ,;/-]+)", text.lower())
    if m:
        items = [x.strip() for x in re.split(r"[,;/]| and | or ", m.group(1)) if x.strip()]
        if len(items) >= 2:
            return items
    t = _norm(text)
    best: tuple[int, str] | None = None
    for name, spec in vocab().label_sets.items():
        for phrase in [name, *spec.get("phrases", [])]:
            i = t.find(phrase.lower())
            if i >= 0 and (best is None or i < best[0]):
                best = (i, name)
    return best[1] if best else None


def parse(text: str, labels: list[str]) -> Intent:
    """``labels``: the current judgment's label names (so custom sets are recognised)."""
    t = text.lower().strip()
    new_set = _label_set(t)
    if new_set is not None:
        return Intent(kind="relabel", label_set=new_set)
    mentioned = label_mentions(t, labels)
    first = mentioned[0] if mentioned else None
    if re.search(r"\bwhy\s+(not|isn'?t|wasn'?t|no|didn'?t)\b|\bwhat about\b|\brather than\b|\binstead of\b|\bnot\s+\w+\s*\?", t) and first:
        return Intent(kind="contrast", label=first)
    if re.search(r"\bwhy\b|\bwhat\b.*\b(made|makes|make)\b|\bwhich\b.*\b(cue|part|thing)|\bevidence\b|\bcues?\b|\bwhat did you see\b|\bexplain\b", t):
        return Intent(kind="support", label=first)
    if re.search(r"\bscores?\b|\bdistribution\b|\bprobabilit|\bconfiden|\bhow sure\b|\bcertain\b|\bbreakdown\b", t):
        return Intent(kind="scores", label=first)
    if first:
        return Intent(kind="support", label=first)
    return Intent(kind="summary")
