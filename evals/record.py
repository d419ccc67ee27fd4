"""One line of ``samples.jsonl``: the sample's truth and the system's whole judgment (or error)."""

from __future__ import annotations

from pydantic import BaseModel

from kever.evals.sample import Truth


class ErrorInfo(BaseModel):
    type: str
    message: str


class Record(BaseModel):
    id: str
    image: str
    truth: Truth
    judgment: dict | None = None  # Judgment.model_dump(mode="json"): label, scores, cues, evidence, rationale ...
    error: ErrorInfo | None = None
    seconds: float | None = None
    worker: str | None = None

    @property
    def ok(self) -> bool:
        return self.judgment is not None and self.error is None
