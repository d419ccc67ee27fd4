"""The knowledge agent (the ``consult`` node) with scripted fakes: a FakeTextLM that answers
the grammar protocol's JSON, and a real local OpenAI-compatible server that answers native
``tool_calls``. The knowledge base is the real one (curated files + a slice of the lexicons)."""

from __future__ import annotations

import json

import pytest

from kever.agent.config import AgentConfig, load_fusion, load_preset, load_system
from kever.agent.consult import ToolAgent
from kever.agent.models import FakeTextLM, FakeVLM
from kever.agent.nodes import Components
from kever.agent.reasoner import Reasoner
from kever.errors import ConfigError
from kever.tools.kb import KnowledgeBase
from kever.tools.kb.embedder import FakeEmbedder
from kever.tools.perception import FakePerceiver


SEARCH_FUNERAL = json.dumps({"calls": [{"tool": "kb_search", "query": "funeral"}]})
EMO_STORM = json.dumps({"calls": [{"tool": "emotions_of", "concept": "thunderstorm"}]})
DONE = json.dumps({"calls": []})


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEVER_CACHE_DIR", str(tmp_path_factory.mktemp("kbcache")))
        yield KnowledgeBase.open(embedder=FakeEmbedder(), progress=False, limit=3000)


def make(kb, lm, *, cfg: AgentConfig | None = None, ablate=(), fusion_update=None) -> Reasoner:
    preset = load_preset("offline")
    # the agent's stream at its design weight (the offline decision reads the learned table alone)
    fusion = load_fusion("vlm").model_copy(update=fusion_update or {})
    agent = ToolAgent(lm, kb, cfg or AgentConfig()) if lm is not None else None
    c = Components(
        preset=preset, system=load_system("full", ablate), fusion=fusion, perceiver=FakePerceiver(),
        kb=kb, embedder=kb.embedder, agent=agent,
    )
    return Reasoner(c)


def agent_cues(j):
    return [c for c in j.cues if c.source.startswith("agent:")]


def test_happy_path_files_hits_as_concept_cues_in_the_agent_stream(kb, demo_image):
    lm = FakeTextLM([json.dumps({"calls": [{"tool": "kb_search", "query": "funeral"},
                                           {"tool": "define", "label": "sadness"}]}), EMO_STORM])
    j = make(kb, lm).explain(demo_image, rationale=False)
    # two rounds: the model saw the hits of round 1 before its second reply
    assert len(lm.calls) == 2
    second = lm.calls[1].prompt
    assert "Results:" in second and "kb_search('funeral')" in second and "event.funeral" in second
    assert "define('sadness'): sadness:" in second
    names = [(c.name, c.round, c.ok) for c in j.tool_calls]
    assert names == [("kb_search", 1, True), ("define", 1, True), ("emotions_of", 2, True)]
    search, define, storm = j.tool_calls
    assert search.arguments == {"query": "funeral"} and "event.funeral" in search.hit_ids
    # define is shown to the model but is not evidence: no cue for it
    assert define.cue_id is None and define.hit_ids == []
    ac = agent_cues(j)
    assert [c.text for c in ac] == ["funeral", "thunderstorm"]
    assert all(c.family == "concept" and c.source == "agent:fake-textlm" and c.confidence == 0.6 for c in ac)
    assert [search.cue_id, storm.cue_id] == [c.id for c in ac]
    # ids continue after the perception cues
    assert int(ac[0].id[1:]) == max(int(c.id[1:]) for c in j.cues if not c.source.startswith("agent:")) + 1
    assert "agent" in j.streams and abs(sum(j.streams["agent"].values()) - 1) < 1e-4
    # the knowledge files: funeral -> sadness; storm clouds and lightning -> fear, awe. Those three lead,
    # and every positive label the two concepts do not carry stays below them.
    agent = j.streams["agent"]
    top3 = sorted(agent, key=agent.get, reverse=True)[:3]
    assert set(top3) == {"sadness", "fear", "awe"}, agent
    assert "consult" in j.timings and j.models["agent"] == "fake-textlm (json-grammar)"
    assert j.prompt_versions["consult"] == "consult@v1"
    # the JSON form carries the calls
    data = json.loads(j.model_dump_json())
    assert data["tool_calls"][0] == {"name": "kb_search", "arguments": {"query": "funeral"}, "hit_ids": search.hit_ids,
                                     "ok": True, "error": None, "round": 1, "cue_id": ac[0].id}
    assert not [w for w in j.warnings if "agent" in w]


