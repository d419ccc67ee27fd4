"""ASGI middleware in front of every route: the body-size cap and request metrics.

Hand-written on purpose: the cap must hold for chunked bodies without a Content-Length as
they arrive (before the app buffers them), which neither Starlette nor FastAPI offers.
"""

from __future__ import annotations

import time

from kever.serve import openai_errors as oe
from kever.serve.config import ServeConfig
from kever.serve.metrics import Metrics

KNOWN_PATHS = ("/healthz", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/emotion")


class Gate:
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
            known = path if path in KNOWN_PATHS else "other"
            self.metrics.observe(known, status["code"], time.perf_counter() - t0)

    def _check(self, scope) -> oe.APIError | None:
        for k, v in scope.get("headers", []):
            if k.lower() == b"content-length":
                length = v.decode("latin-1").strip()
                if not length.isdigit():
                    return oe.bad_request("invalid Content-Length header (must be a number of bytes)", "invalid_http_request")
                if int(length) > self.config.max_body_bytes:
                    return oe.too_large(f"request body is {int(length):,} bytes, above the limit of {self.config.max_body_bytes:,}")
        return None
