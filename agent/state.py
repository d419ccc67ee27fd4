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
    alignment: list[float] | None = None  # canonical Mikels-8 distribution
    direct_vlm: list[float] | None = None
    deliberation: list[float] | None = None
    deliberation_rounds: int = 0

    streams: dict[str, list[float]] = Field(default_factory=dict)  # canonical, before fusion
    pooled: list[float] | None = None  # the pooled distribution before the prior mixture (decides deliberation)
    canonical: list[float] | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    label: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)

    rationale: str | None = None
    rationale_kind: str = "none"
    prompt_versions: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