def test_one_sad_concept_makes_sadness_the_agent_streams_top(kb, demo_image):
    j = make(kb, FakeTextLM([SEARCH_FUNERAL, DONE])).explain(demo_image, rationale=False)
    agent = j.streams["agent"]
    assert max(agent, key=agent.get) == "sadness", agent
    assert agent["sadness"] > 1 / len(agent) > agent["amusement"]


def test_agent_stream_reaches_the_decision_when_weighted(kb, demo_image):
    lm = lambda: FakeTextLM([json.dumps({"calls": [{"tool": "kb_search", "query": "funeral"},
                                                   {"tool": "emotions_of", "concept": "mourning"}]}), DONE])
    base = make(kb, None).explain(demo_image, rationale=False)
    heavy = make(kb, lm(), fusion_update={"weights": {**load_fusion("vlm").weights, "agent": 8.0}}).explain(
        demo_image, rationale=False)
    assert base.label != "sadness" and heavy.label == "sadness"
    assert "agent" not in base.streams and not base.tool_calls


def test_the_prompt_lists_the_cues_and_the_grammar_names_the_tools(kb, demo_image):
    lm = FakeTextLM([DONE])
    j = make(kb, lm).explain(demo_image, rationale=False)
    prompt = lm.calls[0].prompt
    for c in j.cues:
        assert f"{c.id} {c.family}: {c.text}" in prompt
    schema = lm.schemas[0]
    items = schema["properties"]["calls"]["items"]["anyOf"]
    assert [i["properties"]["tool"]["enum"] for i in items] == [["kb_search"], ["emotions_of"], ["define"]]
    assert items[2]["properties"]["label"]["enum"][:2] == ["amusement", "awe"]
    assert schema["properties"]["calls"]["maxItems"] == 3
    assert j.tool_calls == [] and not agent_cues(j)  # answered no calls: nothing added, no warning
    assert not [w for w in j.warnings if "agent" in w]


def test_malformed_json_then_corrected(kb, demo_image):
    lm = FakeTextLM(['{"calls": [{"tool": "kb_search", "query": "fun', SEARCH_FUNERAL, DONE])
    j = make(kb, lm).explain(demo_image, rationale=False)
    assert len(lm.calls) == 3
    assert "not usable: not JSON" in lm.calls[1].prompt  # the corrected retry says what was wrong
    bad, good = j.tool_calls
    assert (bad.ok, bad.name, good.ok, good.name) == (False, "(unparsed)", True, "kb_search")
    assert bad.arguments["raw"].startswith('{"calls"') and bad.error == "the reply did not parse"
    assert [c.text for c in agent_cues(j)] == ["funeral"]
    assert not [w for w in j.warnings if "agent" in w]


def test_malformed_twice_keeps_the_fixed_pipeline_and_warns(kb, demo_image):
    lm = FakeTextLM(["funeral please", '{"calls": [{"tool": "kb_search"}]}'])
    base = make(kb, None).explain(demo_image, rationale=False)
    j = make(kb, lm).explain(demo_image, rationale=False)
    assert len(lm.calls) == 2
    assert not agent_cues(j) and "agent" not in j.streams
    assert j.scores == base.scores and j.label == base.label
    (w,) = [w for w in j.warnings if "knowledge agent" in w]
    assert "invalid twice in round 1" in w and "fixed pipeline stands" in w
    # both proposals recorded, the second with its pydantic error
    assert [c.ok for c in j.tool_calls] == [False, False]
    assert j.tool_calls[1].name == "kb_search" and "query" in j.tool_calls[1].error


