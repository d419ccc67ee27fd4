"""Request bodies (OpenAI Chat Completions subset, kever's /v1/emotion), validated by pydantic.

Unknown extra fields that OpenAI clients send (temperature, max_tokens, ...) are accepted and
ignored; the shapes kever relies on are checked and a malformed one gets a 400 saying where.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str = Field(min_length=1)
    detail: str | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url"]
    image_url: ImageURL

    @field_validator("image_url", mode="before")
    @classmethod
    def _bare_string(cls, v):  # some clients send "image_url": "data:..."
        return {"url": v} if isinstance(v, str) else v


Part = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def image_urls(self) -> list[str]:
        if not isinstance(self.content, list):
            return []
        return [p.image_url.url for p in self.content if isinstance(p, ImagePart)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = Field(False, strict=True)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = Field(False, strict=True, description="JSON true or false (not the string \"true\")")
    stream_options: StreamOptions | None = None
    user: str | None = None
    n: int | None = Field(None, ge=1, le=1, description="kever returns one choice")


class EmotionRequest(BaseModel):
    """JSON form of /v1/emotion: the image as base64 or a data: URL (or an http(s) URL when enabled)."""

    model_config = ConfigDict(extra="forbid")
    image: str = Field(min_length=1)
    labels: str | list[str] | None = None
    rationale: bool = True
