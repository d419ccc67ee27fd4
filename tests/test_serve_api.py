"""kever serve, end to end: a real uvicorn server in a subprocess, talked to with the official
``openai`` client (and httpx where the client cannot send a malformed request).

Most tests use the FakeReasoner (``--preset fake-reasoner``): they test the server, not the
judgment. One slow test uses the real reasoner (skipped while it cannot be imported).
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest
from PIL import Image

from kever.serve.testing import ServerProcess

pytestmark = pytest.mark.slow
KEY = "test-key-123"
RAW_CITATION = re.compile(r"\[(C\d+|E\d+|fake:\d+)\]")
MIKELS8 = {"amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"}


def data_url(path_or_bytes, mime="image/jpeg") -> str:
    raw = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def png_bytes(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def image_msg(url: str, text: str = "What emotion does this image evoke?") -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("serve") / "conv.sqlite"
    with ServerProcess(["--preset", "fake-reasoner", "--api-key", KEY, "--max-body-mb", "1", "--max-pixels", "1000000",
                        "--allow-remote-images"], db=db) as srv:
        yield srv


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def wait_until(predicate, timeout_s: float, what: str) -> None:
    """Poll ``predicate``; fail the test (saying what did not happen) when it stays false."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def queue_depth(server, key: str | None = None) -> int:
    h = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(server.base_url + "/metrics?format=json", headers=h).json()["queue_depth"]


def model_calls(server) -> int:
    r = httpx.get(server.base_url + "/metrics?format=json", headers={"Authorization": f"Bearer {KEY}"})
    return r.json()["model_calls_total"]


# ---------------------------------------------------------------- basics, auth


def test_models_health_and_auth(server, client):
    assert {m.id for m in client.models.list()} >= {"kever", "kever-emotion6", "kever-sentiment"}
    assert httpx.get(server.base_url + "/healthz").json()["status"] == "ok"  # no key needed
    for path in ("/v1/models", "/metrics"):
        r = httpx.get(server.base_url + path)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(server.base_url + f"/v1/models?api_key={KEY}")  # a key in the query string is no key
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    bad = openai.OpenAI(base_url=server.base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="kever", messages=[{"role": "user", "content": "hi"}])


