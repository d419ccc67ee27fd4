"""Request bodies (OpenAI Chat Completions subset, kever's /v1/emotion), validated by pydantic.

The shapes kever relies on are checked and a malformed one gets a 400 saying where; which other
OpenAI parameters are honoured, refused or accepted without effect is :mod:`kever.serve.harness`.
``ResponsesRequest`` is the subset of the Responses API (``POST /v1/responses``) kever answers,
turned into a chat request.
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
    n: int | None = Field(None, description="kever returns one choice (n > 1: 400, see harness)")


class EmotionRequest(BaseModel):
    """JSON form of /v1/emotion: the image as base64 or a data: URL (or an http(s) URL when enabled)."""

    model_config = ConfigDict(extra="forbid")
    image: str = Field(min_length=1)
    labels: str | list[str] | None = None
    rationale: bool = True


class ResponsesRequest(BaseModel):
    """``POST /v1/responses``: ``input`` as text or a list of messages whose content parts are
    ``input_text`` / ``input_image``; ``text.format`` as chat's ``response_format``;
    ``max_output_tokens`` as ``max_tokens``. No streaming, no tools, no stored responses."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    input: str | list[dict] = Field(min_length=1)
    instructions: str | None = None
    stream: bool = Field(False, strict=True)
    max_output_tokens: int | None = None
    previous_response_id: str | None = None

    def as_chat(self, body: dict) -> tuple[ChatRequest, dict]:
        """(the equivalent chat request, its JSON body for :func:`kever.serve.harness.answer_mode`)."""
        from kever.serve import openai_errors as oe

        if self.stream:
            raise oe.bad_request("stream is not supported on /v1/responses: use /v1/chat/completions with stream: true",
                                 "unsupported_parameter", "stream")
        if self.previous_response_id:
            raise oe.bad_request("previous_response_id is not supported: name a conversation with the "
                                 "X-Conversation-Id header instead", "unsupported_parameter", "previous_response_id")
        items = [{"role": "user", "content": self.input}] if isinstance(self.input, str) else self.input
        messages = []
        for i, item in enumerate(items):
            kind = item.get("type", "message")
            if kind != "message":
                raise oe.bad_request(f"input[{i}]: items of type {oe.quote(kind)} are not supported (only messages)",
                                     "unsupported_parameter", "input")
            content = item.get("content")
            if isinstance(content, list):
                parts = []
                for part in content:
                    t = part.get("type") if isinstance(part, dict) else None
                    if t in ("input_text", "output_text", "text"):
                        parts.append({"type": "text", "text": part.get("text", "")})
                    elif t in ("input_image", "image_url"):
                        url = part.get("image_url")
                        url = url.get("url") if isinstance(url, dict) else url
                        if not url:
                            raise oe.bad_request(f"input[{i}]: an input_image needs image_url (a data: URL); "
                                                 "file_id is not supported", "invalid_image_url", "input")
                        parts.append({"type": "image_url", "image_url": {"url": url}})
                    else:
                        raise oe.bad_request(f"input[{i}]: content parts of type {oe.quote(t)} are not supported "
                                             "(input_text, input_image)", "unsupported_parameter", "input")
                content = parts
            messages.append({"role": item.get("role", "user"), "content": content})
        chat_body = {k: v for k, v in body.items() if k not in ("input", "text", "max_output_tokens")}
        chat_body["messages"] = messages
        fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
        if fmt is not None:  # the Responses API flattens json_schema's fields into the format object
            chat_body["response_format"] = ({"type": "json_schema", "json_schema": fmt}
                                            if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else fmt)
        if self.max_output_tokens is not None:
            chat_body["max_tokens"] = self.max_output_tokens
        try:
            return ChatRequest.model_validate(chat_body), chat_body
        except Exception as e:
            from pydantic import ValidationError

            if isinstance(e, ValidationError):
                first = e.errors()[0]
                where = ".".join(str(x) for x in first.get("loc", ()))
                raise oe.bad_request(f"input: {where}: {str(first.get('msg'))[:200]}", "invalid_request", "input") from None
            raise