def test_emotion_words_run_but_are_not_evidence_and_cue_ids_are_invalid(kb, demo_image):
    lm = FakeTextLM([json.dumps({"calls": [{"tool": "emotions_of", "concept": "Sadness"},
                                           {"tool": "kb_search", "query": "sad grief"},
                                           {"tool": "kb_search", "query": "C1 colour, C2 face"}]}),
                     json.dumps({"calls": [{"tool": "emotions_of", "concept": "sadness"},
                                           {"tool": "kb_search", "query": "sad puppy"}]}), DONE])
    j = make(kb, lm).explain(demo_image, rationale=False)
    assert "not cue or evidence ids" in lm.calls[1].prompt  # the first reply was corrected
    ran = [c for c in j.tool_calls if c.ok]
    assert [c.arguments for c in ran] == [{"concept": "sadness"}, {"query": "sad puppy"}]
    assert ran[0].hit_ids and ran[0].cue_id is None  # the model saw the result, the decision does not
    assert [c.text for c in agent_cues(j)] == ["sad puppy"]  # a thing, not only an emotion word


def test_unknown_tool_name_is_an_invalid_call(kb, demo_image):
    lm = FakeTextLM([json.dumps({"calls": [{"tool": "web_search", "query": "funeral"}]}), SEARCH_FUNERAL, DONE])
    j = make(kb, lm).explain(demo_image, rationale=False)
    first = j.tool_calls[0]
    assert (first.name, first.ok) == ("web_search", False) and "unknown tool 'web_search'" in first.error
    assert "kb_search, emotions_of, define" in lm.calls[1].prompt
    assert [c.text for c in agent_cues(j)] == ["funeral"]


def test_label_outside_the_taxonomy_is_invalid(kb, demo_image):
    lm = FakeTextLM([json.dumps({"calls": [{"tool": "define", "label": "joyfulness"}]}),
                     json.dumps({"calls": [{"tool": "define", "label": "Awe"}]}), DONE])
    j = make(kb, lm).explain(demo_image, rationale=False)
    assert [(c.ok, c.arguments) for c in j.tool_calls] == [(False, {"label": "joyfulness"}), (True, {"label": "awe"})]
    assert "is not one of" in j.tool_calls[0].error


def test_rounds_and_calls_are_bounded(kb, demo_image):
    batches = iter([("funeral", "storm", "beach", "party"), ("wedding", "war", "puppy", "flood")] * 5)
    lm = FakeTextLM([], respond=lambda m, i: json.dumps({"calls": [{"tool": "kb_search", "query": q} for q in next(batches)]}))
    j = make(kb, lm, cfg=AgentConfig(max_rounds=2, max_calls=3)).explain(demo_image, rationale=False)
    assert len(lm.calls) == 2  # would call forever
    assert [c.round for c in j.tool_calls if c.ok] == [1, 1, 1, 2, 2, 2]
    over = [c for c in j.tool_calls if not c.ok]
    assert [c.arguments["query"] for c in over] == ["party", "flood"] and "limit of 3" in over[0].error
    assert [c.text for c in agent_cues(j)] == ["funeral", "storm", "beach", "wedding", "war", "puppy"]


