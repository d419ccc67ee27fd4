"""``kever serve --index PATH``: a JSON search endpoint over a built index and the gallery page.

    GET  /gallery                          the page (no data in it: it asks the API, with the key)
    GET  /v1/search?q=&emotion=&like=&valence=a..b&arousal=a..b&min_confidence=&folder=&limit=
    POST /v1/search                        the same fields as JSON
    GET  /v1/search/photo?path=P           the stored judgment of one indexed photo (the "explain" view)
    GET  /v1/search/thumb?path=P           a JPEG thumbnail of one indexed photo

The API routes take the chat API's Bearer key; the request body cap (``Gate``) holds for them
too, a query text is held to the chat API's message limit, and only indexed photos are ever
read (``like`` and ``path`` name an indexed photo, never a file on the server).
"""

from __future__ import annotations

import asyncio
import io
import json
from functools import lru_cache
from importlib import resources
from typing import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kever.serve import openai_errors as oe
from kever.search.query import mikels8
from kever.serve.config import ServeConfig

MAX_LIMIT = 100
THUMB_SIDE = 320


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(None, description="free text")
    emotion: str | None = Field(None, max_length=40)
    like: str | None = Field(None, max_length=1000, description="an indexed photo's path")
    valence: str | None = Field(None, max_length=40, description="a..b within -1..1")
    arousal: str | None = Field(None, max_length=40, description="a..b within 0..1")
    min_confidence: float | None = Field(None, ge=0, le=1)
    folder: str | None = Field(None, max_length=1000)
    limit: int = Field(24, ge=1, le=MAX_LIMIT)


def gallery_html() -> str:
    return resources.files("kever.search").joinpath("gallery.html").read_text(encoding="utf-8")


def search_router(config: ServeConfig, reasoner, guard: Callable) -> APIRouter:
    """Routes over the index at ``config.index``, opened now (a bad index stops the server at start).
    The server's reasoner is shared when it runs the index's preset."""
    from kever.search.index import Index

    index = Index.open(config.index)
    if getattr(reasoner, "preset", None) == index.preset and hasattr(reasoner, "c"):
        index = Index(index.store, reasoner)
    max_text = min(config.limits.max_message_chars, 500)
    router = APIRouter()
    api = APIRouter(dependencies=[Depends(guard)])

    @router.get("/gallery", include_in_schema=False)
    async def gallery():
        return HTMLResponse(gallery_html(), headers={"Cache-Control": "no-store",
                                                     "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; "
                                                     "style-src 'unsafe-inline'; script-src 'unsafe-inline'"})

    def run_search(req: SearchRequest) -> dict:
        if req.q is not None and len(req.q) > max_text:
            raise oe.bad_request(f"q is {len(req.q)} characters; at most {max_text}", param="q")
        like = None
        if req.like:
            like = index.file(req.like)
            if like is None:
                raise oe.APIError(404, f"like: '{req.like}' is not a photo in the index", "invalid_request_error",
                                  "photo_not_found", param="like")
        res = index.search(req.q or None, emotion=req.emotion or None, like=like, valence=req.valence or None,
                           arousal=req.arousal or None, min_confidence=req.min_confidence,
                           folder=req.folder or None, limit=req.limit)
        out = res.model_dump(mode="json")
        for h in out["hits"]:
            h.pop("file", None)  # the server's own paths stay on the server
        out.pop("index", None)
        if like is not None:
            out["query"]["like"] = req.like
        return out

    def parse(data: dict) -> SearchRequest:
        try:
            return SearchRequest.model_validate(data)
        except ValidationError as e:
            errs = e.errors()[:3]
            raise oe.bad_request("malformed search: " + "; ".join(
                f"{'.'.join(str(x) for x in err.get('loc', ())) or 'body'}: {err.get('msg')}" for err in errs)) from None

    @api.get("/v1/search")
    async def search_get(request: Request):
        return JSONResponse(await asyncio.to_thread(run_search, parse(dict(request.query_params))))

    @api.post("/v1/search")
    async def search_post(request: Request):
        try:
            data = await request.json()
        except ValueError:
            raise oe.bad_request("send the search as a JSON object") from None
        if not isinstance(data, dict):
            raise oe.bad_request("send the search as a JSON object")
        return JSONResponse(await asyncio.to_thread(run_search, parse(data)))

    def stored(path: str) -> dict:
        row = index.get(path)
        if row is None:
            raise oe.APIError(404, f"'{path}' is not a photo in the index", "invalid_request_error", "photo_not_found",
                              param="path")
        return row

    @api.get("/v1/search/photo")
    async def photo(path: str):
        row = await asyncio.to_thread(stored, path)
        return {"path": row["path"], "label": row["label"], "confidence": row["confidence"],
                "valence": row["valence"], "arousal": row["arousal"],
                "scores": {m: round(float(x), 4) for m, x in zip(mikels8(), row["canonical"])},
                "cues": json.loads(row["cues"]), "evidence": json.loads(row["evidence"]), "preset": row["preset"]}

    @lru_cache(maxsize=512)
    def thumb_bytes(path: str, sha: str) -> bytes:
        from kever.images import load_image

        f = index.file(path)
        img = load_image(f, working_side=THUMB_SIDE).image
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=82)
        return buf.getvalue()

    @api.get("/v1/search/thumb")
    async def thumb(path: str):
        row = await asyncio.to_thread(stored, path)
        data = await asyncio.to_thread(thumb_bytes, row["path"], row["sha256"])
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    router.include_router(api)
    return router
