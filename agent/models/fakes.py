"""Fakes of every model role, for tests and demos: no weights, deterministic.

- ``FakeVLM`` / ``FakeTextLM``: answer from a queue of scripted responses, or from a
  function of the prompt (``respond(messages, images) -> str``); every call is recorded.
  ``FakeTextLM.generate_json(messages, schema)`` answers the same way and records the schema
  (the structured call of a grammar-constrained model: the knowledge agent's tool calls, the
  structured rationale). ``FakePlainTextLM`` has no ``generate_json``: a model that only
  writes free text (SmolLM2 through transformers).
- ``FakeAligner``: hashed bag-of-words text embeddings and hashed colour/pixel image
  embeddings in one space of ``dim`` dimensions, L2-normalised; the same input always gives
  the same vector, and texts sharing words are closer than texts that do not.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kever.agent.models.base import Message, check_images, text_of

Responder = Callable[[list[Message], list[Any]], str]


@dataclass
class FakeCall:
    messages: list[Message]
    images: list[Any]
    max_new_tokens: int
    temperature: float

    @property
    def prompt(self) -> str:
        """All message texts joined: handy for asserting what the model was asked."""
        return "\n".join(text_of(m.get("content", "")) for m in self.messages)


class FakeVLM:
    """A scripted VLM. ``responses`` are returned in order (then ``default`` is returned, or
    an error raised when ``default`` is None); ``respond`` instead computes each answer."""

    def __init__(
        self,
        responses: Iterable[str] = (),
        *,
        respond: Responder | None = None,
        default: str | None = "",
        model_id: str = "fake-vlm",
    ):
        self.model_id = model_id
        self.queue: deque[str] = deque(responses)
        self.respond = respond
        self.default = default
        self.calls: list[FakeCall] = []

    def generate(
        self,
        messages: list[Message],
        images: list[Any] | None = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> str:
        check_images(messages, images)
        self.calls.append(FakeCall(list(messages), list(images or []), max_new_tokens, temperature))
        if self.respond is not None:
            return self.respond(list(messages), list(images or []))
        if self.queue:
            return self.queue.popleft()
        if self.default is None:
            raise AssertionError(f"{self.model_id}: no scripted response left for call {len(self.calls)}")
        return self.default

    def push(self, *responses: str) -> None:
        self.queue.extend(responses)


class FakeTextLM(FakeVLM):
    """A scripted text LM (a FakeVLM that is never given images)."""

    def __init__(self, responses: Iterable[str] = (), *, respond: Responder | None = None,
                 default: str | None = "", model_id: str = "fake-textlm"):
        super().__init__(responses, respond=respond, default=default, model_id=model_id)
        self.schemas: list[dict] = []

    def generate(self, messages: list[Message], images: list[Any] | None = None, *,
                 max_new_tokens: int = 256, temperature: float = 0.0) -> str:
        return super().generate(messages, images, max_new_tokens=max_new_tokens, temperature=temperature)

    def generate_json(self, messages: list[Message], schema: dict, *, name: str = "reply",
                      max_new_tokens: int = 128, temperature: float = 0.0) -> str:
        """The scripted answer (a real model would be held to ``schema`` by a grammar; a
        script may break it, which is what the tests of malformed replies need)."""
        self.schemas.append(schema)
        return self.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature)


class FakePlainTextLM(FakeTextLM):
    """A scripted text LM with no JSON-schema grammar: callers fall back to free text."""

    generate_json = None  # type: ignore[assignment]


_WORD = re.compile(r"[a-z0-9]+")


def _hash_vec(key: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


@dataclass
class FakeAligner:
    """Deterministic hashed embeddings. ``image_words`` maps an image (by its pixel hash) to
    words it should "look like", so a test can make an image align with chosen texts."""

    dim: int = 64
    logit_scale: float = 100.0
    model_id: str = "fake-aligner"
    image_words: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)

    @staticmethod
    def image_key(image) -> str:
        im = image.convert("RGB").resize((16, 16))
        return hashlib.sha256(im.tobytes()).hexdigest()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self.calls.append(("texts", len(texts)))
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            words = _WORD.findall(t.lower()) or [""]
            out[i] = sum(_hash_vec("w:" + w, self.dim) for w in words)
        return _normalise(out)

    def encode_images(self, images: list) -> np.ndarray:
        self.calls.append(("images", len(images)))
        out = np.zeros((len(images), self.dim), np.float32)
        for i, im in enumerate(images):
            key = self.image_key(im)
            if key in self.image_words:
                self.calls.append(("words", i))
                out[i] = self._text_vec(self.image_words[key])
            else:
                out[i] = _hash_vec("img:" + key, self.dim)
        return _normalise(out)

    def _text_vec(self, text: str) -> np.ndarray:
        words = _WORD.findall(text.lower()) or [""]
        return sum(_hash_vec("w:" + w, self.dim) for w in words)
