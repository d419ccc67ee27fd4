"""The FastAPI app: /v1/models, /v1/chat/completions, /v1/emotion, /healthz, /metrics.

Request path: ``Gate`` (ASGI: Bearer auth, body-size cap, metrics) -> endpoint -> admission to
the bounded queue (429 when full) -> image decoding and the chat graph in worker threads, the
reasoner itself one call at a time (a lock) -> reply, or SSE chunks: progress as
``reasoning_content`` deltas, then the answer, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kever.errors import KeverError
from kever.images import LoadedImage
from kever.paths import home
from kever.serve import openai_errors as oe
from kever.serve.config import ServeConfig
from kever.serve.conversation import Conversations
from kever.serve.image_input import decode_base64, decode_image, image_bytes_from_url
from kever.serve.metrics import Metrics
from kever.serve.schemas import ChatRequest, EmotionRequest

log = logging.getLogger("kever.serve")

#: model id -> label set used for a new image.
MODEL_LABELS = {"": "mikels8", "-emotion6": "emotion6", "-sentiment": "sentiment"}
_CID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


class Admission:
    """A bounded count of requests in the server (running + waiting); releases are idempotent."""

    def __init__(self, capacity: int, metrics: Metrics):
        self.capacity = capacity
        self.depth = 0
        self._lock = threading.Lock()
        self.metrics = metrics
        metrics.queue_capacity = capacity

    def enter(self) -> Callable[[], None]:
        with self._lock:
            if self.depth >= self.capacity:
                raise oe.queue_full(self.depth)
            self.depth += 1
            self.metrics.queue_depth = self.depth
        done = threading.Event()

        def release() -> None:
            if done.is_set():
                return
            done.set()
            with self._lock:
                self.depth -= 1
                self.metrics.queue_depth = self.depth

        return release


class Gate:
    """ASGI middleware: auth on everything but /healthz, body-size cap, request metrics."""

    def __init__(self, app, config: ServeConfig, metrics: Metrics):
        self.app, self.config, self.metrics = app, config, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        path = scope.get("path", "")
        status = {"code": 500}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            err = self._check(scope)
            if err is not None:
                return await err.response()(scope, receive, send_wrapped)
            limit, seen = self.config.max_body_bytes, 0

            async def receive_capped():
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise oe.too_large(f"request body is above the limit of {limit:,} bytes")
                return message

            await self.app(scope, receive_capped, send_wrapped)
        finally:
            known = path if path in ("/healthz", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/emotion") else "other"
            self.metrics.observe(known, status["code"], time.perf_counter() - t0)

    def _check(self, scope) -> oe.APIError | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.config.api_key and scope.get("path") != "/healthz":
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), self.config.api_key.encode()):
                return oe.unauthorized()
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return oe.bad_request("invalid Content-Length header")
            if int(length) > self.config.max_body_bytes:
                return oe.too_large(f"request body is {int(length):,} bytes, above the limit of {self.config.max_body_bytes:,}")
        return None


def _validation_message(errors: list[dict]) -> str:
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body",))
        parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "malformed request: " + "; ".join(parts) + more


def conversation_id(request: Request, chat: ChatRequest) -> str:
    header = request.headers.get("x-conversation-id")
    if header:
        if not _CID.match(header):
            raise oe.bad_request("X-Conversation-Id must be 1-128 characters of letters, digits and ._:@-", "invalid_conversation_id")
        return "h:" + header
    if chat.user:
        return "u:" + hashlib.sha256(chat.user.encode()).hexdigest()[:32]
    first = next((m for m in chat.messages if m.role == "user"), chat.messages[0])
    h = hashlib.sha256(first.text().encode())
    for url in first.image_urls():
        h.update(b"\0" + url.encode())
    return "m:" + h.hexdigest()[:32]


def create_app(config: ServeConfig, reasoner: Any) -> FastAPI:
    """The app over an already-built reasoner (built once by the caller, shared by all requests)."""
    metrics = Metrics()
    admission = Admission(config.queue, metrics)
    pool = ThreadPoolExecutor(max_workers=config.queue, thread_name_prefix="kever-worker")
    model_lock = threading.Lock()
    db = config.db or home() / "serve" / "conversations.sqlite"
    conversations = Conversations(db, reasoner, model_lock)
    models_map = {config.model_name + suffix: labels for suffix, labels in MODEL_LABELS.items()}
    created = int(time.time())

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        pool.shutdown(wait=False, cancel_futures=True)
        conversations.close()

    app = FastAPI(title="kever", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config, app.state.metrics, app.state.conversations = config, metrics, conversations
    app.add_middleware(Gate, config=config, metrics=metrics)

    @app.exception_handler(oe.APIError)
    async def _api_error(request: Request, exc: oe.APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return oe.bad_request(_validation_message(exc.errors())).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        return oe.APIError(exc.status_code, msg, "invalid_request_error", code).response()

    @app.exception_handler(KeverError)
    async def _kever(request: Request, exc: KeverError):
        return oe.bad_request(str(exc), "invalid_input").response()

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
        with model_lock:
            metrics.model_calls += 1
            return reasoner.explain(image, labels=labels, rationale=rationale)

    # ---------------------------------------------------------------- endpoints

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "preset": config.preset, "models": dict(getattr(reasoner, "models", {}) or {}),
                "queue_depth": admission.depth, "queue_capacity": admission.capacity}

    @app.get("/metrics")
    async def get_metrics(format: str = "prometheus"):
        if format == "json":
            return metrics.snapshot()
        if format != "prometheus":
            raise oe.bad_request("format must be 'prometheus' or 'json'", param="format")
        return PlainTextResponse(metrics.prometheus(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [
            {"id": mid, "object": "model", "created": created, "owned_by": "kever",
             "kever": {"labels": labels, "preset": config.preset}} for mid, labels in models_map.items()]}

    @app.get("/v1/models/{model_id}")
    async def get_model(model_id: str):
        if model_id not in models_map:
            raise oe.APIError(404, f"model '{model_id}' does not exist; see GET /v1/models", "invalid_request_error", "model_not_found")
        return {"id": model_id, "object": "model", "created": created, "owned_by": "kever"}

    @app.post("/v1/emotion")
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
        elif ctype.startswith("application/json"):
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
            raise oe.APIError(415, "send multipart/form-data (field 'image') or application/json ({\"image\": base64})",
                              "invalid_request_error", "unsupported_media_type")
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

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        raw = await request.body()
        try:
            chat_req = ChatRequest.model_validate_json(raw)
        except ValidationError as e:
            raise oe.bad_request(_validation_message(e.errors())) from None
        if chat_req.model not in models_map:
            raise oe.APIError(404, f"model '{chat_req.model}' does not exist; use one of {sorted(models_map)}",
                              "invalid_request_error", "model_not_found", param="model")
        users = [m for m in chat_req.messages if m.role == "user"]
        if not users:
            raise oe.bad_request("messages must contain at least one 'user' message", param="messages")
        last = users[-1]
        cid = conversation_id(request, chat_req)
        if len(last.image_urls()) > 1:
            raise oe.bad_request("one image per message, please (kever judges one image at a time)", param="messages")
        deadline = time.monotonic() + config.timeout_s
        release = admission.enter()
        try:
            url, replayed = (last.image_urls() or [None])[0], False
            if url is None:
                has = await asyncio.to_thread(conversations.has_judgment, cid)
                if not has:  # e.g. a history replayed to a server that never saw it: judge its latest image
                    url = next((u for m in reversed(users[:-1]) for u in reversed(m.image_urls())), None)
                    replayed = url is not None
            image = await load(await image_bytes_from_url(url, config), "image_url") if url else None
            events: asyncio.Queue = asyncio.Queue()
            loop = asyncio.get_running_loop()

            def on_event(ev: dict) -> None:
                if ev.get("node") == "judge" and ev.get("status") == "start":
                    metrics.model_calls += 1
                loop.call_soon_threadsafe(events.put_nowait, ev)

            fut = await run_job(release, conversations.turn, cid, last.text(), image,
                                default_labels=models_map[chat_req.model], replayed=replayed,
                                on_event=on_event if chat_req.stream else _count_model_calls(metrics))
        except BaseException:
            release()
            raise
        rid = "chatcmpl-" + uuid.uuid4().hex[:24]
        now = int(time.time())
        headers = {"X-Conversation-Id": cid}
        if not chat_req.stream:
            reply, j = await wait_job(fut, deadline)
            return JSONResponse(_completion(rid, now, chat_req.model, reply, last.text(), cid, j), headers=headers)
        return StreamingResponse(_stream(rid, now, chat_req, fut, events, deadline, cid, config), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


def _count_model_calls(metrics: Metrics) -> Callable[[dict], None]:
    def on_event(ev: dict) -> None:
        if ev.get("node") == "judge" and ev.get("status") == "start":
            metrics.model_calls += 1
    return on_event


def _usage(prompt: str, reply: str) -> dict:
    p, c = len(prompt.split()), len(reply.split())
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _completion(rid: str, created: int, model: str, reply: str, prompt: str, cid: str, j) -> dict:
    return {
        "id": rid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": _usage(prompt, reply),
        "kever": {"conversation_id": cid, "label": j.label if j else None, "scores": j.scores if j else None},
    }


def _progress_text(ev: dict) -> str:
    node, status = ev.get("node", "?"), ev.get("status", "end")
    if status == "start":
        return f"{node} …\n"
    secs = ev.get("seconds")
    return f"{node} ✓" + (f" ({secs:.2f} s)" if isinstance(secs, (int, float)) else "") + "\n"


async def _stream(rid: str, created: int, chat_req: ChatRequest, fut: asyncio.Future, events: asyncio.Queue,
                  deadline: float, cid: str, config: ServeConfig):
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": chat_req.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    waiter = asyncio.ensure_future(asyncio.shield(fut))
    try:
        while True:
            getter = asyncio.ensure_future(events.get())
            remaining = deadline - time.monotonic()
            done, _ = await asyncio.wait({getter, waiter}, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                ev = getter.result()
                yield chunk({"reasoning_content": _progress_text(ev)}, kever_event=ev)
                continue
            getter.cancel()
            if waiter in done:
                while not events.empty():
                    ev = events.get_nowait()
                    yield chunk({"reasoning_content": _progress_text(ev)}, kever_event=ev)
                break
            raise oe.timed_out(config.timeout_s)
        try:
            reply, j = waiter.result()
        except (oe.APIError, KeverError):
            raise
        except Exception:
            log.exception("chat turn failed")
            raise oe.internal() from None
        for line in reply.splitlines(keepends=True):
            yield chunk({"content": line})
        extra = {"kever": {"conversation_id": cid, "label": j.label if j else None}}
        yield chunk({}, "stop", **extra)
        if chat_req.stream_options and chat_req.stream_options.include_usage:
            body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": chat_req.model,
                    "choices": [], "usage": _usage(chat_req.messages[-1].text(), reply)}
            yield f"data: {json.dumps(body)}\n\n"
    except oe.APIError as e:
        yield f"data: {json.dumps(e.body())}\n\n"
    except KeverError as e:
        yield f"data: {json.dumps(oe.bad_request(str(e), 'invalid_input').body())}\n\n"
    finally:
        if not waiter.done():
            waiter.cancel()
    yield "data: [DONE]\n\n"