def test_repeated_calls_are_not_run_again_and_a_cue_text_adds_no_evidence(kb, demo_image):
    base = make(kb, None).explain(demo_image, rationale=False)
    own = base.cues[0].text  # a perception cue's own words: already searched by the fixed pipeline
    lm = FakeTextLM([json.dumps({"calls": [{"tool": "kb_search", "query": "funeral"}, {"tool": "kb_search", "query": own}]}),
                     json.dumps({"calls": [{"tool": "kb_search", "query": "Funeral "}]}), DONE])
    j = make(kb, lm, cfg=AgentConfig(max_rounds=3)).explain(demo_image, rationale=False)
    assert len(lm.calls) == 2  # the second reply held only a repeat: nothing new, the loop ends
    rec = [(c.arguments["query"], c.ok, c.cue_id is not None) for c in j.tool_calls]
    assert rec == [("funeral", True, True), (own, True, False), ("Funeral", False, False)]
    assert "repeats an earlier call" in j.tool_calls[2].error
    assert [c.text for c in agent_cues(j)] == ["funeral"]
    assert not [w for w in j.warnings if "agent" in w]


def test_token_budget_bounds_the_loop(kb, demo_image):
    words = iter(["funeral", "wedding", "thunder", "puppy", "ruins", "circus"])
    padded = lambda m, i: json.dumps({"calls": [{"tool": "kb_search", "query": next(words)}]}).ljust(250)
    lm = FakeTextLM([], respond=padded)  # ~62 tokens a reply (4 characters a token)
    j = make(kb, lm, cfg=AgentConfig(max_rounds=5, max_total_tokens=100)).explain(demo_image, rationale=False)
    # the second reply may use only what is left of the budget; then the loop stops
    assert [c.max_new_tokens for c in lm.calls] == [96, 100 - 250 // 4]
    (w,) = [w for w in j.warnings if "knowledge agent" in w]
    assert "token budget of 100 spent" in w and "kept 2 earlier call(s)" in w


def test_model_failure_degrades_to_the_fixed_pipeline(kb, demo_image):
    def boom(messages, images):
        raise RuntimeError("llama.cpp crashed")

    j = make(kb, FakeTextLM(respond=boom)).explain(demo_image, rationale=False)
    assert any("knowledge agent failed (RuntimeError: llama.cpp crashed)" in w for w in j.warnings)
    assert not agent_cues(j) and j.label


def test_ablation_switches_the_agent_off(kb, demo_image):
    lm = FakeTextLM([SEARCH_FUNERAL, DONE])
    j = make(kb, lm, ablate=["agent"]).explain(demo_image, rationale=False)
    assert lm.calls == [] and not j.tool_calls and "agent" not in j.models


def test_consult_runs_once_not_on_the_deliberation_loop(kb, demo_image):
    lm = FakeTextLM([SEARCH_FUNERAL, DONE])
    r = make(kb, lm, fusion_update={"deliberate_margin": 1.0, "deliberate_rounds": 1})
    events = []
    r.explain(demo_image, rationale=False, on_event=events.append)
    started = [e["node"] for e in events if e["status"] == "start"]
    assert started.count("consult") == 1 and started.count("retrieve") == 2 and "deliberate" in started
    assert started.index("consult") == started.index("retrieve") + 1 and started.index("consult") + 1 == started.index("align")


def test_a_model_that_cannot_call_tools_is_refused(kb):
    with pytest.raises(ConfigError, match="cannot call tools"):
        ToolAgent(FakeVLM(), kb, AgentConfig())


@pytest.mark.slow
def test_native_tool_calls_from_an_openai_compatible_server(kb, demo_image):
    from kever.agent.models import ModelSpec, load_vlm
    from kever.agent.models.testing_server import FakeOpenAIServer

    script = [
        {"content": None, "tool_calls": [{"name": "kb_search", "arguments": {"query": "funeral"}}]},
        {"content": None, "tool_calls": [{"name": "emotions_of", "arguments": '{"concept": "mourn'}]},  # cut JSON
        {"content": None, "tool_calls": [{"name": "emotions_of", "arguments": {"concept": "mourning"}}]},
    ]
    with FakeOpenAIServer(script, default="no more calls") as srv:
        vlm = load_vlm(ModelSpec(backend="openai", base_url=srv.base_url, model="tool-model", options={"backoff_s": 0.01}))
        j = make(kb, vlm).explain(demo_image, rationale=False)
        reqs = list(srv.requests)
    assert len(reqs) == 3
    assert [t["function"]["name"] for t in reqs[0]["tools"]] == ["kb_search", "emotions_of", "define"]
    assert reqs[0]["tools"][2]["function"]["parameters"]["properties"]["label"]["enum"][0] == "amusement"
    # round 2 sees round 1 as an assistant tool call and its result as a tool message
    roles = [m["role"] for m in reqs[1]["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert reqs[1]["messages"][2]["tool_calls"][0]["function"]["name"] == "kb_search"
    assert "event.funeral" in reqs[1]["messages"][3]["content"]
    assert "arguments are not JSON" in reqs[2]["messages"][-1]["content"]  # the corrected retry
    assert [(c.name, c.ok, c.round) for c in j.tool_calls] == [("kb_search", True, 1), ("emotions_of", False, 2), ("emotions_of", True, 2)]
    assert [c.text for c in agent_cues(j)] == ["funeral", "mourning"]
    assert j.models["agent"].endswith("(native-tools)") and "agent" in j.streams


def test_chat_template_tool_calls(kb, demo_image):
    from kever.agent.tool_callers import TemplateCaller, parse_template_calls

    class TemplateModel:
        model_id = "fake-template-lm"
        supports_tools = True

        def __init__(self, replies):
            self.replies = list(replies)
            self.seen = []

        def generate(self, messages, *, tools=None, max_new_tokens=256):
            self.seen.append((messages, tools))
            return self.replies.pop(0)

    lm = TemplateModel(['<tool_call>\n{"name": "kb_search", "arguments": {"query": "funeral"}}\n</tool_call>',
                        "That is enough."])
    j = make(kb, lm).explain(demo_image, rationale=False)
    assert isinstance(ToolAgent(lm, kb, AgentConfig()).caller, TemplateCaller)
    messages, tools = lm.seen[1]
    assert [t["function"]["name"] for t in tools] == ["kb_search", "emotions_of", "define"]
    call = messages[2]["tool_calls"][0]["function"]
    assert call == {"name": "kb_search", "arguments": {"query": "funeral"}}  # a mapping, as HF templates take it
    assert messages[3]["role"] == "tool"
    assert [c.text for c in agent_cues(j)] == ["funeral"] and j.tool_calls[0].ok
    assert parse_template_calls("<tool_call>{oops</tool_call>").error.startswith("a <tool_call> block is not JSON")
    assert parse_template_calls("No calls needed.").calls == []


def test_hf_text_lm_renders_tools_into_its_chat_template():
    from kever.agent.models.hf_textlm import HFTextLM
    from kever.agent.models.tiny import smollm2_tokenizer
    from kever.agent.tool_callers import openai_tools
    from kever.tools.kb.agent_tools import make_kb_tools

    tok = smollm2_tokenizer()
    tok.chat_template = (
        "{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.tool_calls %}{% for tc in m.tool_calls %}"
        "<tool_call>{{ tc.function | tojson }}</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    lm = HFTextLM.__new__(HFTextLM)
    lm.tokenizer = tok
    assert lm.supports_tools

    class KB:  # only what make_kb_tools reads when building the tools
        def taxonomy(self, name):
            return type("T", (), {"labels": ["awe", "fear"]})()

    tools = openai_tools(make_kb_tools(KB()))
    msgs = [{"role": "user", "content": "C1 object: coffin"},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "kb_search", "arguments": {"query": "funeral"}}}]},
            {"role": "tool", "content": "event.funeral: funeral (sadness 0.95)", "tool_call_id": "c1"}]
    text = tok.decode(lm._prompt_ids(msgs, tools)["input_ids"][0])
    assert '"name": "kb_search"' in text and '"query"' in text
    assert '<tool_call>{"name": "kb_search", "arguments": {"query": "funeral"}}</tool_call>' in text
    assert "event.funeral: funeral (sadness 0.95)" in text