def test_metrics_prometheus_text(server, client):
    from prometheus_client.parser import text_string_to_metric_families

    client.models.list()
    r = httpx.get(server.base_url + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}  # real Prometheus exposition
    requests = {(s.labels["path"], s.labels["status"]): s.value for s in families["kever_requests"].samples
                if s.name == "kever_requests_total"}
    assert requests[("/v1/models", "200")] >= 1
    assert families["kever_request_duration_seconds"].type == "histogram"
    assert [s.value for s in families["kever_queue_depth"].samples] == [0.0]
    assert "kever_conversation_db_bytes" in families and "kever_conversations" in families
    j = httpx.get(server.base_url + "/metrics?format=json", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert j["errors_total"] >= 1 and j["queue_capacity"] == 8


# ---------------------------------------------------------------- chat and follow-ups


def test_chat_image_then_followups_without_rerunning_perception(server, client, demo_image):
    msgs = [image_msg(data_url(demo_image))]
    before = model_calls(server)
    r = client.chat.completions.create(model="kever", messages=msgs)
    first = r.choices[0].message.content
    meta = r.model_extra["kever"]
    assert meta["label"] in MIKELS8 and f"**{meta['label']}**" in first
    assert abs(sum(meta["scores"].values()) - 1) < 1e-6
    assert model_calls(server) == before + 1
    cid = {"X-Conversation-Id": meta["conversation_id"]}  # a new conversation: continued by its id

    def ask(text: str) -> str:
        msgs.append({"role": "assistant", "content": msgs and r.choices[0].message.content})
        msgs.append({"role": "user", "content": text})
        return client.chat.completions.create(model="kever", messages=msgs, extra_headers=cid).choices[0].message.content

    other = next(x for x in sorted(meta["scores"]) if x != meta["label"])
    why_not = ask(f"why not {other}?")
    assert f"**{other}** scored {100 * meta['scores'][other]:.0f}%" in why_not
    made = ask(f"what in the image made it {meta['label']}?")
    assert f"What points to **{meta['label']}**" in made and "colour: fake cue" in made
    scores = ask("how confident are you?")
    assert all(label in scores for label in MIKELS8)
    assert model_calls(server) == before + 1  # follow-ups answered from the stored judgment
    ekman = ask("answer for Ekman's six instead")
    assert "Re-scored over anger, disgust, fear, joy, sadness, surprise" in ekman
    assert model_calls(server) == before + 1  # relabel re-fuses, perception not re-run
    assert "joy" in ask("why not joy?")
    for text in (first, why_not, made, ekman):  # what a person reads: no raw citation ids
        assert not RAW_CITATION.search(text), text


def test_answer_cites_sources_readably(client, demo_image):
    """The rationale's [C1][fake:1] become numbered sources listed under the answer."""
    r = client.chat.completions.create(model="kever", messages=[image_msg(data_url(demo_image))])
    text = r.choices[0].message.content
    assert "[C1]" not in text and "[fake:1]" not in text
    assert "evokes " + r.model_extra["kever"]["label"] + "¹,²." in text
    sources = text.split("**Sources**", 1)[1]
    assert "¹ Seen in the image: fake cue (colour, confidence 1.00)" in sources and "² Knowledge: fake evidence — fake" in sources


def test_streaming_shows_progress_then_answer(client, demo_image, image_factory):
    url = data_url(image_factory("s.png", size=(40, 40)).read_bytes(), "image/png")
    stream = client.chat.completions.create(model="kever", messages=[image_msg(url)], stream=True)
    progress, events, content, finish = [], [], [], None
    for chunk in stream:
        delta = chunk.choices[0].delta
        extra = delta.model_extra or {}
        if extra.get("reasoning_content"):
            assert not content, "progress must come before the answer"
            progress.append(extra["reasoning_content"])
            events.append((chunk.model_extra or {})["kever_event"]["node"])
        if delta.content:
            content.append(delta.content)
        finish = chunk.choices[0].finish_reason or finish
    # one line per step the reasoner ran (the fake runs three), in a person's words
    assert events == ["perceive", "retrieve", "reconcile"]
    assert progress == ["Looking at the image: colour, faces, objects, text\n",
                        "Looking up what is known about these cues\n", "Weighing the evidence\n"]
    assert finish == "stop" and "confidence" in "".join(content)
    # the same question, not streamed, gets the same text
    again = client.chat.completions.create(model="kever", messages=[image_msg(url)])
    assert again.choices[0].message.content == "".join(content)


def test_conversation_header_and_new_image(server, client, image_factory):
    cid = {"X-Conversation-Id": "conv-header-1"}
    a = data_url(image_factory("a.png", size=(30, 30)).read_bytes(), "image/png")
    b = data_url(png_bytes(colour=(10, 200, 10)), "image/png")
    before = model_calls(server)
    r1 = client.chat.completions.create(model="kever", messages=[image_msg(a)], extra_headers=cid)
    # a follow-up sent alone (no history): found by the header
    r2 = client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "show the scores"}], extra_headers=cid)
    assert "Scores (mikels8" in r2.choices[0].message.content
    assert r2.model_extra["kever"]["scores"] == r1.model_extra["kever"]["scores"]
    r3 = client.chat.completions.create(model="kever", messages=[image_msg(b)], extra_headers=cid)  # new image
    assert r3.model_extra["kever"]["scores"] != r1.model_extra["kever"]["scores"]
    assert model_calls(server) == before + 2
    # a model id picks the label set; the `user` field names an end user, not a conversation:
    # requests without a conversation id are stateless (issue 16)
    u = client.chat.completions.create(model="kever-sentiment", messages=[image_msg(a)], user="alice")
    assert set(u.model_extra["kever"]["scores"]) == {"positive", "negative"}
    f = client.chat.completions.create(model="kever-sentiment", messages=[{"role": "user", "content": "why not negative?"}],
                                       user="alice")
    assert f.model_extra["kever"]["label"] is None and "Send an image" in f.choices[0].message.content
    assert f.model_extra["kever"]["conversation_id"] != u.model_extra["kever"]["conversation_id"]


