"""``kever serve``: the OpenAI-compatible chat server (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

import click

from kever.serve.config import FAKE_REASONER_PRESET, ServeConfig
from kever.serve.store import Limits


def build_reasoner(preset: str):
    """The reasoner for a preset, built once. ``fake-reasoner`` is the test double (answers mean nothing)."""
    if preset == FAKE_REASONER_PRESET:
        from kever.agent.fake_reasoner import FakeReasoner

        return FakeReasoner()
    from kever.agent.reasoner import Reasoner

    return Reasoner.from_preset(preset)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 exposes it: set --api-key).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--api-key", envvar="KEVER_API_KEY", default=None, help="Require 'Authorization: Bearer KEY' (env KEVER_API_KEY).")
@click.option("--preset", default="offline", show_default=True,
              help=f"Model preset; '{FAKE_REASONER_PRESET}' serves the FakeReasoner test double (answers mean nothing).")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file keeping conversations (default: KEVER_HOME/serve/conversations.sqlite).")
@click.option("--allow-remote-images", is_flag=True, help="Fetch http(s) image_url parts (public addresses only).")
@click.option("--allow-private-urls", is_flag=True, help="With --allow-remote-images: also fetch from loopback/private addresses.")
@click.option("--max-body-mb", default=20.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest request body / fetched image.")
@click.option("--max-pixels", default=40_000_000, show_default=True, type=click.IntRange(min=1), help="Largest image, width x height.")
@click.option("--timeout-s", default=120.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Longest a request may take (queue + model).")
@click.option("--graceful-timeout-s", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="On SIGTERM/SIGINT, how long requests in flight (a judgment with its rationale) may take to finish.")
@click.option("--queue", default=8, show_default=True, type=click.IntRange(min=1), help="Requests admitted at once; more get 429.")
@click.option("--max-message-chars", default=16_000, show_default=True, type=click.IntRange(min=1),
              help="Longest user message kept in a conversation; longer ones are refused (400).")
@click.option("--max-turns", default=200, show_default=True, type=click.IntRange(min=1),
              help="Turns per conversation; more are refused (400: start a new conversation).")
@click.option("--max-conversations", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Conversations kept; the least recently used are deleted first.")
@click.option("--max-age-days", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Conversations unused for longer are deleted.")
@click.option("--max-db-mb", default=1024, show_default=True, type=click.IntRange(min=1),
              help="Conversation database size kept; the least recently used conversations are deleted first.")
@click.option("--index", "index_path", type=click.Path(path_type=Path), default=None,
              help="Also serve this `kever index` folder: GET /gallery (a page) and /v1/search (JSON).")
@click.option("--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def serve(host, port, api_key, preset, db, allow_remote_images, allow_private_urls, max_body_mb, max_pixels,
          timeout_s, graceful_timeout_s, queue, max_message_chars, max_turns, max_conversations, max_age_days, max_db_mb,
          log_level, index_path=None) -> None:
    """Serve kever over an OpenAI-compatible API (/v1/chat/completions, /v1/emotion, /v1/models)."""
    import uvicorn

    from kever.serve.app import create_app
    from kever.serve.http11 import OpenAIErrorsH11Protocol

    limits = Limits(max_message_chars=max_message_chars, max_turns=max_turns, max_conversations=max_conversations,
                    max_age_s=max_age_days * 86400, max_db_bytes=max_db_mb * 1024 * 1024)
    config = ServeConfig(host=host, port=port, api_key=api_key or None, preset=preset, db=db,
                         allow_remote_images=allow_remote_images, allow_private_urls=allow_private_urls,
                         max_body_mb=max_body_mb, max_pixels=max_pixels, timeout_s=timeout_s,
                         graceful_timeout_s=graceful_timeout_s, queue=queue, limits=limits, index=index_path)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        click.echo(f"kever serve: warning: listening on {host} without --api-key", err=True)
    if preset == FAKE_REASONER_PRESET:
        click.echo("kever serve: serving the FakeReasoner TEST DOUBLE: its answers mean nothing", err=True)
    if index_path is not None:
        from kever.search.store import Store

        Store.open(index_path)  # a missing or bad index is one line now, before the models load
    reasoner = build_reasoner(preset)
    app = create_app(config, reasoner)
    click.echo(f"kever serve: preset {preset}, http://{host}:{port}/v1 (model ids: GET /v1/models)", err=True)
    if index_path is not None:
        click.echo(f"kever serve: searching {index_path}: gallery at http://{host}:{port}/gallery", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=OpenAIErrorsH11Protocol,
                timeout_graceful_shutdown=graceful_timeout_s)
