"""The three model roles the reasoner uses, as structural protocols.

Messages are OpenAI-style dicts ``{"role": "system"|"user"|"assistant", "content": ...}``.
``content`` is a string, or (for a VLM) a list of parts ``[{"type": "image"},
{"type": "text", "text": "..."}]`` whose image parts take the ``images`` argument's pixels
in order. A VLM is also a TextLM: ``generate(messages)`` with no images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

Message = dict[str, Any]


@runtime_checkable
class TextLM(Protocol):
    model_id: str

    def generate(
        self, messages: list[Message], *, max_new_tokens: int = 256, temperature: float = 0.0
    ) -> str: ...


@runtime_checkable
class VLM(Protocol):
    model_id: str

    def generate(
        self,
        messages: list[Message],
        images: list[Image.Image] | None = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> str: ...


@runtime_checkable
class Aligner(Protocol):
    model_id: str
    logit_scale: float

    def encode_images(self, images: list[Image.Image]) -> np.ndarray: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


def text_of(content: Any) -> str:
    """The text of a message's content (a string, or the text parts of a part list)."""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def count_image_parts(messages: list[Message]) -> int:
    n = 0
    for m in messages:
        c = m.get("content")
        if isinstance(c, list):
            n += sum(1 for p in c if isinstance(p, dict) and p.get("type") in ("image", "image_url"))
    return n


def check_images(messages: list[Message], images: list | None) -> None:
    """Each image part of the messages must have exactly one image to go with it."""
    from kever.errors import InputError

    n_parts, n_images = count_image_parts(messages), len(images or [])
    if n_parts != n_images:
        raise InputError(
            f"the messages have {n_parts} image part(s) but {n_images} image(s) were given",
            "pass one PIL image per {'type': 'image'} part, in order",
        )
