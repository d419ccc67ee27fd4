"""kever as a model inside research harnesses (issue 16): label-only answers, scores as logprobs,
clear 400s for what kever cannot do, stateless requests, the model id's label set, streaming's
``kever`` object, ``/v1/responses``. A real server on loopback (FakeReasoner preset), driven by
the official ``openai`` client as a harness would.
"""

from __future__ import annotations

import base64
import json
import math

import httpx
import openai
import pytest

from kever.agent.graph import NODE_NAMES
from kever.serve.render import STEPS, Progress
from serve_helpers import client, server  # noqa: F401  (fixtures)


pytestmark = pytest.mark.slow
EMOTION6 = {"anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"}


def data_url(path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def image_msg(path, text: str = "Which emotion does this image evoke? Answer with one word.") -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": data_url(path)}}]}




def model_calls(server) -> int:
    return httpx.get(server.base_url + "/metrics?format=json").json()["model_calls_total"]


def test_models_list_offers_label_only_ids(client):
    ids = {m.id for m in client.models.list().data}
    assert {"kever:label", "kever-emotion6:label", "kever-sentiment:label", "kever-emotion6"} <= ids


def test_label_only_model_id_answers_the_label_with_scores_as_logprobs(client, demo_image):
    r = client.chat.completions.create(model="kever-emotion6:label", messages=[image_msg(demo_image)], logprobs=True,
                                       top_logprobs=3)
    k = r.model_extra["kever"]
    assert r.choices[0].message.content == k["label"] and k["label"] in EMOTION6 and set(k["scores"]) == EMOTION6
    (entry,) = r.choices[0].logprobs.content
    assert entry.token == k["label"] and entry.logprob == pytest.approx(math.log(k["scores"][k["label"]]))
    assert [t.token for t in entry.top_logprobs] == sorted(k["scores"], key=k["scores"].get, reverse=True)[:3]
    full = client.chat.completions.create(model="kever-emotion6:label", messages=[image_msg(demo_image)], logprobs=True)
    tops = full.choices[0].logprobs.content[0].top_logprobs
    assert len(tops) == 7 and sum(math.exp(t.logprob) for t in tops) == pytest.approx(1.0)


def test_json_schema_answer_is_label_and_scores(client, demo_image):
    schema = {"type": "object", "properties": {"label": {"type": "string"}, "scores": {"type": "object"}},
              "required": ["label", "scores"]}
    r = client.chat.completions.create(model="kever-emotion6", messages=[image_msg(demo_image)],
                                       response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    body = json.loads(r.choices[0].message.content)
    assert body == {"label": r.model_extra["kever"]["label"], "scores": r.model_extra["kever"]["scores"]}
    bad = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="kever-emotion6", messages=[image_msg(demo_image)],
                                       response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": bad}})
    assert e.value.body["param"] == "response_format" and "answer" in e.value.body["message"]


@pytest.mark.parametrize("extra, param", [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ({"n": 2}, "n"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"logprobs": True}, "logprobs"),  # on a prose answer
    ({"response_format": {"type": "grammar"}}, "response_format"),
])
def test_unsupported_parameters_are_a_clear_400(client, demo_image, extra, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="kever", messages=[image_msg(demo_image)], extra_body=extra)
    assert e.value.body["code"] == "unsupported_parameter" and e.value.body["param"] == param
    assert "not supported" in e.value.body["message"]


def test_parameters_without_effect_are_named_back(client, demo_image):
    raw = client.chat.completions.with_raw_response.create(model="kever:label", messages=[image_msg(demo_image)],
                                                           temperature=0.7, seed=3)
    assert raw.headers["x-kever-ignored-params"] == "temperature,seed"


def test_model_id_label_set_wins_over_the_prompt_wording(client, demo_image):
    r = client.chat.completions.create(model="kever-emotion6:label",
                                       messages=[image_msg(demo_image, "Is this image positive or negative?")])
    assert set(r.model_extra["kever"]["scores"]) == EMOTION6 and r.choices[0].message.content in EMOTION6


def test_requests_are_stateless_without_a_conversation_id(server, client, demo_image):
    before = model_calls(server)
    answers = [client.chat.completions.create(model="kever-emotion6", messages=[image_msg(demo_image)], user="harness")
               for _ in range(2)]
    assert model_calls(server) == before + 2  # the same photo twice: judged twice, not a follow-up
    assert answers[0].choices[0].message.content == answers[1].choices[0].message.content
    assert answers[0].model_extra["kever"]["conversation_id"] != answers[1].model_extra["kever"]["conversation_id"]


def test_label_only_without_an_image_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="kever:label", messages=[{"role": "user", "content": "hello"}])
    assert e.value.body["code"] == "image_required"


def test_streaming_keeps_the_kever_object_on_the_last_chunk(client, demo_image):
    for model in ("kever", "kever-emotion6:label"):
        stream = client.chat.completions.create(model=model, messages=[image_msg(demo_image)], stream=True)
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
        last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
        k = last.model_extra["kever"]
        assert k["label"] and k["scores"] and "warnings" in k and k["conversation_id"]
        if model.endswith(":label"):
            assert text == k["label"]
        assert "Consult" not in reasoning


def test_progress_never_shows_a_raw_node_name():
    p = Progress()
    for node in NODE_NAMES:
        assert node in STEPS, f"node {node} has no progress line"
        line = p.line({"node": node, "status": "end"})
        assert line is None or node.capitalize() not in line
    assert p.line({"node": "some_new_node", "status": "end"}) == "Working\n"


def test_responses_endpoint(client, demo_image):
    inp = [{"role": "user", "content": [{"type": "input_text", "text": "Which emotion? One word."},
                                        {"type": "input_image", "image_url": data_url(demo_image)}]}]
    r = client.responses.create(model="kever-emotion6:label", input=inp)
    assert r.output_text in EMOTION6 and r.status == "completed"
    assert r.model_extra["kever"]["label"] == r.output_text
    j = client.responses.create(model="kever-emotion6", input=inp, text={"format": {
        "type": "json_schema", "name": "a", "schema": {"type": "object", "required": ["label"]}}})
    assert json.loads(j.output_text)["label"] == r.output_text
    prose = client.responses.create(model="kever", input=inp, max_output_tokens=4)
    assert prose.status == "incomplete" and prose.usage.output_tokens <= 4
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="kever", input=inp, stream=True).close()
    assert e.value.body["param"] == "stream"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="kever", input=[{"type": "function_call_output", "call_id": "x", "output": "y"}])
