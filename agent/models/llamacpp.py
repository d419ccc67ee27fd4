"""A GGUF model run in-process by llama.cpp's server (``xllamacpp``) as a TextLM, with a
structured call constrained by a JSON-schema grammar.

    spec = ModelSpec(backend="llamacpp", model="qwen2.5-coder-1.5b-instruct-q4_k_m", options={"n_ctx": 4096})
    lm = LlamaCppLM(spec)                          # loads once (~2 s), verifies the file first
    lm.generate(messages, max_new_tokens=80)       # -> str
    lm.generate_json(messages, schema, max_new_tokens=60)   # -> str that parses and fits the schema
    lm.last                                        # tokens and timings of the last call

``model`` is an id of ``gguf_models.yaml`` (the file in kever's cache, checked against its
sha256; missing or corrupt is a one-line ModelUnavailable that says how to pull it) or a path
to a ``.gguf`` file (used as is).

Threads: the cores this process may run on (``os.sched_getaffinity``), or
``options.n_threads`` / ``KEVER_LLM_THREADS``; llama.cpp's default thread count was 100x
slower on a shared 2-core machine. One slot (``n_parallel = 1``) with ``cache_prompt``:
a request that shares a prefix with the previous one (the same system prompt, or the same
conversation plus a follow-up) reuses its KV cache and only processes the new tokens.
Calls are serialised by a lock (one slot).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kever.agent.models.base import Message, text_of
from kever.agent.models.spec import ModelSpec, require
from kever.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)


class CallStats(BaseModel):
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    prompt_ms: float = 0.0
    completion_ms: float = 0.0
    finish_reason: str | None = None

    @property
    def tokens_per_s(self) -> float | None:
        return self.completion_tokens / (self.completion_ms / 1000) if self.completion_ms > 0 else None


def cores() -> int:
    env = os.environ.get("KEVER_LLM_THREADS")
    try:
        return max(1, int(env) if env else len(os.sched_getaffinity(0)))
    except (AttributeError, ValueError):
        return max(1, os.cpu_count() or 1)


def model_file(spec: ModelSpec) -> Path:
    """The GGUF file a ``llamacpp`` spec names, verified when it is a registry model."""
    require(spec, "model")
    name = spec.model
    if name.endswith(".gguf") or "/" in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"GGUF file not found: {path}", "fix 'model' in the preset")
        return path
    from kever.agent.models.gguf_parts import lookup, verified_path

    return verified_path(lookup(name))


class LlamaCppLM:
    """Options (``spec.options``): ``n_ctx`` (4096), ``n_threads`` (the cores), ``n_batch``
    (512), ``cache_prompt`` (true), ``chat_template_kwargs`` (merged into each request)."""

    def __init__(self, spec: ModelSpec):
        try:
            import xllamacpp
        except ImportError as e:
            from kever.errors import missing_package

            raise missing_package("xllamacpp", "llm") from e
        self.spec = spec
        self.path = model_file(spec)
        self.model_id = spec.label()
        opts = dict(spec.options)
        self.threads = int(opts.pop("n_threads", 0) or cores())
        self.n_ctx = int(opts.pop("n_ctx", 4096))
        self.cache_prompt = bool(opts.pop("cache_prompt", True))
        n_batch = int(opts.pop("n_batch", 512))
        cache_ram_mib = int(opts.pop("cache_ram_mib", 256))
        verbosity = int(opts.pop("log_verbosity", 0))
        self.extra = dict(opts.pop("extra_body", {}))
        if opts:
            raise ConfigError(f"{self.model_id}: unknown llamacpp option(s) {sorted(opts)}",
                              "known: n_ctx, n_threads, n_batch, cache_prompt, cache_ram_mib, log_verbosity, extra_body")
        p = xllamacpp.CommonParams()
        p.model.path = str(self.path)
        p.n_ctx = self.n_ctx
        p.n_batch = n_batch
        p.n_parallel = 1
        p.cpuparams.n_threads = self.threads
        p.cpuparams_batch.n_threads = self.threads
        p.cache_prompt = self.cache_prompt
        p.cache_ram_mib = cache_ram_mib  # host-RAM prompt cache: alternating prompts (agent, rationale) keep their KV
        p.verbosity = verbosity  # llama.cpp's per-request log lines stay out of kever's output
        p.warmup = False
        p.n_gpu_layers = 0
        try:
            self.server = xllamacpp.Server(p)
        except Exception as e:  # noqa: BLE001 - llama.cpp reports load failures as RuntimeError
            raise ModelUnavailable(f"llama.cpp could not load {self.path}: {e}",
                                   "pull it again: kever models pull --preset offline-llm") from e
        self._lock = threading.Lock()
        self._llg: bool | None = None
        self.last = CallStats()
        self.total = CallStats()  # summed over all calls (benchmarks read differences)
        self.calls = 0

    # -- the OpenAI-shaped call -------------------------------------------------------------
    def chat(self, body: dict) -> dict:
        """One chat completion (an OpenAI-shaped request and answer)."""
        body = {"cache_prompt": self.cache_prompt, "stream": False, **self.extra, **body}
        with self._lock:
            out = self.server.handle_chat_completions(body)
        if isinstance(out, str):
            out = json.loads(out)
        if not isinstance(out, dict) or "choices" not in out:
            err = out.get("error", out) if isinstance(out, dict) else out
            msg = err.get("message", err) if isinstance(err, dict) else err
            raise ModelUnavailable(f"{self.model_id}: llama.cpp answered an error: {str(msg)[:200]}")
        self.calls += 1
        self.last = _stats(out)
        for k in ("prompt_tokens", "cached_tokens", "completion_tokens", "prompt_ms", "completion_ms"):
            setattr(self.total, k, getattr(self.total, k) + getattr(self.last, k))
        return out

    @staticmethod
    def _messages(messages: list[Message]) -> list[dict]:
        return [{"role": m["role"], "content": text_of(m.get("content", ""))} for m in messages]

    def _content(self, out: dict) -> str:
        try:
            return (out["choices"][0]["message"].get("content") or "").strip()
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise ModelUnavailable(f"{self.model_id}: llama.cpp answered without a message") from e

    def generate(self, messages: list[Message], images: list | None = None, *, max_new_tokens: int = 256,
                 temperature: float = 0.0, **kw: Any) -> str:
        if images:
            raise ConfigError(f"{self.model_id} is a text model and cannot take images", "use a VLM spec for image inputs")
        body = {"messages": self._messages(messages), "max_tokens": int(max_new_tokens),
                "temperature": float(temperature), **kw}
        return self._content(self.chat(body))

    def generate_json(self, messages: list[Message], schema: dict, *, name: str = "reply",
                      max_new_tokens: int = 128, temperature: float = 0.0) -> str:
        """A reply constrained by the JSON schema ``schema``. It parses as JSON unless the
        token limit cut it short (``self.last.finish_reason == "length"``).

        Where llama.cpp was built with LLGuidance (the prebuilt wheels are), the schema goes
        in as an LLGuidance JSON grammar with fixed separators: ``response_format`` allows
        free whitespace, and the model then pretty-prints: two calls took 50 tokens pretty,
        25 compact (Qwen2.5 tokenizer), on a CPU that writes 1-10 tokens/s."""
        if self._llguidance:
            compact = {"x-guidance": {"whitespace_flexible": False, "key_separator": ":", "item_separator": ","}, **schema}
            kw = {"grammar": "%llguidance {}\nstart: %json " + json.dumps(compact)}
        else:
            kw = {"response_format": {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}}
        return self.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature, **kw)

    @property
    def _llguidance(self) -> bool:
        if self._llg is None:
            import xllamacpp

            self._llg = xllamacpp.json_schema_to_grammar(json.dumps({"type": "object"})).startswith("%llguidance")
        return self._llg


def _stats(out: dict) -> CallStats:
    usage = out.get("usage") or {}
    t = out.get("timings") or {}
    details = usage.get("prompt_tokens_details") or {}
    try:
        finish = out["choices"][0].get("finish_reason")
    except (KeyError, IndexError, AttributeError):
        finish = None
    return CallStats(
        prompt_tokens=int(usage.get("prompt_tokens") or t.get("prompt_n") or 0),
        cached_tokens=int(details.get("cached_tokens") or t.get("cache_n") or 0),
        completion_tokens=int(usage.get("completion_tokens") or t.get("predicted_n") or 0),
        prompt_ms=float(t.get("prompt_ms") or 0.0),
        completion_ms=float(t.get("predicted_ms") or 0.0),
        finish_reason=finish,
    )
