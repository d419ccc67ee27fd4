"""The result of ``kever explain``: a pydantic model with a stable JSON form.

Field names are the interface contract (README, "How it decides"): ``label``, ``scores``,
``confidence``, ``valence``, ``arousal``, ``cues``, ``evidence``, ``rationale``, ``models``,
``timings``. Everything else is additional.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Cue(BaseModel):
    """One thing seen in the image that may bear on emotion."""

    id: str = Field(description="stable id within the judgment, e.g. 'C3'")
    family: str = Field(description="scene | object | face | people | action | colour | lighting | event | symbol | text | composition | narrative")
    text: str
    source: str = Field(description="what produced it: 'perception:<extractor>' or 'vlm:<model>'")
    confidence: float = Field(ge=0.0, le=1.0)
    verified: float | None = Field(default=None, description="image-cue agreement from alignment (0..1), if checked")
    kb_entries: list[str] = Field(default_factory=list, description="curated knowledge entries a measured cue maps to directly")
    say: str = Field("", description="how the written explanation names it, in plain words (empty: from text and family)")


class Evidence(BaseModel):
    """A piece of affective knowledge used in the judgment, with its citation."""

    id: str = Field(description="knowledge-base entry id, e.g. 'cue:colour:dark-tones'")
    ref: str = Field(default="", description="short citation used in the rationale, e.g. 'E2'")
    source: str = Field(description="where the entry comes from (curated file + literature, SenticNet 6, NRC EmoLex ...)")
    text: str
    weights: dict[str, float] = Field(default_factory=dict, description="emotion -> association weight")
    score: float = Field(0.0, description="its contribution to the decided label's log-score (negative: it pointed elsewhere)")
    cue_ids: list[str] = Field(default_factory=list, description="the cues that retrieved it")
    stream: str = Field("", description="the evidence stream it belongs to (objects, faces, colour, text, alignment, ...)")
    points_to: str = Field("", description="the Mikels-8 label it raises most")
    pushes: dict[str, float] = Field(default_factory=dict, description="its part of each Mikels-8 label's centred log-score")
    set_pushes: dict[str, float] = Field(default_factory=dict, description="its part of each label's logit in the judgment's label set, centred over the set")
    parts: list[float] = Field(default_factory=list, description="its part of the 8 Mikels logits and the neutral logit (what set_pushes are computed from)")
    support: int | None = Field(None, description="learned associations: how many labelled dev photos showed this output")
    rule: str = Field("", description="learned associations: the rule entry that was its prior")
    value: float | None = Field(None, description="learned associations: what perception measured (probability, count, statistic)")


class RationaleAttempt(BaseModel):
    """One model-written rationale and what the checks said of it."""

    text: str
    failed: list[str] = Field(default_factory=list, description="the checks it failed (empty: accepted)")
    seconds: float = 0.0
    new_tokens: int | None = None
    answer: str | None = Field(None, description="a structured answer as the model wrote it (JSON), which kever rendered as `text`")
    dropped: list[str] = Field(default_factory=list, description="points of a structured answer left out, each with the check it failed")


class ToolCall(BaseModel):
    """One knowledge-base call the agent proposed (recorded even when it failed validation)."""

    name: str = Field(description="the tool: kb_search | emotions_of | define (or what the model wrote)")
    arguments: dict = Field(default_factory=dict, description="the arguments as the model wrote them")
    hit_ids: list[str] = Field(default_factory=list, description="knowledge entries it returned")
    ok: bool = Field(description="whether the call validated and ran")
    error: str | None = None
    round: int = Field(1, ge=1, description="the agent's round (1 = reading the cues)")
    cue_id: str | None = Field(default=None, description="the concept cue its hits were filed under, when they were evidence")


class Judgment(BaseModel):
    label: str
    scores: dict[str, float] = Field(description="label -> probability over the whole label set, summing to 1")
    confidence: float = Field(ge=0.0, le=1.0)
    valence: float = Field(ge=-1.0, le=1.0, description="-1 unpleasant .. +1 pleasant")
    arousal: float = Field(ge=0.0, le=1.0, description="0 calm .. 1 excited")
    cues: list[Cue] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    rationale: str | None = None
    rationale_kind: Literal["model", "template", "none"] = Field(
        "none", description="who wrote the rationale: a language model (its text passed the checks), or kever's written explanation (template)")
    rationale_attempts: list[RationaleAttempt] = Field(
        default_factory=list, description="each model-written attempt and the checks it failed (empty for the written explanation)")
    models: dict[str, str] = Field(default_factory=dict, description="role -> model id and version")
    timings: dict[str, float] = Field(default_factory=dict, description="node -> seconds")
    label_set: str = "mikels8"
    canonical: dict[str, float] = Field(default_factory=dict, description="the fused Mikels-8 distribution the label set was projected from")
    base_rates: dict[str, float] = Field(default_factory=dict, description="what photos in general evoke: each label's mean score over the photos the decision was fitted on")
    lift: dict[str, float] = Field(default_factory=dict, description="score / base rate: the label is the one this photo evokes most above photos in general")
    stable: bool | None = Field(None, description="whether a mirrored, 4%-cropped copy of the photo keeps the label (None: not checked); when not, a warning says so")
    logits: list[float] = Field(default_factory=list, description="the fused canonical logits Z (Mikels 8, before the temperature) and the neutral logit: what relabel reads")
    streams: dict[str, dict[str, float]] = Field(default_factory=dict, description="per evidence stream label distributions before fusion")
    prompt_versions: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list, description="what the knowledge agent asked, in order")
    image: str | None = None

    def push(self, e: Evidence, label: str) -> float:
        """``e``'s push on ``label``'s log-score: its contribution for the decided label (any
        label set), its Mikels-8 push otherwise (agent/fusion.py)."""
        if e.set_pushes:
            return e.set_pushes.get(label, 0.0)
        return e.score if label == self.label else e.pushes.get(label, 0.0)
