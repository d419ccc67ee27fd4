"""Defects found by an independent battery against ``kever serve`` (issue 16), each reproduced
against a real server on loopback (FakeReasoner preset: these test the server).

1. the database cap deleted the conversation being written (checked only every 50 writes);
2. an ``image_url`` without a scheme was echoed whole in the 400;
6. a 1x1 / 4000x2 image judged without a warning; ``max_tokens`` ignored; ``/health`` 404.
"""

from __future__ import annotations

import base64
import io
import sqlite3

import httpx
import openai
import pytest
from PIL import Image

from serve_helpers import client, server  # noqa: F401  (fixtures)

from kever.serve.testing import ServerProcess

pytestmark = pytest.mark.slow


def image_msg(raw: bytes, text: str = "What emotion does this image evoke?", mime: str = "image/jpeg") -> dict:
    url = f"data:{mime};base64," + base64.b64encode(raw).decode()
    return {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}


def png(size, colour=(120, 60, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def used_bytes(path) -> int:
    c = sqlite3.connect(str(path))
    try:
        pages = c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]
        return pages * c.execute("PRAGMA page_size").fetchone()[0]
    finally:
        c.close()


def conversation_ids(path) -> set[str]:
    c = sqlite3.connect(str(path))
    try:
        return {r[0] for r in c.execute("SELECT id FROM conversations")}
    finally:
        c.close()




# ---------------------------------------------------------------- defect 1: the database cap


def test_db_cap_prunes_oldest_first_never_the_active_conversation_and_says_so(tmp_path, demo_image):
    cap = 1024 * 1024
    db = tmp_path / "c.sqlite"
    with ServerProcess(["--preset", "fake-reasoner", "--max-db-mb", "1", "--max-message-chars", "20000",
                        "--max-turns", "500"], db=db) as srv:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=60)
        image = image_msg(demo_image.read_bytes())

        def turn(cid: str, msg: dict):
            return c.chat.completions.create(model="kever", messages=[msg], extra_headers={"X-Conversation-Id": cid})

        big = "why? " + "x" * 15_000
        for cid in ("old-1", "old-2"):  # two older conversations of ~300 kB each
            turn(cid, image)
            for _ in range(18):
                turn(cid, {"role": "user", "content": big})
        turn("active", image)
        refused = None
        for i in range(80):
            try:
                r = turn("active", {"role": "user", "content": big})
            except openai.BadRequestError as e:
                refused = e
                break
            # the judgment of the conversation being written is never lost ...
            assert r.model_extra["kever"]["label"] is not None, f"turn {i}: the active conversation's judgment is gone"
            # ... and the cap holds on every write (one turn's pages of slack), not every 50th
            assert used_bytes(db) <= cap + 64 * 1024, f"turn {i}: {used_bytes(db):,} bytes, cap {cap:,}"
            left = conversation_ids(db)
            assert "active" in left
            assert not ("old-2" not in left and "old-1" in left), "pruned the newer conversation before the older one"
        # one conversation alone may not outgrow the cap: refused with a clear error, not deleted
        assert refused is not None and refused.body["code"] == "conversation_too_large", refused
        assert "new conversation" in refused.body["message"]
        assert "old-1" not in conversation_ids(db)
        # a follow-up to an evicted conversation is told so (it used to get "Send an image", label null)
        with pytest.raises(openai.APIStatusError) as gone:
            turn("old-1", {"role": "user", "content": "why not fear?"})
        assert gone.value.status_code == 409 and gone.value.body["code"] == "conversation_evicted"
        assert "send the image again" in gone.value.body["message"]
        # sending the image again starts it over
        again = turn("old-1", image)
        assert again.model_extra["kever"]["label"] is not None


# ---------------------------------------------------------------- defect 2: user input quoted in errors


def test_image_url_without_scheme_is_not_echoed_whole(server):
    junk = "A" * 2_000_000 + "<script>"
    body = {"model": "kever", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": junk}}]}]}
    r = httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image_url"
    assert len(r.content) < 1000, len(r.content)
    assert "AAAA" in r.json()["error"]["message"] and "<script>" not in r.text


def test_other_errors_quote_user_input_briefly(server):
    long_model = "kever-" + "z" * 100_000
    r = httpx.post(server.base_url + "/v1/chat/completions",
                   json={"model": long_model, "messages": [{"role": "user", "content": "hi"}]}, timeout=60)
    assert r.status_code == 404 and len(r.content) < 1000, len(r.content)
    r = httpx.get(server.base_url + "/v1/models/" + "q" * 5000, timeout=60)
    assert r.status_code == 404 and len(r.content) < 1000, len(r.content)
    r = httpx.post(server.base_url + "/v1/chat/completions", timeout=60, json={
        "model": "kever", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
            "url": "ftp" * 100_000 + "://x"}}]}]})
    assert r.status_code == 400 and len(r.content) < 1000, len(r.content)


# ---------------------------------------------------------------- defect 6 (lesser)


@pytest.mark.parametrize("size", [(1, 1), (4000, 2)])
def test_tiny_images_are_judged_with_a_warning(client, server, size):
    r = client.chat.completions.create(model="kever", messages=[image_msg(png(size), mime="image/png")])
    assert r.model_extra["kever"]["label"] is not None
    warnings = r.model_extra["kever"]["warnings"]
    assert any(f"{size[0]}x{size[1]}" in w and "little" in w for w in warnings), warnings
    raw = base64.b64encode(png(size)).decode()
    j = httpx.post(server.base_url + "/v1/emotion", json={"image": raw}, timeout=60).json()
    assert any(f"{size[0]}x{size[1]}" in w for w in j["warnings"]), j["warnings"]


def test_normal_image_gets_no_size_warning(client, demo_image):
    r = client.chat.completions.create(model="kever", messages=[image_msg(demo_image.read_bytes())])
    assert not [w for w in r.model_extra["kever"]["warnings"] if "pixels" in w]


def test_max_tokens_bounds_the_answer_text(client, demo_image):
    full = client.chat.completions.create(model="kever", messages=[image_msg(demo_image.read_bytes())])
    short = client.chat.completions.create(model="kever", messages=[image_msg(demo_image.read_bytes())], max_tokens=5)
    assert short.choices[0].finish_reason == "length" and full.choices[0].finish_reason == "stop"
    assert short.usage.completion_tokens <= 5 < full.usage.completion_tokens
    assert full.choices[0].message.content.startswith(short.choices[0].message.content.rstrip())
    for bad in (0, -3):
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="kever", messages=[image_msg(demo_image.read_bytes())], max_tokens=bad)
        assert "max_tokens" in e.value.body["message"]


def test_health_answers_200_and_healthz_still_does(server):
    for path in ("/health", "/healthz"):
        r = httpx.get(server.base_url + path, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "ok", path
