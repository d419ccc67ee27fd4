"""Bearer-key auth with FastAPI's security helpers (``HTTPBearer``), as a route dependency.

Every route but ``/healthz`` depends on :func:`bearer_guard`; the key is compared in constant
time. A key anywhere else (a query string, another header) counts as no key.
"""

from __future__ import annotations

import secrets
from typing import Callable

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kever.serve import openai_errors as oe

_bearer = HTTPBearer(auto_error=False, description="kever serve --api-key")


def bearer_guard(api_key: str | None) -> Callable:
    """A dependency that lets a request through when ``api_key`` is None or its Bearer token matches."""
    expected = api_key.encode() if api_key else None

    async def guard(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if expected is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.strip().encode(), expected):
            raise oe.unauthorized()

    return guard
