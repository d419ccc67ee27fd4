"""Any OpenAI-compatible chat server (vLLM, SGLang, llama.cpp server, Ollama) as a VLM.

``POST {base_url}/chat/completions`` through httpx; image parts become ``image_url`` parts
with JPEG base64 data URLs; the API key is read from the environment variable the spec
names. 429/5xx answers and connection errors are retried with bounded exponential backoff
(tenacity); a server that stays unreachable raises :class:`~kever.errors.ModelUnavailable`.
``chat_tools`` sends OpenAI ``tools`` and returns the message with its ``tool_calls`` (the
knowledge agent's native protocol, :mod:`kever.agent.tool_callers`).
"""

from __future__ import annotations

import base64
import io
import logging
import os
from typing import Any

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from kever.agent.models.base import Message, check_images
from kever.agent.models.spec import ModelSpec, require
from kever.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    """A transport error or a retryable HTTP status (what tenacity retries on)."""


def data_url(image, *, max_side: int = 1024, quality: int = 90) -> str:
    """A PIL image as a ``data:image/jpeg;base64,...`` URL (RGB, longest side <= max_side)."""
    im = image.convert("RGB")
    if max(im.size) > max_side:
        im = im.copy()
        im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai(messages: list[Message], images: list | None, *, max_side: int = 1024) -> list[dict]:
    """Our messages (image parts as ``{"type": "image"}``) -> OpenAI wire messages."""
    it = iter(images or [])
    out = []
    for m in messages:
        c = m.get("content", "")
        if isinstance(c, str):
            out.append({"role": m["role"], "content": c})
            continue
        parts = []
        for p in c:
            if p.get("type") in ("image", "image_url"):
                parts.append({"type": "image_url", "image_url": {"url": data_url(next(it), max_side=max_side)}})
            elif p.get("type") == "text":
                parts.append({"type": "text", "text": p.get("text", "")})
        out.append({"role": m["role"], "content": parts})
    return out


class OpenAIVLM:
    """Options (``spec.options``): ``max_retries`` (3), ``backoff_s`` (0.5, doubled each
    retry, capped at 8 s), ``image_max_side`` (1024), ``extra_body`` (merged into each request)."""

    def __init__(self, spec: ModelSpec, *, transport: Any = None):
        try:
            import httpx
        except ImportError as e:  # pragma: no cover
            from kever.errors import missing_package

            raise missing_package("httpx") from e
        require(spec, "base_url", "model")
        self.spec = spec
        self.model_id = spec.label()
        self.base_url = spec.base_url.rstrip("/")
        self.max_retries = int(spec.options.get("max_retries", 3))
        self.backoff_s = float(spec.options.get("backoff_s", 0.5))
        self.image_max_side = int(spec.options.get("image_max_side", 1024))
        self.extra_body = dict(spec.options.get("extra_body", {}))
        headers = {"Content-Type": "application/json"}
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise ConfigError(
                    f"environment variable {spec.api_key_env} (the API key for {self.base_url}) is not set",
                    f"export {spec.api_key_env}=...",
                )
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(timeout=spec.timeout_s, headers=headers, transport=transport)
        self.attempts = 0  # requests sent, retries included (for tests and logs)

    def close(self) -> None:
        self.client.close()

    def _body(self, messages: list[Message], images: list | None, max_new_tokens: int, temperature: float) -> dict:
        check_images(messages, images)
        return {
            "model": self.spec.model,
            "messages": to_openai(messages, images, max_side=self.image_max_side),
            "max_tokens": int(max_new_tokens),
            "temperature": float(temperature),
            "stream": False,
            **self.extra_body,
        }

    def _message(self, data: dict) -> dict:
        try:
            msg = data["choices"][0]["message"]
            if not isinstance(msg, dict):
                raise TypeError("message is not an object")
            return msg
        except (KeyError, IndexError, TypeError) as e:
            raise ModelUnavailable(
                f"{self.base_url} answered without choices[0].message", "is it an OpenAI-compatible server?"
            ) from e

    def generate(
        self,
        messages: list[Message],
        images: list | None = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> str:
        data = self._post("/chat/completions", self._body(messages, images, max_new_tokens, temperature))
        return (self._message(data).get("content") or "").strip()

    def chat_tools(self, messages: list[dict], tools: list[dict], *, max_new_tokens: int = 256,
                   temperature: float = 0.0) -> dict:
        """One turn with OpenAI ``tools``: the assistant message (``content``, ``tool_calls``).
        ``messages`` are OpenAI wire messages already (tool results as ``role: tool``)."""
        body = {"model": self.spec.model, "messages": messages, "tools": tools, "tool_choice": "auto",
                "max_tokens": int(max_new_tokens), "temperature": float(temperature), "stream": False,
                **self.extra_body}
        return self._message(self._post("/chat/completions", body))

    def _send(self, url: str, body: dict):
        import httpx

        self.attempts += 1
        try:
            r = self.client.post(url, json=body)
        except httpx.TransportError as e:  # connect, read, timeout, protocol errors
            log.info("POST %s failed (%s: %s), attempt %d", url, type(e).__name__, e, self.attempts)
            raise _Retryable(f"{type(e).__name__}: {e}") from e
        if r.status_code in RETRY_STATUS:
            log.info("POST %s -> %s, attempt %d", url, r.status_code, self.attempts)
            raise _Retryable(f"HTTP {r.status_code}: {r.text[:200]}")
        return r

    def _post(self, path: str, body: dict) -> dict:
        url = self.base_url + path
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_exponential(multiplier=self.backoff_s, max=8.0),
            retry=retry_if_exception_type(_Retryable),
            reraise=False,
        )
        try:
            r = retrying(self._send, url, body)
        except RetryError as e:
            last = e.last_attempt.exception()
            raise ModelUnavailable(
                f"model server {self.base_url} unreachable after {self.max_retries + 1} attempts ({last})",
                "start the server or fix base_url in the preset",
            ) from None
        if r.status_code >= 400:
            hint = "check api_key_env" if r.status_code in (401, 403) else "check the model name and request"
            raise ModelUnavailable(f"{url} answered HTTP {r.status_code}: {r.text[:200]}", hint)
        try:
            return r.json()
        except ValueError as e:
            raise ModelUnavailable(f"{url} answered non-JSON: {r.text[:200]}") from e
