"""From measured perception to cue phrases (``Cue``), by the rules in ``cue_rules.yaml``.

Each cue has an id (C1, C2, ...), a family, a phrase the knowledge base can be queried with,
the extractor that measured it, and a confidence.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
import re
from typing import Any

import yaml

from kever.agent.judgment import Cue

RULES_FILE = Path(__file__).parent / "cue_rules.yaml"


@lru_cache(maxsize=1)
def rules() -> dict:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


def _get(obj: Any, name: str, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _ramp(value: float, at: float, full: float) -> float:
    if full == at:
        return 1.0
    return max(0.0, min(1.0, (value - at) / (full - at)))


def looks_like_instruction(text: str) -> bool:
    return any(re.search(p, text, re.I) for p in rules()["instruction_patterns"])


def perception_cues(perception: Any, start: int = 1, notes: list[str] | None = None) -> list[Cue]:
    """Cues from a ``Perception`` (or its dict form). A cue's source names the extractor
    (``perception:faces``); the judgment's ``models`` gives each extractor's model and version."""
    r = rules()
    cues: list[Cue] = []

    def add(family: str, text: str, source: str, conf: float, entries: list[str] | None = None) -> None:
        if conf > 0:
            cues.append(Cue(id=f"C{start + len(cues)}", family=family, text=text, source=f"perception:{source}",
                            confidence=round(float(conf), 3), kb_entries=list(entries or [])))

    colour_model = "colour"
    for rule in r["scalar_rules"]:
        value = _get(perception, rule["field"])
        if value is None:
            continue
        fired = value <= rule["at"] if rule.get("below") else value >= rule["at"]
        if fired:
            add(rule["family"], rule["text"], colour_model, _ramp(float(value), rule["at"], rule["full"]), rule.get("entries"))
    for c in _get(perception, "colours", []) or []:
        share = float(_get(c, "share", 0.0))
        entry = r["colour_entries"].get(_get(c, "name"))
        if share >= r["colour_min_share"] and entry:
            add("colour", r["colour_text"].format(name=_get(c, "name")), colour_model, min(1.0, share * 2), [entry])
    face_model = "faces"
    for face in _get(perception, "faces", []) or []:
        expressions = _get(face, "expressions", {}) or {}
        if hasattr(expressions, "model_dump"):
            expressions = expressions.model_dump()
        score = float(_get(face, "score", 1.0) or 1.0)
        for expr, p in sorted(expressions.items(), key=lambda kv: -kv[1]):
            if p >= r["face_min_prob"] and expr in r["face_text"]:
                add("face", r["face_text"][expr], face_model, float(p) * min(1.0, score), [r["face_entries"][expr]])
    obj_model = "objects"
    objects = sorted(_get(perception, "objects", []) or [], key=lambda o: -float(_get(o, "score", 0.0)))
    for o in objects[: r["object_top_k"]]:
        s = float(_get(o, "score", 0.0))
        if s >= r["object_min_score"]:
            add("object", r["object_text"].format(label=_get(o, "label")), obj_model, s)
    text_model = "text"
    for t in (_get(perception, "text", []) or [])[: r["text_max_spans"]]:
        text = str(_get(t, "text", "")).strip()
        if text and looks_like_instruction(text):
            if notes is not None:
                notes.append(f"text in the image reads like an instruction and was not used: {text[:60]!r}")
            continue
        if text:
            add("text", text[:200], text_model, float(_get(t, "score", 0.5)))
    return cues
