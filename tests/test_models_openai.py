"""The OpenAI-compatible VLM backend against a real local server the test starts."""

from __future__ import annotations

import pytest
from PIL import Image

from kever.agent.models import VLM, ModelSpec, load_text_lm, load_vlm, weights_available
from kever.agent.models.testing_server import FakeOpenAIServer, free_port
from kever.errors import ConfigError, InputError, ModelUnavailable

pytestmark = pytest.mark.slow

ASK = [
    {"role": "system", "content": "You describe images."},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What mood?"}]},
]


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.script.clear()
    server.requests.clear()
    server.images.clear()
    server.respond = None
    server.api_key = None
    return server


def spec(srv, **kw) -> ModelSpec:
    opts = {"backoff_s": 0.01, **kw.pop("options", {})}
    return ModelSpec(backend="openai", base_url=srv.base_url, model="tiny-vlm", options=opts, **kw)


def test_image_sent_as_jpeg_data_url(srv, demo_image):
    srv.push("calm and joyful")
    vlm = load_vlm(spec(srv))
    assert isinstance(vlm, VLM)
    src = Image.open(demo_image)
    assert vlm.generate(ASK, [src], max_new_tokens=33) == "calm and joyful"
    body = srv.requests[-1]
    assert body["model"] == "tiny-vlm" and body["max_tokens"] == 33 and body["temperature"] == 0.0
    assert body["messages"][0] == {"role": "system", "content": "You describe images."}
    parts = body["messages"][1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert parts[1] == {"type": "text", "text": "What mood?"}
    (got,) = srv.images
    assert got.format == "JPEG" and got.size == src.size


def test_large_images_are_shrunk_and_text_only_works(srv):
    srv.push("a", "b")
    vlm = load_vlm(spec(srv, options={"image_max_side": 256}))
    vlm.generate(ASK, [Image.new("RGBA", (1000, 500), (0, 255, 0, 128))])
    assert max(srv.images[-1].size) == 256 and srv.images[-1].mode == "RGB"
    lm = load_text_lm(spec(srv))
    assert lm.generate([{"role": "user", "content": "why?"}]) == "b"
    assert srv.requests[-1]["messages"] == [{"role": "user", "content": "why?"}]


def test_retries_5xx_and_429_then_succeeds(srv):
    srv.push((500, "boom"), (429, "slow down"), "finally")
    vlm = load_vlm(spec(srv))
    assert vlm.generate([{"role": "user", "content": "x"}]) == "finally"
    assert vlm.attempts == 3 and len(srv.requests) == 3


def test_retries_are_bounded(srv):
    srv.push(*[(503, "down")] * 10)
    vlm = load_vlm(spec(srv, options={"max_retries": 2}))
    with pytest.raises(ModelUnavailable, match="after 3 attempts.*HTTP 503"):
        vlm.generate([{"role": "user", "content": "x"}])
    assert len(srv.requests) == 3


def test_client_errors_are_not_retried(srv):
    srv.push((404, "no such model"))
    vlm = load_vlm(spec(srv))
    with pytest.raises(ModelUnavailable, match="HTTP 404"):
        vlm.generate([{"role": "user", "content": "x"}])
    assert len(srv.requests) == 1


def test_api_key_from_env(srv, monkeypatch):
    srv.api_key = "sekret"
    srv.push("authorised")
    with pytest.raises(ConfigError, match="KEVER_TEST_KEY"):
        load_vlm(spec(srv, api_key_env="KEVER_TEST_KEY"))
    monkeypatch.setenv("KEVER_TEST_KEY", "wrong")
    with pytest.raises(ModelUnavailable, match="401"):
        load_vlm(spec(srv, api_key_env="KEVER_TEST_KEY")).generate([{"role": "user", "content": "x"}])
    monkeypatch.setenv("KEVER_TEST_KEY", "sekret")
    assert load_vlm(spec(srv, api_key_env="KEVER_TEST_KEY")).generate([{"role": "user", "content": "x"}]) == "authorised"


def test_respond_function_sees_the_request(srv):
    srv.respond = lambda body: body["messages"][-1]["content"].upper()
    assert load_vlm(spec(srv)).generate([{"role": "user", "content": "echo"}]) == "ECHO"


def test_mismatched_images_fail_before_any_request(srv):
    with pytest.raises(InputError):
        load_vlm(spec(srv)).generate(ASK, [])
    assert srv.requests == []


def test_dead_port_is_model_unavailable_and_not_available(srv):
    dead = ModelSpec(backend="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="m",
                     timeout_s=2, options={"max_retries": 1, "backoff_s": 0.01})
    with pytest.raises(ModelUnavailable, match="unreachable after 2 attempts"):
        load_vlm(dead).generate([{"role": "user", "content": "x"}])
    assert not weights_available(dead)
    assert weights_available(spec(srv))


def test_several_images_keep_their_order(srv):
    srv.push("two")
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "vs"}, {"type": "image"}]}]
    a, b = Image.new("RGB", (30, 20), "red"), Image.new("RGB", (20, 40), "blue")
    assert load_vlm(spec(srv)).generate(msgs, [a, b]) == "two"
    assert [im.size for im in srv.images] == [(30, 20), (20, 40)]
    assert srv.images[0].convert("RGB").getpixel((5, 5))[0] > 200 and srv.images[1].convert("RGB").getpixel((5, 5))[2] > 200
