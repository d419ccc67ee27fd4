"""``kever serve --index``: the search API and the gallery page on a real server (a subprocess
serving the FakeReasoner for chat; the index was built with the ``fake`` preset)."""

from __future__ import annotations

import io
import subprocess
import sys

import httpx
import numpy as np
import pytest
from PIL import Image

from kever.search.build import build_index
from kever.serve.testing import ServerProcess

pytestmark = pytest.mark.slow
KEY = "search-key-1"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    from kever.agent.reasoner import Reasoner

    root = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(1)
    for i in range(10):
        d = root / ("a" if i < 6 else "b")
        d.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(d / f"{i}.jpg")
    r = Reasoner.from_preset("fake")
    build_index(root, reasoner_factory=lambda p: r, preset="fake")
    return root


@pytest.fixture(scope="module")
def server(indexed, tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "c.sqlite"
    with ServerProcess(["--preset", "fake-reasoner", "--api-key", KEY, "--index", str(indexed / ".kever-index"),
                        "--max-message-chars", "200"], db=db) as srv:
        yield srv


def get(srv, route, key=KEY, **params):
    h = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(srv.base_url + route, params=params, headers=h, timeout=60)


def test_search_needs_the_key_and_answers_json(server):
    assert get(server, "/v1/search", key=None, emotion="awe").status_code == 401
    assert get(server, "/v1/search", key="wrong", emotion="awe").status_code == 401
    r = get(server, "/v1/search", emotion="awe", limit=4)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 10 and len(body["hits"]) == 4
    assert [h["score"] for h in body["hits"]] == sorted((h["score"] for h in body["hits"]), reverse=True)
    assert all("file" not in h and h["reason"] for h in body["hits"])  # no server paths leave the server
    r = httpx.post(server.base_url + "/v1/search", json={"emotion": "awe", "folder": "b/", "limit": 10},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert r.status_code == 200 and sorted(h["path"] for h in r.json()["hits"]) == ["b/6.jpg", "b/7.jpg", "b/8.jpg", "b/9.jpg"]
    like = get(server, "/v1/search", like="a/0.jpg", limit=3).json()
    assert like["query"]["mode"] == "like" and "a/0.jpg" not in [h["path"] for h in like["hits"]]
    text = get(server, "/v1/search", q="church in bright light", limit=3).json()
    assert text["query"]["mode"] == "text" and len(text["hits"]) == 3


def test_search_input_limits(server):
    r = get(server, "/v1/search", q="x" * 201)  # the chat API's --max-message-chars
    assert r.status_code == 400 and "at most 200" in r.json()["error"]["message"]
    assert get(server, "/v1/search", emotion="awe", limit=101).status_code == 400
    assert get(server, "/v1/search", emotion="blorfish").json()["error"]["message"].startswith("unknown emotion word")
    assert get(server, "/v1/search", valence="5..9").status_code == 400
    # only indexed photos are read: no file on the server can be named
    for bad in ("../../etc/passwd", "/etc/passwd", "a/missing.jpg"):
        assert get(server, "/v1/search", like=bad).status_code == 404
        assert get(server, "/v1/search/thumb", path=bad).status_code == 404
    big = httpx.post(server.base_url + "/v1/search", content=b"{" + b" " * (21 * 1024 * 1024) + b"}",
                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}, timeout=60)
    assert big.status_code == 413
    r = httpx.post(server.base_url + "/v1/search", json={"emotion": "awe", "surprise": 1},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert r.status_code == 400 and "surprise" in r.json()["error"]["message"]


def test_thumbnails_photo_detail_and_gallery_page(server):
    t = get(server, "/v1/search/thumb", path="a/1.jpg")
    assert t.status_code == 200 and t.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(t.content)).size == (80, 60)
    assert get(server, "/v1/search/thumb", key=None, path="a/1.jpg").status_code == 401
    d = get(server, "/v1/search/photo", path="a/1.jpg").json()
    assert d["path"] == "a/1.jpg" and d["cues"] and d["evidence"] and abs(sum(d["scores"].values()) - 1) < 1e-2
    page = httpx.get(server.base_url + "/gallery", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/v1/search?" in page.text and "Authorization" in page.text  # it asks the API with the key
    assert "/v1/search" not in httpx.get(server.base_url + "/v1/models", timeout=30).text


def test_a_bad_index_stops_the_server_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kever", "serve", "--preset", "fake-reasoner", "--index",
                        str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("kever: error: no index at")
