"""Errors in OpenAI's format: ``{"error": {"message", "type", "code", "param"}}``.

Every failure a client can see goes through :class:`APIError`; nothing else leaves the
server (unexpected exceptions become a 500 with a generic message, logged server-side).
"""

from __future__ import annotations

from fastapi.responses import JSONResponse


def quote(value: object, limit: int = 40) -> str:
    """User input as it may appear in an error message: at most ``limit`` characters, escaped
    (``repr``), with its full length when cut. An error never echoes a whole request back."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", code, param)


def too_large(message: str, code: str = "request_too_large") -> APIError:
    return APIError(413, message, "invalid_request_error", code)


def unauthorized() -> APIError:
    return APIError(401, "missing or incorrect API key: send 'Authorization: Bearer <key>'",
                    "invalid_request_error", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def queue_full(depth: int) -> APIError:
    return APIError(429, f"server busy: {depth} requests already queued; retry shortly",
                    "rate_limit_error", "queue_full", headers={"Retry-After": "1"})


def timed_out(seconds: float) -> APIError:
    return APIError(504, f"the request took longer than the server's limit of {seconds:g} s",
                    "timeout_error", "timeout")


def internal() -> APIError:
    return APIError(500, "internal server error (logged on the server)", "server_error", "internal_error")


def unsupported_media_type(message: str) -> APIError:
    return APIError(415, message, "invalid_request_error", "unsupported_media_type")


def shutting_down() -> APIError:
    return APIError(503, "the server is shutting down; retry against a running server", "server_error", "shutting_down",
                    headers={"Retry-After": "5"})
