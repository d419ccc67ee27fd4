"""The FastAPI app: /v1/models, /v1/chat/completions, /v1/responses, /v1/emotion, /health(z), /metrics.

Request path: ``Gate`` (ASGI: body-size cap, metrics) -> Bearer auth (a route dependency) ->
endpoint -> admission to the bounded queue (429 when full) -> image decoding and the chat
graph in worker threads, the reasoner itself one call at a time (a lock) -> reply, or
server-sent events (:mod:`kever.serve.streaming`).

Shutdown (SIGTERM/SIGINT): uvicorn stops accepting and waits up to ``graceful_timeout_s`` for
the requests in flight; then no new model call starts, the one running finishes, the store is
closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kever.errors import KeverError
from kever.images import LoadedImage
from kever.paths import home
from kever.serve import harness
from kever.serve import openai_errors as oe
from kever.serve.auth import bearer_guard
from kever.serve.config import ServeConfig
from kever.serve.conversation import Conversations
from kever.serve.gate import Gate
from kever.serve.identity import conversation_id
from kever.serve.image_input import decode_base64, decode_image, image_bytes_from_url
from kever.serve.intents import parse
from kever.serve.metrics import Metrics
from kever.serve.schemas import ChatRequest, EmotionRequest, Message, ResponsesRequest
from kever.serve.store import Store
from kever.serve.streaming import chunks

log = logging.getLogger("kever.serve")

#: model id suffix -> label set it picks.
MODEL_LABELS = {"": "mikels8", "-emotion6": "emotion6", "-sentiment": "sentiment"}


class Admission:
    """A bounded count of requests in the server (running + waiting); releases are idempotent."""

    def __init__(self, capacity: int, metrics: Metrics):
        self.capacity = capacity
        self.depth = 0
        self._lock = threading.Lock()
        self.metrics = metrics
        metrics.queue_capacity.set(capacity)

    def enter(self) -> Callable[[], None]:
        with self._lock:
            if self.depth >= self.capacity:
                raise oe.queue_full(self.depth)
            self.depth += 1
            self.metrics.queue_depth.set(self.depth)
        done = threading.Event()

        def release() -> None:
            if done.is_set():
                return
            done.set()
            with self._lock:
                self.depth -= 1
                self.metrics.queue_depth.set(self.depth)

        return release


class ModelGate:
    """The reasoner's lock, closed for good at shutdown: a call not started by then is refused."""

    def __init__(self):
        self._lock = threading.Lock()
        self.closing = threading.Event()

    def __enter__(self):
        self._lock.acquire()
        if self.closing.is_set():
            self._lock.release()
            raise oe.shutting_down()
        return self

    def __exit__(self, *exc):
        self._lock.release()


def _validation_message(errors: list[dict]) -> str:
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body",))
        loc, msg = loc[:80], str(e.get("msg", "invalid"))
        parts.append(f"{loc or 'body'}: {msg if len(msg) <= 200 else msg[:200] + '…'}")  # msgs can quote input
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "malformed request: " + "; ".join(parts) + more


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _labels_asked(messages: list[Message]) -> Any:
    """The label set the latest of ``messages`` asked for ("answer for Ekman's six"), if any."""
    asked = None
    for m in messages:
        intent = parse(m.text(), [])
        if intent.kind == "relabel":
            asked = intent.label_set
    return asked