def test_text_only_first_message_asks_for_an_image(client):
    r = client.chat.completions.create(model="kever", messages=[{"role": "user", "content": "hello there"}])
    assert "Send an image" in r.choices[0].message.content


# ---------------------------------------------------------------- bad input and limits


def test_malformed_requests_get_4xx_saying_what(server, client, demo_image):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="kever", messages=[])
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model="kever", messages=[{"role": "wizard", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="user"):
        client.chat.completions.create(model="kever", messages=[{"role": "system", "content": "be nice"}])
    with pytest.raises(openai.BadRequestError, match="base64"):
        client.chat.completions.create(model="kever", messages=[image_msg("data:image/png;base64,@@@not-base64@@@")])
    with pytest.raises(openai.BadRequestError, match="not an image"):
        client.chat.completions.create(model="kever", messages=[image_msg(data_url(b"hello, not an image"))])
    with pytest.raises(openai.BadRequestError, match="scheme"):
        client.chat.completions.create(model="kever", messages=[image_msg("file:///etc/passwd")])
    with pytest.raises(openai.BadRequestError, match="type"):
        client.chat.completions.create(model="kever", messages=[{"role": "user", "content": [{"type": "audio", "x": 1}]}])
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = httpx.post(server.base_url + "/v1/chat/completions", content=b"{not json", headers=h)
    assert r.status_code == 400 and "malformed request" in r.json()["error"]["message"]
    r = httpx.get(server.base_url + "/v1/nothing", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for resp in (r,):
        assert "Traceback" not in resp.text


def test_body_and_pixel_limits(server, client):
    big = data_url(bytes(1_200_000), "image/png")  # > --max-body-mb 1
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="kever", messages=[image_msg(big)])
    assert e.value.status_code == 413 and "above the limit" in e.value.message
    many = data_url(png_bytes(size=(1200, 1000)), "image/png")  # 1.2 MP > --max-pixels 1e6, small file
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="kever", messages=[image_msg(many)])
    assert e.value.status_code == 413 and "pixels" in e.value.message
    # chunked upload without Content-Length is capped too
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = httpx.post(server.base_url + "/v1/chat/completions", headers=h, content=iter([b"x" * 600_000, b"y" * 600_000]))
    assert r.status_code == 413


def test_ssrf_guard_refuses_loopback_and_private(server, client):
    for url in (f"http://127.0.0.1:{server.port}/healthz", "http://localhost/x.jpg", "http://[::1]/x.jpg",
                "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x.jpg"):
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="kever", messages=[image_msg(url)])
        assert e.value.code == "image_url_forbidden", url
        assert "refusing to fetch" in e.value.message


# ---------------------------------------------------------------- /v1/emotion


