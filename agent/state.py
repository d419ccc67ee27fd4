"""The state that flows through the reasoning graph (a pydantic model)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kever.agent.judgment import Cue, Evidence, ToolCall


class CueHits(BaseModel):
    """Knowledge-base hits retrieved for one cue."""

    cue_id: str
    hits: list[Any] = Field(default_factory=list)  # kever.tools.kb.Hit


class GraphState(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Any = None  # kever.images.LoadedImage
    labels: Any = None  # kever.agent.labels.LabelSet
    want_rationale: bool = True

    perception: Any = None  # kever.tools.perception.Perception
    cues: list[Cue] = Field(default_factory=list)
    retrieved: list[CueHits] = Field(default_factory=list)
    alignment: Any = None  # kever.agent.fusion.AlignmentInput
    direct_vlm: list[float] | None = None
    deliberation: list[float] | None = None
    deliberation_rounds: int = 0

    streams: dict[str, list[float]] = Field(default_factory=dict)  # canonical, before fusion
    decision: Any = None  # kever.agent.fusion.Decision
    canonical: list[float] | None = None  # softmax(Z / T) over Mikels 8, before calibration
    scores: dict[str, float] = Field(default_factory=dict)
    label: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)

    rationale: str | None = None
    rationale_kind: str = "none"
    rationale_attempts: list[Any] = Field(default_factory=list)  # kever.agent.judgment.RationaleAttempt
    prompt_versions: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
