"""Pydantic results of the knowledge base (what the reasoner and the agent tools see)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Hit(BaseModel):
    """One knowledge entry returned by retrieval.

    ``weights`` are association strengths over the Mikels 8 labels (the canonical space;
    SenticNet moods and Plutchik emotions are mapped into it with the curated mapping
    tables). They are hand-written or lexicon-derived strengths, not probabilities.
    """

    id: str
    source: str
    text: str
    kind: str  # 'cue' | 'definition' | 'concept' | 'lexicon'
    family: str | None = None
    name: str = ""
    weights: dict[str, float] = Field(default_factory=dict)
    valence: float | None = None
    arousal: float | None = None
    score: float = 0.0
    citations: list[str] = Field(default_factory=list)


class EmotionProfile(BaseModel):
    """What a concept evokes: a distribution over a taxonomy's labels, with its evidence.

    ``match`` says how the concept was resolved: ``exact`` (a name or alias), ``variant``
    (a plural/spelling variant), ``tokens`` (its words, one by one), ``search`` (nearest
    entries by hybrid search) or ``none`` (nothing found: uniform distribution, valence None).
    """

    concept: str
    taxonomy: str
    distribution: dict[str, float]
    evidence: list[Hit] = Field(default_factory=list)
    valence: float | None = None
    arousal: float | None = None
    match: Literal["exact", "variant", "tokens", "search", "none"] = "none"


class EmotionDefinition(BaseModel):
    id: str
    label: str
    taxonomy: str
    definition: str
    appraisal: str
    valence: float
    arousal: float
    source: str
    citations: list[str] = Field(default_factory=list)


class Taxonomy(BaseModel):
    name: str
    title: str
    labels: list[str]
    definitions: dict[str, EmotionDefinition]
    source: str
