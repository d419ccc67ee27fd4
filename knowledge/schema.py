"""The schema of kever's curated affective knowledge (the YAML files beside this module).

Every file is validated on load; a broken file raises :class:`kever.errors.ConfigError`
naming the file, the entry and the field.

About the numbers: ``weights`` are *association strengths* in [0, 1] between a cue and an
emotion, written by hand from the cited literature (which reports directions, correlations
and typical findings, rarely a number that could be copied). They say "this cue is reported
to go with this emotion, strongly (≈0.8) / moderately (≈0.5) / weakly (≈0.2)". They are not
measurements, and nothing downstream should treat them as probabilities. ``valence`` is in
[-1, 1] (negative .. positive), ``arousal`` in [0, 1] (calm .. excited), again typical
directions from the literature rather than measured values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FAMILIES = (
    "colour", "lighting", "scene", "object", "animal", "face", "action", "body",
    "composition", "event", "symbol",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Strict):
    """One citation: ``key`` is what entries refer to."""

    key: str
    cite: str


class SourcesFile(_Strict):
    sources: list[Source]


class EmotionDef(_Strict):
    label: str
    definition: str
    appraisal: str
    valence: float = Field(ge=-1, le=1)
    arousal: float = Field(ge=0, le=1)
    sources: list[str] = Field(min_length=1)


class TaxonomyDef(_Strict):
    name: str
    title: str
    sources: list[str] = Field(min_length=1)
    emotions: list[EmotionDef] = Field(min_length=2)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.emotions]


class TaxonomiesFile(_Strict):
    taxonomies: list[TaxonomyDef]


class Mapping(_Strict):
    """``table[from_label] = {to_label: strength}``: how a label of one scheme spreads over another."""

    from_: str = Field(alias="from")
    to: str
    sources: list[str] = Field(min_length=1)
    note: str = ""
    table: dict[str, dict[str, float]]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("table")
    @classmethod
    def _non_negative(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for src, row in v.items():
            for dst, w in row.items():
                if w < 0:
                    raise ValueError(f"negative strength {w} for {src} -> {dst}")
        return v


class MappingsFile(_Strict):
    mappings: list[Mapping]


class CueEntry(_Strict):
    """A visual cue and the emotions it is reported to evoke (weights over Mikels 8)."""

    id: str = Field(pattern=r"^[a-z0-9_.\-]+$")
    name: str = Field(min_length=1)
    aliases: list[str] = []
    text: str = Field(min_length=10)
    weights: dict[str, float]
    valence: float | None = Field(default=None, ge=-1, le=1)
    arousal: float | None = Field(default=None, ge=0, le=1)
    sources: list[str] = []

    @field_validator("weights")
    @classmethod
    def _weights_range(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one emotion weight is required")
        for label, w in v.items():
            if not 0 <= w <= 1:
                raise ValueError(f"weight for {label!r} is {w}, outside [0, 1]")
        return v


class CueFile(_Strict):
    family: Literal[FAMILIES]  # type: ignore[valid-type]
    kind: Literal["cue", "concept"] = "cue"
    sources: list[str] = Field(min_length=1, description="default citations for entries")
    entries: list[CueEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> "CueFile":
        seen: set[str] = set()
        for e in self.entries:
            if e.id in seen:
                raise ValueError(f"duplicate id {e.id!r}")
            seen.add(e.id)
        return self
