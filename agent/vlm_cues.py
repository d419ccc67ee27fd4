"""The VLM's structured cue description: schema, parsing, bounded repair, conversion to cues.

The VLM answers ``prompts/describe_cues``; its output must validate against ``VLMCues``.
Invalid output gets one repair request (``prompts/repair_json``); if that fails too, the
caller falls back to perception cues and records why. Nothing here can crash the graph.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kever.agent.judgment import Cue


class Person(BaseModel):
    model_config = ConfigDict(extra="ignore")
    facial_expression: str = ""
    action: str = ""
    body_language: str = ""


def _as_list(v):
    if v is None:
        return []
    if isinstance(v, str):
        return [v] if v.strip() else []
    return v


class VLMCues(BaseModel):
    """EmoSet's attribute families plus a narrative."""

    model_config = ConfigDict(extra="ignore")
    scene: str = ""
    objects: list[str] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    lighting_and_colour: str = ""
    events: list[str] = Field(default_factory=list)
    symbols: list[str] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)
    narrative: str = ""

    _lists = field_validator("objects", "events", "symbols", "text", "people", mode="before")(_as_list)

    def is_empty(self) -> bool:
        return not (self.scene or self.objects or self.people or self.lighting_and_colour or self.events or self.narrative)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str) -> str:
    """The first JSON object in a model's answer (inside a code fence or bare)."""
    m = _FENCE.search(text)
    if m:
        text = m.group(1)
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output")
    depth = 0
    in_str = False
    esc = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    raise ValueError("unterminated JSON object in the output")


def parse_cues(text: str) -> VLMCues:
    """Parse and validate; raises ValueError with a short reason."""
    try:
        data = json.loads(extract_json(text))
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e.msg} at position {e.pos}") from None
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object")
    try:
        cues = VLMCues.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise ValueError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    if cues.is_empty():
        raise ValueError("every field is empty")
    return cues


def to_cues(vc: VLMCues, source: str, start: int = 1, confidence: float = 0.7) -> list[Cue]:
    items: list[tuple[str, str]] = []
    if vc.scene:
        items.append(("scene", vc.scene))
    items += [("object", o) for o in vc.objects[:8] if o.strip()]
    for p in vc.people[:4]:
        if p.facial_expression:
            items.append(("face", f"{p.facial_expression} facial expression"))
        if p.action:
            items.append(("action", p.action))
        if p.body_language:
            items.append(("action", p.body_language))
    if vc.lighting_and_colour:
        items.append(("lighting", vc.lighting_and_colour))
    items += [("event", e) for e in vc.events[:4] if e.strip()]
    items += [("symbol", s) for s in vc.symbols[:4] if s.strip()]
    items += [("text", t) for t in vc.text[:3] if t.strip()]
    if vc.narrative:
        items.append(("narrative", vc.narrative))
    return [
        Cue(id=f"C{start + i}", family=fam, text=txt.strip()[:300], source=f"vlm:{source}", confidence=confidence)
        for i, (fam, txt) in enumerate(items)
    ]
