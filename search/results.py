"""Pydantic results of indexing and searching (the ``--json`` output and the HTTP API)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Skipped(BaseModel):
    path: str
    reason: str


class IndexReport(BaseModel):
    index: str
    root: str
    preset: str
    photos: int = Field(description="photos in the index after this run")
    new: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    judged: int = Field(0, description="photos judged by this run (new + changed, less the skipped)")
    skipped: list[Skipped] = Field(default_factory=list, description="files that could not be judged, with why")
    other_files: int = Field(0, description="files left out because they are not photos by their extension")
    seconds: float = 0.0
    photos_per_s: float | None = None


class Hit(BaseModel):
    path: str = Field(description="relative to the indexed folder")
    file: str = Field(description="absolute path of the photo")
    score: float = Field(description="how well it answers the query (higher is better; comparable within one query)")
    label: str
    confidence: float
    valence: float
    arousal: float
    scores: dict[str, float] = Field(description="the stored Mikels-8 distribution")
    reason: str = Field(description="one line from the judgment's evidence")
    evidence_ref: str | None = Field(None, description="the evidence item the reason cites")


class SearchResult(BaseModel):
    index: str
    query: dict = Field(description="the query as understood: mode, emotion profile, filters")
    total: int = Field(description="photos in the index")
    hits: list[Hit]
    seconds: float
