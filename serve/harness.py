"""What research harnesses (inspect_ai, lm-eval, a plain ``openai`` client) need from a chat
request: how the answer is shaped, which request parameters are honoured, refused or ignored.

- **Label-only answers.** A model id ending in ``:label`` (``kever-emotion6:label``) answers with
  the label alone (one word, so an exact-match scorer reads it); ``response_format`` of type
  ``json_schema`` or ``json_object`` answers with the JSON ``{"label": ..., "scores": {...}}``.
- **Scores where clients look.** With ``logprobs: true`` (label-only answers only) the choice
  carries ``logprobs.content``: one entry whose token is the label and whose ``top_logprobs``
  are the natural logs of the label scores, best first (``top_logprobs`` of them, all by default).
- **Tokens.** kever writes its answers without a tokenizer; a token here is a word or a single
  punctuation mark (``\\w+|[^\\w\\s]``): ``usage`` counts these, and ``max_tokens`` /
  ``max_completion_tokens`` cut the answer after that many (``finish_reason: "length"``).
- **Refused (400)**, because kever cannot do them and silently ignoring them would mislead:
  ``tools``/``functions``/``tool_choice`` other than ``none``, ``n`` > 1, ``logit_bias``,
  ``audio``/``modalities`` other than text, ``prediction``, other ``response_format`` types,
  ``logprobs`` on a prose answer.
- **Accepted and without effect** (kever's judgment is deterministic; named in the response
  header ``X-Kever-Ignored-Params``): ``temperature``, ``top_p``, ``seed``, ``stop``,
  ``presence_penalty``, ``frequency_penalty`` and the like.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel

from kever.serve import openai_errors as oe

#: a model id ending in this answers with the label alone
LABEL_SUFFIX = ":label"
TOKEN = re.compile(r"\w+|[^\w\s]")
#: parameters accepted without effect (reported back in X-Kever-Ignored-Params)
IGNORED = ("temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "top_k", "min_p",
           "repetition_penalty", "reasoning_effort", "service_tier", "store", "metadata", "parallel_tool_calls",
           "truncation", "reasoning", "include", "instructions")
#: keys a json_schema may require of the answer
ANSWER_KEYS = {"label", "scores"}


class AnswerMode(BaseModel):
    label_only: bool = False  # the label alone (model id :label)
    json_answer: bool = False  # {"label", "scores"} (response_format)
    max_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    ignored: list[str] = []

    @property
    def bare(self) -> bool:
        """No prose: the label or the JSON (no rationale needs writing)."""
        return self.label_only or self.json_answer


def count_tokens(text: str) -> int:
    return len(TOKEN.findall(text))


def truncate(text: str, n: int | None) -> tuple[str, bool]:
    """``text`` cut after its ``n``-th token; (text, cut?)."""
    if n is None:
        return text, False
    for i, m in enumerate(TOKEN.finditer(text)):
        if i == n:
            return text[: m.start()].rstrip(), True
    return text, False


def usage(prompt: str, reply: str) -> dict:
    p, c = count_tokens(prompt), count_tokens(reply)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _refuse(param: str, why: str) -> oe.APIError:
    return oe.bad_request(f"{param} is not supported by kever: {why}", "unsupported_parameter", param)


def answer_mode(body: dict[str, Any], model_id: str) -> AnswerMode:
    """Read the parameters of a chat request (its JSON ``body``); 400 for what kever cannot do."""
    if body.get("tools") or body.get("functions"):
        raise _refuse("tools", "it calls no tools; send the image and question without tools")
    choice = body.get("tool_choice", body.get("function_call"))
    if choice not in (None, "none", "auto"):
        raise _refuse("tool_choice", "it calls no tools")
    n = body.get("n")
    if n is not None and n != 1:
        raise _refuse("n", "its judgment is deterministic, so every choice would be the same; send n=1 or leave it out")
    if body.get("logit_bias"):
        raise _refuse("logit_bias", "it does not sample tokens")
    if body.get("audio") or [m for m in (body.get("modalities") or []) if m != "text"]:
        raise _refuse("modalities", "it answers in text only")
    if body.get("prediction"):
        raise _refuse("prediction", "it does not sample tokens")
    mode = AnswerMode(label_only=model_id.endswith(LABEL_SUFFIX))
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind in ("json_object", "json_schema"):
            mode.json_answer = True
            schema = ((fmt.get("json_schema") or {}).get("schema") or {}) if kind == "json_schema" else {}
            required = set(schema.get("required") or []) if isinstance(schema, dict) else set()
            if required - ANSWER_KEYS:
                raise _refuse("response_format", f"its JSON answer has the keys {sorted(ANSWER_KEYS)}; the schema "
                              f"requires {oe.quote(sorted(required - ANSWER_KEYS), 80)}")
        elif kind != "text":
            raise _refuse("response_format", f"type {oe.quote(kind)}; use text, json_object or json_schema")
    for name in ("max_completion_tokens", "max_tokens"):
        v = body.get(name)
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise oe.bad_request(f"{name} must be a whole number of at least 1, got {oe.quote(v)}", "invalid_request", name)
        mode.max_tokens = v if mode.max_tokens is None else min(mode.max_tokens, v)
    lp, top = body.get("logprobs"), body.get("top_logprobs")
    if lp not in (None, False, True):
        raise oe.bad_request("logprobs must be true or false", "invalid_request", "logprobs")
    if top is not None and (not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20):
        raise oe.bad_request("top_logprobs must be a whole number from 0 to 20", "invalid_request", "top_logprobs")
    if lp and not mode.bare:
        raise _refuse("logprobs", "a prose answer has no token probabilities; ask for the label alone (model id "
                      f"'{model_id}{LABEL_SUFFIX}' or response_format json_schema) and get the label scores as logprobs")
    mode.logprobs, mode.top_logprobs = bool(lp), top
    mode.ignored = [k for k in IGNORED if body.get(k) is not None]
    return mode


def bare_answer(mode: AnswerMode, j) -> str:
    """The label-only answer: the label, or ``{"label", "scores"}`` as JSON."""
    if j is None:
        raise oe.bad_request("a label-only answer needs an image: send one in the message "
                             "(or continue a conversation that has one, with X-Conversation-Id)", "image_required", "messages")
    if mode.json_answer:
        return json.dumps({"label": j.label, "scores": j.scores}, ensure_ascii=False)
    return j.label


def content(mode: AnswerMode, reply: str, j) -> tuple[str, str]:
    """(what the client reads, finish_reason)."""
    text = bare_answer(mode, j) if mode.bare else reply
    text, cut = truncate(text, mode.max_tokens)
    return text, "length" if cut else "stop"


def logprobs(mode: AnswerMode, j) -> dict | None:
    """OpenAI's ``logprobs`` object: one entry, the label, with the labels' log scores."""
    if not mode.logprobs or j is None:
        return None

    def entry(label: str, p: float) -> dict:
        return {"token": label, "logprob": math.log(max(p, 1e-300)), "bytes": list(label.encode())}

    ranked = sorted(j.scores.items(), key=lambda kv: -kv[1])
    top = len(ranked) if mode.top_logprobs is None else mode.top_logprobs
    return {"content": [{**entry(j.label, j.scores[j.label]), "top_logprobs": [entry(k, p) for k, p in ranked[:top]]}],
            "refusal": None}


def kever_field(cid: str, j) -> dict:
    """The ``kever`` object of every reply (and of the last streamed chunk)."""
    return {"conversation_id": cid, "label": j.label if j else None, "scores": j.scores if j else None,
            "warnings": list(j.warnings) if j else []}