def test_emotion_endpoint_multipart_and_json(server, demo_image):
    h = {"Authorization": f"Bearer {KEY}"}
    r = httpx.post(server.base_url + "/v1/emotion", headers=h, files={"image": ("a.jpg", demo_image.read_bytes(), "image/jpeg")},
                   data={"labels": "emotion6"})
    assert r.status_code == 200, r.text
    j = r.json()
    for key in ("label", "scores", "confidence", "valence", "arousal", "cues", "evidence", "rationale", "models", "timings"):
        assert key in j
    assert "joy" in j["scores"]
    r2 = httpx.post(server.base_url + "/v1/emotion", headers=h,
                    json={"image": base64.b64encode(demo_image.read_bytes()).decode(), "rationale": False})
    assert r2.status_code == 200 and set(r2.json()["scores"]) == MIKELS8 and r2.json()["rationale"] is None
    r3 = httpx.post(server.base_url + "/v1/emotion", headers=h, content=b"raw", )
    assert r3.status_code == 415 and "multipart" in r3.json()["error"]["message"]
    r4 = httpx.post(server.base_url + "/v1/emotion", headers=h, json={"img": "x"})
    assert r4.status_code == 400 and "image" in r4.json()["error"]["message"]
    r5 = httpx.post(server.base_url + "/v1/emotion", headers=h, files={"other": ("a.txt", b"x")})
    assert r5.status_code == 400 and "'image'" in r5.json()["error"]["message"]


# ---------------------------------------------------------------- restart, remote fetch, queue


class _ImageHandler(BaseHTTPRequestHandler):
    body = png_bytes(colour=(20, 20, 220))

    def do_GET(self):  # noqa: N802
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/img.png")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_restart_keeps_conversations_and_private_fetch_when_allowed(tmp_path, demo_image):
    db = tmp_path / "conv.sqlite"
    args = ["--preset", "fake-reasoner", "--allow-remote-images", "--allow-private-urls"]
    images = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    cid = {"X-Conversation-Id": "survives-restart"}
    try:
        with ServerProcess(args, db=db) as srv:
            c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0)
            first = c.chat.completions.create(model="kever", extra_headers=cid,
                                              messages=[image_msg(f"http://127.0.0.1:{images.server_port}/redirect")])
            label = first.model_extra["kever"]["label"]
        with ServerProcess(args, db=db) as srv2:
            c = openai.OpenAI(base_url=srv2.base_url + "/v1", api_key="none", max_retries=0)
            r = c.chat.completions.create(model="kever", extra_headers=cid,
                                          messages=[{"role": "user", "content": f"what made it {label}?"}])
            assert f"What points to **{label}**" in r.choices[0].message.content
            m = httpx.get(srv2.base_url + "/metrics?format=json").json()
            assert m["model_calls_total"] == 0  # answered from the stored judgment after the restart
            # a history replayed to a server that never judged it: the image in the history is judged
            r = c.chat.completions.create(model="kever", messages=[image_msg(data_url(demo_image)),
                                                                   {"role": "assistant", "content": "..."},
                                                                   {"role": "user", "content": "why not fear?"}])
            assert "**fear**" in r.choices[0].message.content or "It is fear" in r.choices[0].message.content
    finally:
        images.shutdown()


def test_bounded_queue_and_timeout(tmp_path, demo_image):
    args = ["--preset", "fake-reasoner", "--queue", "1", "--timeout-s", "0.5"]
    with ServerProcess(args, db=tmp_path / "c.sqlite", env={"KEVER_FAKE_DELAY_S": "3"}) as srv:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0)
        errors: list[Exception] = []

        def slow():
            try:
                c.chat.completions.create(model="kever", messages=[image_msg(data_url(demo_image))])
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        t = threading.Thread(target=slow)
        t.start()
        wait_until(lambda: queue_depth(srv) == 1, 10, "the slow request to be admitted")
        with pytest.raises(openai.RateLimitError) as e:
            c.chat.completions.create(model="kever", messages=[{"role": "user", "content": "hi"}])
        assert e.value.code == "queue_full"
        t.join(timeout=20)
        assert len(errors) == 1 and isinstance(errors[0], openai.APIStatusError) and errors[0].status_code == 504
        assert "limit of 0.5 s" in errors[0].message
        assert "Traceback" not in json.dumps(errors[0].body)


def test_cli_unknown_preset_is_one_line_error(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "kever", "serve", "--preset", "no-such-preset", "--port", "0",
                        "--db", str(tmp_path / "c.sqlite")], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "kever: error:" in p.stderr and "Traceback" not in p.stderr
