"""Chat completion chunks as server-sent events (``sse-starlette``), in OpenAI's stream format.

Progress first, one line per step as ``reasoning_content`` deltas (UIs show them as a
"thinking" block), with the raw event in ``kever_event``; then the answer, line by line; then
a ``stop`` chunk (``length`` when ``max_tokens`` cut the answer) carrying the ``kever`` object
(conversation id, label, scores, warnings) as non-streamed replies do (and a usage chunk when
asked); then ``data: [DONE]``. A label-only answer (:mod:`kever.serve.harness`) is one content
chunk. An error after the
stream started is sent as one ``data: {"error": ...}`` event before ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import AsyncIterator

from kever.errors import KeverError
from kever.serve import harness
from kever.serve import openai_errors as oe
from kever.serve.render import Progress
from kever.serve.schemas import ChatRequest

log = logging.getLogger("kever.serve")


async def chunks(rid: str, created: int, chat_req: ChatRequest, prompt: str, fut: asyncio.Future, events: asyncio.Queue,
                 deadline: float, cid: str, timeout_s: float, mode: harness.AnswerMode | None = None) -> AsyncIterator[dict]:
    mode = mode or harness.AnswerMode()

    def chunk(delta: dict, finish: str | None = None, logprobs: dict | None = None, **extra) -> dict:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        if logprobs is not None:
            choice["logprobs"] = logprobs
        body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": chat_req.model,
                "choices": [choice], **extra}
        return {"data": json.dumps(body, ensure_ascii=False)}

    progress = Progress()

    def step(ev: dict) -> dict | None:
        line = progress.line(ev)
        return None if line is None else chunk({"reasoning_content": line}, kever_event=ev)

    yield chunk({"role": "assistant", "content": ""})
    waiter = asyncio.ensure_future(asyncio.shield(fut))
    try:
        while True:
            getter = asyncio.ensure_future(events.get())
            remaining = deadline - time.monotonic()
            done, _ = await asyncio.wait({getter, waiter}, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                out = step(getter.result())
                if out is not None:
                    yield out
                continue
            getter.cancel()
            if waiter in done:
                while not events.empty():
                    out = step(events.get_nowait())
                    if out is not None:
                        yield out
                break
            raise oe.timed_out(timeout_s)
        try:
            reply, j = waiter.result()
        except (oe.APIError, KeverError):
            raise
        except Exception:
            log.exception("chat turn failed")
            raise oe.internal() from None
        text, finish = harness.content(mode, reply, j)
        if mode.bare:
            yield chunk({"content": text}, logprobs=harness.logprobs(mode, j))
        else:
            for line in text.splitlines(keepends=True):
                yield chunk({"content": line})
        yield chunk({}, finish, kever=harness.kever_field(cid, j))
        if chat_req.stream_options and chat_req.stream_options.include_usage:
            body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": chat_req.model,
                    "choices": [], "usage": harness.usage(prompt, text)}
            yield {"data": json.dumps(body)}
    except oe.APIError as e:
        yield {"data": json.dumps(e.body())}
    except KeverError as e:
        yield {"data": json.dumps(oe.bad_request(str(e), "invalid_input").body())}
    finally:
        if not waiter.done():
            waiter.cancel()
    yield {"data": "[DONE]"}
