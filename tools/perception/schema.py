"""What perception measures about one image: the ``Perception`` record and its parts.

Ranges (documented here, relied on by ``agent/cue_rules.yaml``):

- ``brightness``: mean luma (Rec. 601) in 0..1.
- ``saturation``: mean HSV saturation in 0..1.
- ``colorfulness``: Hasler–Süsstrunk M / 150, clipped to 0..1; ``colorfulness_raw`` is M
  (about 0 greyscale, 33 moderately, 59 quite, 109 extremely colourful).
- ``warmth``: -1 (all saturated colour is cool: cyan/blue) .. 1 (all warm: red/orange/yellow),
  shrunk towards 0 when the image has little saturated colour (see ``colour.WARMTH_FLOOR``).
- ``contrast``: RMS contrast, the standard deviation of luma in 0..1 units (0..0.5; photos
  usually 0.15..0.3).
- ``colours``: named colours (``colours.yaml``) with the share of pixels nearest to each.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

#: FER2013 classes in the order fer's model outputs them.
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Expressions that carry a valence (surprise and neutral do not).
POSITIVE_EXPRESSIONS = ("happy",)
NEGATIVE_EXPRESSIONS = ("sad", "angry", "fear", "disgust")


class NamedColour(BaseModel):
    name: str
    share: float = Field(ge=0, le=1, description="fraction of pixels nearest to this colour")
    rgb: tuple[int, int, int] = Field(description="the palette colour")


class Expressions(BaseModel):
    angry: float = 0.0
    disgust: float = 0.0
    fear: float = 0.0
    happy: float = 0.0
    sad: float = 0.0
    surprise: float = 0.0
    neutral: float = 0.0


class Face(BaseModel):
    box: tuple[int, int, int, int] = Field(description="x, y, width, height in pixels of the full-size image")
    score: float = Field(ge=0, le=1, description="detector confidence (Haar neighbour count, squashed)")
    expressions: Expressions = Field(description="FER2013 expression probabilities (sum to 1)")
    dominant: str = Field(description="the most probable expression")
    dominant_score: float = Field(ge=0, le=1)

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]

    def valence(self) -> int | None:
        """+1 if the dominant expression is happy, -1 if sad/angry/fear/disgust, else None."""
        if self.dominant in POSITIVE_EXPRESSIONS:
            return 1
        if self.dominant in NEGATIVE_EXPRESSIONS:
            return -1
        return None


class ObjectLabel(BaseModel):
    label: str = Field(description="ImageNet-1k class name")
    score: float = Field(ge=0, le=1, description="softmax probability")
    index: int = Field(ge=0, lt=1000)


class TextSpan(BaseModel):
    text: str
    score: float = Field(ge=0, le=1, description="recogniser confidence")
    box: tuple[int, int, int, int] = Field(description="x, y, width, height in pixels of the full-size image")


class Perception(BaseModel):
    """Measured cues of one image. Every extractor's model/version is in ``models``."""

    source: str
    width: int = Field(description="full-size width, EXIF orientation applied")
    height: int
    brightness: float | None = Field(None, ge=0, le=1)
    saturation: float | None = Field(None, ge=0, le=1)
    colorfulness: float | None = Field(None, ge=0, le=1)
    colorfulness_raw: float | None = Field(None, ge=0)
    warmth: float | None = Field(None, ge=-1, le=1)
    contrast: float | None = Field(None, ge=0, le=1)
    colours: list[NamedColour] = Field(default_factory=list)
    faces: list[Face] = Field(default_factory=list, description="largest first")
    objects: list[ObjectLabel] = Field(default_factory=list, description="top-k, best first")
    imagenet: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False,
                                     description="model -> its full 1000-class softmax (float32 array); kept in memory, not in JSON")
    imagenet_view: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False,
                                          description="the same for the photo's second view (mirrored, 4% cropped); not in JSON")
    text: list[TextSpan] = Field(default_factory=list, description="reading order")
    models: dict[str, str] = Field(default_factory=dict, description="extractor -> model id and version")
    timings: dict[str, float] = Field(default_factory=dict, description="extractor -> seconds for this image")
    notes: list[str] = Field(default_factory=list, description="what loading/perception changed or skipped")

    def largest_face(self) -> Face | None:
        return max(self.faces, key=lambda f: f.area) if self.faces else None

    def face_valence(self) -> int | None:
        """Valence (+1/-1) of the largest face's dominant expression, None if undefined."""
        face = self.largest_face()
        return face.valence() if face else None
