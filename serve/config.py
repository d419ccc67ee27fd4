"""Server settings: one pydantic model, filled from ``kever serve`` options."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from kever.serve.store import Limits

#: The preset name that selects the FakeReasoner test double (answers mean nothing).
FAKE_REASONER_PRESET = "fake-reasoner"
#: Request headers that name a conversation, in order of precedence: kever's own, then the one
#: Open WebUI forwards with ENABLE_FORWARD_USER_INFO_HEADERS=True (its chat id).
CONVERSATION_HEADERS = ("X-Conversation-Id", "X-OpenWebUI-Chat-Id")


class ServeConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = Field(None, description="Bearer key required on every endpoint but /healthz and /health")
    preset: str = "offline"
    db: Path | None = Field(None, description="SQLite file for conversations (default: KEVER_HOME/serve/conversations.sqlite)")
    allow_remote_images: bool = Field(False, description="fetch http(s) image_url parts")
    allow_private_urls: bool = Field(False, description="let remote image URLs reach loopback/private/link-local/reserved addresses")
    max_body_mb: float = Field(20.0, gt=0, description="largest request body, and largest fetched image")
    max_pixels: int = Field(40_000_000, gt=0, description="largest image, width x height")
    timeout_s: float = Field(120.0, gt=0, description="longest a request may wait for its answer (queue + model)")
    graceful_timeout_s: float = Field(60.0, ge=0, description="on SIGTERM/SIGINT, longest to wait for requests in flight")
    fetch_timeout_s: float = Field(10.0, gt=0, description="longest a remote image fetch may take")
    queue: int = Field(8, ge=1, description="requests admitted at once (running + waiting); more get 429")
    limits: Limits = Field(default_factory=Limits, description="what conversations may keep (text, turns, retention)")
    conversation_headers: tuple[str, ...] = CONVERSATION_HEADERS
    model_name: str = "kever"
    index: Path | None = Field(None, description="a `kever index` folder to search (GET /gallery, /v1/search)")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)
