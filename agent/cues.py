"""From measured perception to cue phrases (``Cue``), by the rules in ``cue_rules.yaml``.

Each cue has an id (C1, C2, ...), a family, a phrase the knowledge base can be queried with,
the extractor that measured it, and a confidence.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
import re
from typing import Any, Iterable

import yaml

from kever.agent.judgment import Cue

RULES_FILE = Path(__file__).parent / "cue_rules.yaml"


@lru_cache(maxsize=1)
def imagenet_wnids() -> list[str]:
    """WordNet ids of the ImageNet-1k classes, in the object model's output order."""
    from kever.tools.perception.objects import imagenet_wnids as wnids

    return wnids()


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


_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][\s.\-_*]{1,3}){2,}[^\W\d_](?![^\W\d_])")


def normalise_spacing(text: str) -> str:
    """Lower case, letter-spaced words joined, every run of non-letters one space:
    'THE-ANSWER_IS:ANGER' -> 'the answer is anger', 'A N G E R' / 'a.n.g.e.r' -> 'anger'."""
    text = _SPACED.sub(lambda m: re.sub(r"[\s.\-_*]", "", m.group(0)), text.lower())
    return " ".join(re.findall(r"[^\W\d_]+", text))


def squash(text: str) -> str:
    """Letters only: 'THE ANSWER IS: ANGER' and 'THEANSWERIS:ANGER' both -> 'theanswerisanger'."""
    return "".join(re.findall(r"[^\W\d_]+", text.lower()))


def looks_like_instruction(text: str) -> bool:
    """Whether text in an image reads like an order to a model, in any spacing."""
    r = rules()
    spaced, flat = normalise_spacing(text), squash(text)
    return any(re.search(p, spaced) for p in r["instruction_patterns"]) or any(w in flat for w in r["instruction_words"])


def strip_label_words(text: str, extra: Iterable[str] = ()) -> str:
    """The text without words that name emotions (``text_label_words`` and every taxonomy's
    labels); empty when what is left still hides one, run together or inside a word
    ("ANGERANGER", "PUREAWE": OCR drops spaces), since text that spells a label must not vote
    for it. This drops some innocent words too ("crusade" holds "sad"): text is weak evidence."""
    banned = set(rules()["text_label_words"]) | {w.lower() for w in extra}
    kept = [w for w in normalise_spacing(text).split() if w not in banned]
    if any(w in "".join(kept) for w in banned if len(w) >= 3):
        return ""
    return " ".join(kept)



def perception_cues(perception: Any, start: int = 1, notes: list[str] | None = None,
                    label_words: Iterable[str] = ()) -> list[Cue]:
    """Cues from a ``Perception`` (or its dict form). A cue's source names the extractor
    (``perception:faces``); the judgment's ``models`` gives each extractor's model and version."""
    r = rules()
    cues: list[Cue] = []

    def add(family: str, text: str, source: str, conf: float, entries: list[str] | None = None, say: str = "") -> None:
        if conf > 0:
            cues.append(Cue(id=f"C{start + len(cues)}", family=family, text=text, source=f"perception:{source}",
                            confidence=round(float(conf), 3), kb_entries=list(entries or []), say=say))

    colour_model = "colour"
    for rule in r["scalar_rules"]:
        value = _get(perception, rule["field"])
        if value is None:
            continue
        fired = value <= rule["at"] if rule.get("below") else value >= rule["at"]
        if fired:
            add(rule["family"], rule["text"], colour_model, _ramp(float(value), rule["at"], rule["full"]), rule.get("entries"),
                rule.get("say", ""))
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
                add("face", r["face_text"][expr], face_model, float(p) * min(1.0, score), [r["face_entries"][expr]],
                    f"the {r['face_say'][expr]} face")
    obj_model = "objects"
    objects = sorted(_get(perception, "objects", []) or [], key=lambda o: -float(_get(o, "score", 0.0)))
    for o in objects[: r["object_top_k"]]:
        s = float(_get(o, "score", 0.0))
        if s >= r["object_min_score"]:
            entry = r["object_entry"].format(wnid=imagenet_wnids()[int(_get(o, "index"))])
            add("object", r["object_text"].format(label=_get(o, "label")), obj_model, s, [entry])
    text_model = "text"
    for t in (_get(perception, "text", []) or [])[: r["text_max_spans"]]:
        text = str(_get(t, "text", "")).strip()
        if text and looks_like_instruction(text):
            if notes is not None:
                notes.append(f"text in the image reads like an instruction and was not used: {text[:60]!r}")
            continue
        kept = strip_label_words(text, label_words)[:200]
        if kept:
            add("text", kept, text_model, float(_get(t, "score", 0.5)))
    return cues
