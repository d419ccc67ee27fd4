"""A tiny OpenAI-compatible chat server for tests and demos (FastAPI + uvicorn in a thread).

    with FakeOpenAIServer(["first answer", (500, "boom"), "second"]) as srv:
        spec = ModelSpec(backend="openai", base_url=srv.base_url, model="fake")
        ...
        srv.requests   # every request body received; srv.images: decoded PIL images

``script`` items are a reply text, a dict ``{"content": ..., "tool_calls": [...]}`` (an
assistant message with OpenAI tool calls; ``tool_calls`` items may be given as
``{"name": ..., "arguments": <str or dict>}`` and are wrapped in the wire form), or
``(status, text)`` to answer with an HTTP error; when the script runs out ``default`` is
returned (or ``respond(body) -> str | dict`` decides every reply).
Image parts must be ``data:image/...;base64,`` URLs that decode to an image, else 400.
Binds 127.0.0.1 on a free port.
"""


import base64
import io
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

# no `from __future__ import annotations` here: FastAPI reads the handlers' annotations
Script = str | dict | tuple[int, str]


def wire_message(item) -> dict:
    """A scripted reply as an OpenAI assistant message."""
    if isinstance(item, str):
        return {"role": "assistant", "content": item}
    calls = []
    for i, tc in enumerate(item.get("tool_calls") or []):
        if "function" in tc:
            calls.append({"type": "function", "id": tc.get("id", f"call_{i}"), **tc})
            continue
        args = tc.get("arguments", {})
        calls.append({"id": tc.get("id", f"call_{i}"), "type": "function",
                      "function": {"name": tc["name"], "arguments": args if isinstance(args, str) else json.dumps(args)}})
    msg = {"role": "assistant", "content": item.get("content")}
    if calls:
        msg["tool_calls"] = calls
    return msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def decode_data_url(url: str):
    from PIL import Image

    if not url.startswith("data:image/") or ";base64," not in url:
        raise ValueError("image_url must be a base64 data URL")
    raw = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    im = Image.open(io.BytesIO(raw))
    im.load()
    return im


class FakeOpenAIServer:
    def __init__(
        self,
        script: Iterable[Script] = (),
        *,
        default: str = "ok",
        respond: Callable[[dict], str] | None = None,
        api_key: str | None = None,
        model: str = "fake-vlm",
    ):
        self.script: deque[Script] = deque(script)
        self.default = default
        self.respond = respond
        self.api_key = api_key
        self.model = model
        self.requests: list[dict] = []
        self.images: list[Any] = []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._server = None
        self._thread: threading.Thread | None = None

    def push(self, *items: Script) -> None:
        self.script.extend(items)

    def app(self):
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse

        app = FastAPI()

        @app.get("/v1/models")
        def models() -> dict:
            return {"object": "list", "data": [{"id": self.model, "object": "model"}]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse({"error": {"message": "bad api key"}}, status_code=401)
            body = await request.json()
            self.requests.append(body)
            try:
                for m in body.get("messages", []):
                    if isinstance(m.get("content"), list):
                        for p in m["content"]:
                            if p.get("type") == "image_url":
                                self.images.append(decode_data_url(p["image_url"]["url"]))
            except Exception as e:  # noqa: BLE001 - any decode failure is the client's fault
                return JSONResponse({"error": {"message": f"bad image: {e}"}}, status_code=400)
            if self.respond is not None:
                item: Script = self.respond(body)
            else:
                item = self.script.popleft() if self.script else self.default
            if isinstance(item, tuple):
                status, text = item
                return JSONResponse({"error": {"message": text}}, status_code=status)
            msg = wire_message(item)
            text = msg.get("content") or json.dumps(msg.get("tool_calls", []))
            return {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": len(text.split()), "total_tokens": 0},
            }

        return app

    def start(self) -> "FakeOpenAIServer":
        import uvicorn

        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
