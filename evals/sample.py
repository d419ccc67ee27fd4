"""One evaluation sample: an image and its ground truth, as every loader yields it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Truth(BaseModel):
    """Ground truth for one image.

    ``label`` is the single dominant label, or None when the top of the distribution is tied;
    ``labels`` is always the set of labels at the top (one element when untied). See the tie
    policy in :mod:`kever.evals.metrics`.
    """

    label: str | None = None
    labels: list[str] = Field(default_factory=list)
    distribution: dict[str, float] | None = None
    valence: float | None = None
    arousal: float | None = None


class Sample(BaseModel):
    id: str
    image: str = Field(description="absolute image path")
    truth: Truth
    label_set: str = Field(description="name of the dataset's label set (mikels8, emotion6, sentiment, custom)")
    attributes: dict = Field(default_factory=dict, description="dataset extras, e.g. EmoSet attribute annotations")


def truth_from_distribution(dist: dict[str, float], tol: float = 1e-9, **extra) -> Truth:
    """Normalise a vote/probability vector and take its top label(s) (ties kept as a set)."""
    total = float(sum(dist.values()))
    norm = {k: (float(v) / total if total > 0 else 0.0) for k, v in dist.items()}
    top = max(norm.values()) if norm else 0.0
    tied = [k for k, v in norm.items() if total > 0 and abs(v - top) <= tol]
    return Truth(label=tied[0] if len(tied) == 1 else None, labels=tied,
                 distribution=norm if total > 0 else None, **extra)


def truth_from_label(label: str, **extra) -> Truth:
    return Truth(label=label, labels=[label], **extra)
