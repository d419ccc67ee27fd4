"""kever serve over the real Reasoner (not the FakeReasoner test double).

``fake`` preset: the real Reasoner and graph with scripted fake models (cheap);
``offline`` preset: the real packaged models. Each is skipped (with the reason) while the
reasoner's modules cannot be imported on this checkout.
"""

from __future__ import annotations

import base64
import re

import httpx
import openai
import pytest

from kever.serve.testing import ServerProcess

pytestmark = pytest.mark.slow


def _start(preset: str, tmp_path) -> ServerProcess:
    srv = ServerProcess(["--preset", preset], db=tmp_path / "c.sqlite", startup_timeout_s=600)
    return srv.start()


@pytest.mark.parametrize("preset", ["fake", "offline"])
def test_chat_follow_ups_and_emotion_with_real_reasoner(preset, tmp_path, demo_image):
    srv = _start(preset, tmp_path)
    try:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=600)
        url = "data:image/jpeg;base64," + base64.b64encode(demo_image.read_bytes()).decode()
        msgs = [{"role": "user", "content": [{"type": "text", "text": "What does this evoke?"},
                                             {"type": "image_url", "image_url": {"url": url}}]}]
        progress, nodes, content, cid = [], [], [], None
        for chunk in c.chat.completions.create(model="kever", messages=msgs, stream=True):
            d = chunk.choices[0].delta
            if (d.model_extra or {}).get("reasoning_content"):
                progress.append(d.model_extra["reasoning_content"])
                nodes.append(chunk.model_extra["kever_event"]["node"])
            content.append(d.content or "")
            cid = (chunk.model_extra or {}).get("kever", {}).get("conversation_id") or cid
        # one line per step of the real graph, in words
        assert nodes[:3] == ["perceive", "describe_cues", "retrieve"] and len(nodes) == len(progress)
        assert progress[0] == "Looking at the image: colour, faces, objects, text\n"
        first = "".join(content)
        assert not re.search(r"\[[CE]\d+\]", first), first  # citations rendered as numbered sources
        h = {"X-Conversation-Id": cid}
        msgs += [{"role": "assistant", "content": first}, {"role": "user", "content": "why not fear?"}]
        why_not = c.chat.completions.create(model="kever", messages=msgs, extra_headers=h).choices[0].message.content
        assert "fear" in why_not
        msgs += [{"role": "assistant", "content": why_not}, {"role": "user", "content": "answer for Ekman's six instead"}]
        ekman = c.chat.completions.create(model="kever", messages=msgs, extra_headers=h)
        assert "joy" in ekman.model_extra["kever"]["scores"]
        m = httpx.get(srv.base_url + "/metrics?format=json").json()
        assert m["model_calls_total"] == 1 and m["errors_total"] == 0
        r = httpx.post(srv.base_url + "/v1/emotion", timeout=600,  # no rationale: the packaged LM is the slow part
                       json={"image": base64.b64encode(demo_image.read_bytes()).decode(), "rationale": False})
        assert r.status_code == 200, r.text
        j = r.json()
        assert abs(sum(j["scores"].values()) - 1) < 1e-4 and j["cues"] and j["label"] in j["scores"]
        assert j["rationale"] is None
    finally:
        srv.stop()