def create_app(config: ServeConfig, reasoner: Any) -> FastAPI:
    """The app over an already-built reasoner (built once by the caller, shared by all requests)."""
    metrics = Metrics()
    admission = Admission(config.queue, metrics)
    pool = ThreadPoolExecutor(max_workers=config.queue, thread_name_prefix="kever-worker")
    model_gate = ModelGate()
    store = Store(config.db or home() / "serve" / "conversations.sqlite", config.limits)
    conversations = Conversations(store, reasoner, model_gate)
    metrics.watch_store(store.stats)
    models_map = {config.model_name + suffix + answer: labels for suffix, labels in MODEL_LABELS.items()
                  for answer in ("", harness.LABEL_SUFFIX)}
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app):
        yield
        model_gate.closing.set()  # uvicorn has waited for the requests in flight (graceful_timeout_s)
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        conversations.close()

    app = FastAPI(title="kever", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config, app.state.metrics, app.state.conversations = config, metrics, conversations
    app.add_middleware(Gate, config=config, metrics=metrics)
    api = APIRouter(dependencies=[Depends(bearer_guard(config.api_key))])

    @app.exception_handler(oe.APIError)
    async def _api_error(request: Request, exc: oe.APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return oe.bad_request(_validation_message(exc.errors())).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        msg = f"{request.method} {oe.quote(request.url.path, 80)}: {exc.detail}"
        return oe.APIError(exc.status_code, msg, "invalid_request_error", code).response()

    @app.exception_handler(KeverError)
    async def _kever(request: Request, exc: KeverError):
        msg = str(exc)  # may quote user input (labels): bounded
        return oe.bad_request(msg if len(msg) <= 500 else msg[:500] + "…", "invalid_input").response()

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return oe.internal().response()

    async def run_job(release: Callable[[], None], fn: Callable, *args, **kwargs):
        """Run ``fn`` on a worker thread; the queue slot is released when it really ends."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(pool, lambda: fn(*args, **kwargs))

        def _done(f: asyncio.Future) -> None:
            release()
            if not f.cancelled() and f.exception() is not None and not isinstance(f.exception(), (oe.APIError, KeverError)):
                log.error("worker failed: %r", f.exception())

        fut.add_done_callback(_done)
        return fut

    async def wait_job(fut: asyncio.Future, deadline: float):
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise oe.timed_out(config.timeout_s) from None

    async def load(data: bytes, source: str) -> LoadedImage:
        return await asyncio.to_thread(decode_image, data, config, source)

    def explain(image: LoadedImage, labels, rationale: bool):
        with model_gate:
            metrics.model_calls.inc()
            return reasoner.explain(image, labels=labels, rationale=rationale)

    def count_model_calls(ev: dict) -> None:
        if ev.get("node") == "judge" and ev.get("status") == "start":
            metrics.model_calls.inc()

    # ---------------------------------------------------------------- endpoints

    @app.get("/healthz")
    @app.get("/health")
    async def healthz():
        return {"status": "ok", "preset": config.preset, "models": dict(getattr(reasoner, "models", {}) or {}),
                "queue_depth": admission.depth, "queue_capacity": admission.capacity}

    @api.get("/metrics")
    async def get_metrics(format: str = "prometheus"):
        if format == "json":
            return await asyncio.to_thread(metrics.snapshot)
        if format != "prometheus":
            raise oe.bad_request("format must be 'prometheus' or 'json'", param="format")
        body, ctype = await asyncio.to_thread(metrics.prometheus)
        return Response(body, media_type=ctype)

    @api.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [
            {"id": mid, "object": "model", "created": created, "owned_by": "kever",
             "kever": {"labels": labels, "preset": config.preset,
                       "answer": "label" if mid.endswith(harness.LABEL_SUFFIX) else "prose"}}
            for mid, labels in models_map.items()]}

    @api.get("/v1/models/{model_id}")
    async def get_model(model_id: str):
        if model_id not in models_map:
            raise oe.APIError(404, f"model {oe.quote(model_id)} does not exist; see GET /v1/models", "invalid_request_error",
                              "model_not_found")
        return {"id": model_id, "object": "model", "created": created, "owned_by": "kever"}

    @api.post("/v1/emotion")
    async def emotion(request: Request):
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("multipart/form-data"):
            try:
                form = await request.form()
            except Exception as e:
                raise oe.bad_request(f"malformed multipart body ({type(e).__name__})") from None
            upload = form.get("image") or form.get("file")
            if upload is None or isinstance(upload, str):
                raise oe.bad_request("multipart body needs a file field 'image'", param="image")
            data, source = await upload.read(), upload.filename or "upload"
            labels = form.get("labels") or None
            rationale = str(form.get("rationale", "true")).lower() not in ("0", "false", "no")
        elif _is_json(ctype):
            try:
                body = EmotionRequest.model_validate_json(await request.body())
            except ValidationError as e:
                raise oe.bad_request(_validation_message(e.errors())) from None
            if body.image.startswith(("data:", "http://", "https://")):
                data = await image_bytes_from_url(body.image, config)
            else:
                data = decode_base64(body.image)
            source, labels, rationale = "upload", body.labels, body.rationale
        else:
            raise oe.unsupported_media_type("send multipart/form-data (field 'image') or application/json ({\"image\": base64})")
        if isinstance(labels, str) and "," in labels:
            labels = [x.strip() for x in labels.split(",") if x.strip()]
        deadline = time.monotonic() + config.timeout_s
        release = admission.enter()
        try:
            image = await load(data, source)
            fut = await run_job(release, explain, image, labels, rationale)
        except BaseException:
            release()
            raise
        j = await wait_job(fut, deadline)
        return JSONResponse(j.model_dump(mode="json"))

    async def start_turn(request: Request, chat_req: ChatRequest, mode: harness.AnswerMode):
        """Admit and start one chat turn; (future of (reply, judgment), conversation id, user text, events, deadline)."""
        if chat_req.model not in models_map:
            raise oe.APIError(404, f"model {oe.quote(chat_req.model)} does not exist; use one of {sorted(models_map)}",
                              "invalid_request_error", "model_not_found", param="model")
        users = [m for m in chat_req.messages if m.role == "user"]
        if not users:
            raise oe.bad_request("messages must contain at least one 'user' message", param="messages")
        last = users[-1]
        if len(last.image_urls()) > 1:
            raise oe.bad_request("one image per message, please (kever judges one image at a time)", param="messages")
        cid, _named = conversation_id(request, config.conversation_headers)
        text = last.text()
        conv = await asyncio.to_thread(conversations.load, cid)
        conversations.check(text, conv)  # refused before any work (checked again when the turn runs)
        deadline = time.monotonic() + config.timeout_s
        release = admission.enter()
        events: asyncio.Queue = asyncio.Queue()
        try:
            url, replayed, replay_labels = (last.image_urls() or [None])[0], False, None
            if url is None and conv.judgment is None:
                # a history sent to a conversation holding no judgment (a client that keeps the
                # history itself): judge its latest image, over the label set the history asked for
                at = next((i for i in range(len(users) - 2, -1, -1) if users[i].image_urls()), None)
                if at is not None:
                    url, replayed = users[at].image_urls()[-1], True
                    replay_labels = _labels_asked(users[at:-1])
            if url is None:
                conversations.refuse_evicted(conv)
                if mode.bare and conv.judgment is None:
                    harness.bare_answer(mode, None)  # 400: a label-only answer needs an image
            image = await load(await image_bytes_from_url(url, config), "image_url") if url else None
            loop = asyncio.get_running_loop()

            def on_event(ev: dict) -> None:
                count_model_calls(ev)
                loop.call_soon_threadsafe(events.put_nowait, ev)

            fut = await run_job(release, conversations.turn, cid, text, image, model=chat_req.model,
                                default_labels=models_map[chat_req.model], replay_labels=replay_labels,
                                replayed=replayed, rationale=not mode.bare,
                                on_event=on_event if chat_req.stream else count_model_calls)
        except BaseException:
            release()
            raise
        return fut, cid, text, events, deadline

    def headers_for(cid: str, mode: harness.AnswerMode) -> dict:
        h = {"X-Conversation-Id": cid}
        if mode.ignored:
            h["X-Kever-Ignored-Params"] = ",".join(mode.ignored)
        return h

    def parse_json(raw: bytes, model: type):
        try:
            req = model.model_validate_json(raw)
        except ValidationError as e:
            raise oe.bad_request(_validation_message(e.errors())) from None
        return req, json.loads(raw)

    @api.post("/v1/chat/completions")
    async def chat(request: Request):
        if not _is_json(request.headers.get("content-type", "")):
            raise oe.unsupported_media_type("send the request as JSON, with 'Content-Type: application/json'")
        chat_req, body = parse_json(await request.body(), ChatRequest)
        mode = harness.answer_mode(body, chat_req.model)
        fut, cid, text, events, deadline = await start_turn(request, chat_req, mode)
        rid = "chatcmpl-" + uuid.uuid4().hex[:24]
        now = int(time.time())
        headers = headers_for(cid, mode)
        if not chat_req.stream:
            reply, j = await wait_job(fut, deadline)
            return JSONResponse(_completion(rid, now, chat_req.model, reply, text, cid, j, mode), headers=headers)
        return EventSourceResponse(chunks(rid, now, chat_req, text, fut, events, deadline, cid, config.timeout_s, mode),
                                   headers={**headers, "Cache-Control": "no-cache"}, sep="\n",
                                   shutdown_grace_period=config.graceful_timeout_s)

    @api.post("/v1/responses")
    async def responses(request: Request):
        if not _is_json(request.headers.get("content-type", "")):
            raise oe.unsupported_media_type("send the request as JSON, with 'Content-Type: application/json'")
        resp_req, body = parse_json(await request.body(), ResponsesRequest)
        chat_req, chat_body = resp_req.as_chat(body)
        mode = harness.answer_mode(chat_body, chat_req.model)
        fut, cid, text, _events, deadline = await start_turn(request, chat_req, mode)
        reply, j = await wait_job(fut, deadline)
        return JSONResponse(_response(resp_req, reply, text, cid, j, mode), headers=headers_for(cid, mode))

    app.include_router(api)
    if config.index is not None:  # kever serve --index: search API and gallery (kever.serve.search_routes)
        from kever.serve.search_routes import search_router

        app.include_router(search_router(config, reasoner, bearer_guard(config.api_key)))
    return app


def _completion(rid: str, created: int, model: str, reply: str, prompt: str, cid: str, j, mode: harness.AnswerMode) -> dict:
    text, finish = harness.content(mode, reply, j)
    return {
        "id": rid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                     "logprobs": harness.logprobs(mode, j)}],
        "usage": harness.usage(prompt, text),
        "kever": harness.kever_field(cid, j),
    }


def _response(req, reply: str, prompt: str, cid: str, j, mode: harness.AnswerMode) -> dict:
    """An OpenAI Responses API object holding one output message."""
    text, finish = harness.content(mode, reply, j)
    u = harness.usage(prompt, text)
    return {
        "id": "resp_" + uuid.uuid4().hex[:24], "object": "response", "created_at": int(time.time()), "model": req.model,
        "status": "completed" if finish == "stop" else "incomplete",
        "incomplete_details": None if finish == "stop" else {"reason": "max_output_tokens"},
        "output": [{"type": "message", "id": "msg_" + uuid.uuid4().hex[:24], "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": [],
                                 **({"logprobs": harness.logprobs(mode, j)["content"]} if mode.logprobs and j else {})}]}],
        "output_text": text, "parallel_tool_calls": False, "tool_choice": "none", "tools": [], "error": None,
        "usage": {"input_tokens": u["prompt_tokens"], "output_tokens": u["completion_tokens"], "total_tokens": u["total_tokens"],
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
        "kever": harness.kever_field(cid, j),
    }
