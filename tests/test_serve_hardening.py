"""kever serve under careless or hostile use (issue 11): bounded, linear conversation storage;
conversations joined only by an id the client sends; the model id picks the label set;
SIGTERM waits for judgments in flight; malformed requests get OpenAI-format errors.

Real servers in subprocesses (FakeReasoner preset: these test the server, not the judgment).
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import sqlite3
import threading
import time

import httpx
import openai
import pytest

from kever.serve.testing import ServerProcess

pytestmark = pytest.mark.slow


def image_msg(path, text: str = "What emotion does this image evoke?") -> dict:
    url = "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()
    return {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}


def used_bytes(path) -> int:
    """Bytes in use in the SQLite file (pages less free pages), read by a separate connection."""
    c = sqlite3.connect(str(path))
    try:
        pages = c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]
        return pages * c.execute("PRAGMA page_size").fetchone()[0]
    finally:
        c.close()


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("serve") / "conv.sqlite"
    with ServerProcess(["--preset", "fake-reasoner", "--max-message-chars", "20000", "--max-turns", "12"], db=db) as srv:
        yield srv


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="none", max_retries=0, timeout=60)


# ---------------------------------------------------------------- defect 1: storage


def test_storage_grows_linearly_in_turns(server, client, demo_image):
    cid = {"X-Conversation-Id": "linear-growth"}
    client.chat.completions.create(model="kever", messages=[image_msg(demo_image)], extra_headers=cid)
    sizes = []
    for i in range(8):
        text = f"{i}: " + "words " * 2000 + "why?"  # 12 kB of text per follow-up
        client.chat.completions.create(model="kever", messages=[{"role": "user", "content": text}], extra_headers=cid)
        sizes.append(used_bytes(server.db))
    steps = [b - a for a, b in zip(sizes, sizes[1:])]
    # each turn stores its own text once: a constant step (the whole history per checkpoint
    # made each step larger than the one before)
    assert all(8_000 <= s <= 24_000 for s in steps), steps


def test_caps_on_message_size_and_turns_are_clear_errors(server, client, demo_image):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "x" * 20_001}])
    assert e.value.code == "message_too_long" and "20,001 characters" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:  # streamed: refused before the stream starts
        client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "x" * 20_001}], stream=True)
    assert e.value.code == "message_too_long"
    cid = {"X-Conversation-Id": "turn-cap"}
    client.chat.completions.create(model="kever", messages=[image_msg(demo_image)], extra_headers=cid)
    for _ in range(11):
        client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "why?"}], extra_headers=cid)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "why?"}], extra_headers=cid)
    assert e.value.code == "conversation_too_long" and "limit of 12 turns" in e.value.message
    assert e.value.body["param"] == "messages" and e.value.body["type"] == "invalid_request_error"


def test_retention_keeps_at_most_max_conversations(tmp_path, demo_image):
    with ServerProcess(["--preset", "fake-reasoner", "--max-conversations", "2"], db=tmp_path / "c.sqlite") as srv:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0)
        for name in ("first", "second", "third"):
            c.chat.completions.create(model="kever", messages=[image_msg(demo_image)], extra_headers={"X-Conversation-Id": name})
        m = httpx.get(srv.base_url + "/metrics?format=json").json()
        assert m["conversations"] == 2
        with pytest.raises(openai.ConflictError) as gone:  # the oldest went, and its client is told so
            c.chat.completions.create(model="kever", messages=[{"role": "user", "content": "why?"}],
                                      extra_headers={"X-Conversation-Id": "first"})
        assert gone.value.body["code"] == "conversation_evicted" and "at most 2 conversations" in gone.value.body["message"]
        kept = c.chat.completions.create(model="kever", messages=[{"role": "user", "content": "why?"}],
                                         extra_headers={"X-Conversation-Id": "third"})
        assert "What points to" in kept.choices[0].message.content


# ---------------------------------------------------------------- defect 2: identity


def test_same_content_never_joins_another_clients_conversation(client, demo_image):
    first = image_msg(demo_image)
    a1 = client.chat.completions.create(model="kever", messages=[first])
    history = [first, {"role": "assistant", "content": a1.choices[0].message.content},
               {"role": "user", "content": "answer for Ekman's six instead"}]
    a2 = client.chat.completions.create(model="kever", messages=history)
    assert "joy" in a2.model_extra["kever"]["scores"]  # client A's own history asked for Ekman's six
    # client B sends the same photo and prompt, asking for sentiment: its own conversation
    b = client.chat.completions.create(model="kever-sentiment", messages=[first])
    assert set(b.model_extra["kever"]["scores"]) == {"positive", "negative"}
    ids = {a1.model_extra["kever"]["conversation_id"], a2.model_extra["kever"]["conversation_id"],
           b.model_extra["kever"]["conversation_id"]}
    assert len(ids) == 3  # no id sent: a new conversation each time


def test_new_conversation_id_comes_back_and_continues(client, demo_image):
    raw = client.chat.completions.with_raw_response.create(model="kever", messages=[image_msg(demo_image)])
    cid = raw.headers["x-conversation-id"]
    r = raw.parse()
    assert r.model_extra["kever"]["conversation_id"] == cid and len(cid) == 32
    again = client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "show the scores"}],
                                           extra_headers={"X-Conversation-Id": cid})
    assert again.model_extra["kever"]["scores"] == r.model_extra["kever"]["scores"]


def test_open_webui_chat_id_header_names_the_conversation(client, demo_image):
    h = {"X-OpenWebUI-Chat-Id": "0b6c3f2e-8d7a-4a51-9d7e-3f0c2a1b9e44", "X-OpenWebUI-User-Id": "u-1"}
    r = client.chat.completions.create(model="kever", messages=[image_msg(demo_image)], extra_headers=h)
    f = client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "how sure are you?"}], extra_headers=h)
    assert f.model_extra["kever"]["conversation_id"] == h["X-OpenWebUI-Chat-Id"]
    assert f.model_extra["kever"]["scores"] == r.model_extra["kever"]["scores"]
    other = client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "how sure are you?"}],
                                           extra_headers={"X-OpenWebUI-Chat-Id": "another-chat"})
    assert "Send an image" in other.choices[0].message.content


def test_model_id_picks_the_label_set_even_mid_conversation(client, demo_image):
    cid = {"X-Conversation-Id": "switch-models"}
    r = client.chat.completions.create(model="kever", messages=[image_msg(demo_image)], extra_headers=cid)
    assert "joy" not in r.model_extra["kever"]["scores"]
    e = client.chat.completions.create(model="kever", extra_headers=cid,
                                       messages=[{"role": "user", "content": "answer for Ekman's six instead"}])
    assert "joy" in e.model_extra["kever"]["scores"]
    s = client.chat.completions.create(model="kever-sentiment", extra_headers=cid,
                                       messages=[{"role": "user", "content": "why?"}])
    assert set(s.model_extra["kever"]["scores"]) == {"positive", "negative"}
    assert "Re-scored over positive, negative for this model" in s.choices[0].message.content


# ---------------------------------------------------------------- defect 8: malformed requests


def test_chat_needs_json_content_type_and_a_real_boolean_stream(server, demo_image):
    url = server.base_url + "/v1/chat/completions"
    body = json.dumps({"model": "kever", "messages": [{"role": "user", "content": "hi"}]})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": ctype} if ctype else {}
        r = httpx.post(url, content=body.encode(), headers=headers)
        assert r.status_code == 415, (ctype, r.text)
        err = r.json()["error"]
        assert err["code"] == "unsupported_media_type" and "application/json" in err["message"]
    r = httpx.post(url, content=body.encode(), headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200
    for value in ("true", 1, "yes"):
        r = httpx.post(url, json={"model": "kever", "messages": [{"role": "user", "content": "hi"}], "stream": value})
        assert r.status_code == 400, (value, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and "stream" in err["message"]


def test_non_numeric_content_length_gets_an_openai_error(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: abc\r\n\r\n{}")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head.lower()
    err = json.loads(body)["error"]
    assert err["code"] == "invalid_http_request" and "Content-Length" in err["message"]


# ---------------------------------------------------------------- defect 6: graceful shutdown


def test_sigterm_waits_for_judgments_in_flight(tmp_path, demo_image):
    """Two judgments of 6 s each (one streamed) are in flight when SIGTERM arrives: both finish."""
    srv = ServerProcess(["--preset", "fake-reasoner", "--queue", "2"], db=tmp_path / "c.sqlite",
                        env={"KEVER_FAKE_DELAY_S": "6"}).start()
    try:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=60)
        results: dict[str, object] = {}

        def plain():
            try:
                results["plain"] = c.chat.completions.create(model="kever", messages=[image_msg(demo_image)]).choices[0].message.content
            except Exception as e:  # noqa: BLE001 - reported below
                results["plain"] = e

        def streamed():
            try:
                parts = [ch.choices[0].delta.content or "" for ch in
                         c.chat.completions.create(model="kever", messages=[image_msg(demo_image, "and this?")], stream=True)
                         if ch.choices]
                results["streamed"] = "".join(parts)
            except Exception as e:  # noqa: BLE001
                results["streamed"] = e

        threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
        for t in threads:
            t.start()
        wait_until(lambda: httpx.get(srv.base_url + "/healthz").json()["queue_depth"] == 2, 20, "both requests admitted")
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):  # no new requests once shutting down
            httpx.get(srv.base_url + "/healthz", timeout=2)
        for t in threads:
            t.join(timeout=60)
        for kind in ("plain", "streamed"):
            assert isinstance(results.get(kind), str) and "confidence" in results[kind], (kind, results.get(kind), srv.log()[-2000:])
        assert srv.proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    finally:
        srv.stop()
