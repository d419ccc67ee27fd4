"""Retrieval API over a small real index (curated + first 3000 SenticNet concepts + first
3000 EmoLex words) embedded with FakeEmbedder: plumbing, bad input, agent tools."""

from __future__ import annotations

import json
import math
import os

import pytest

from kever.errors import InputError, KnowledgeError
from kever.tools.kb import Hit, KnowledgeBase
from kever.tools.kb.embedder import FakeEmbedder

LIMIT = 3000


@pytest.fixture(scope="session")
def kb(session_cache) -> KnowledgeBase:
    old = os.environ.get("KEVER_CACHE_DIR")
    os.environ["KEVER_CACHE_DIR"] = str(session_cache)
    try:
        return KnowledgeBase.open(FakeEmbedder(), progress=False, limit=LIMIT)
    finally:
        if old is None:
            os.environ.pop("KEVER_CACHE_DIR", None)
        else:
            os.environ["KEVER_CACHE_DIR"] = old


def test_search_returns_cited_weighted_hits(kb):
    hits = kb.search("a snake in the grass", k=10)
    assert 0 < len(hits) <= 10
    assert all(isinstance(h, Hit) and h.id and h.source and h.text for h in hits)
    assert hits == sorted(hits, key=lambda h: -h.score)
    snake = next(h for h in hits if h.id == "animal.snake")
    assert snake.kind == "cue" and snake.family == "animal"
    assert max(snake.weights, key=snake.weights.get) == "fear"
    assert "Öhman & Mineka 2001" in snake.source and snake.citations
    assert all(set(h.weights) <= {"amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"}
               for h in hits)


def test_search_kinds_filter_and_many(kb):
    hits = kb.search("funeral", k=5, kinds=["cue"])
    assert hits and all(h.kind == "cue" for h in hits)
    assert hits[0].id == "event.funeral"
    defs = kb.search("vastness", k=3, kinds=["definition"])
    assert defs and all(h.kind == "definition" for h in defs)
    many = kb.search_many(["funeral", "birthday party", "dark"], k=4)
    assert len(many) == 3 and all(len(m) <= 4 for m in many)
    assert many[1][0].id == "event.birthday"
    assert kb.search_many([], k=3) == []
    with pytest.raises(InputError, match="unknown entry kind"):
        kb.search("x", kinds=["nonsense"])


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_an_input_error(kb, query):
    with pytest.raises(InputError, match="empty"):
        kb.search(query)


def test_enormous_query_is_capped(kb, caplog):
    hits = kb.search("storm " * 5000, k=3)
    assert len(hits) <= 3
    assert any("cut to" in r.message for r in caplog.records)


def test_bad_k(kb):
    with pytest.raises(InputError):
        kb.search("fire", k=0)


def test_non_english_says_little_or_nothing(kb):
    hits = kb.search("ресторан ночью", k=10)  # Cyrillic: no lexical match, weak embedding
    assert all(h.score < 0.02 for h in hits)


def test_emotions_of(kb):
    p = kb.emotions_of("snake")
    assert p.match == "exact" and p.taxonomy == "mikels8"
    assert math.isclose(sum(p.distribution.values()), 1.0, abs_tol=1e-4)
    assert max(p.distribution, key=p.distribution.get) == "fear"
    assert p.valence is not None and p.valence < 0
    assert any(h.id == "animal.snake" for h in p.evidence)
    e6 = kb.emotions_of("wedding", taxonomy="emotion6")
    assert list(e6.distribution) == ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
    assert max(e6.distribution, key=e6.distribution.get) == "joy"
    s = kb.emotions_of("funerals", taxonomy="sentiment")
    assert s.match == "variant" and s.distribution["negative"] > 0.9
    # no entry for the phrase: its words are looked up one by one, and only "clown" has entries
    assert kb.lookup("grinning clown face") == []
    tok = kb.emotions_of("grinning clown face")
    assert tok.match == "tokens"
    assert [h.id for h in tok.evidence] == [h.id for h in kb.lookup("clown")] != []
    assert kb.resolve("funeral", search=False)[1] == "exact" and kb.resolve("zzqxv", search=False) == ([], "none")
    unknown = kb.emotions_of("zzqxv")
    assert unknown.match == "none" and unknown.valence is None
    assert all(math.isclose(v, 1 / 8) for v in unknown.distribution.values())


def test_unknown_taxonomy_and_label(kb):
    with pytest.raises(KnowledgeError) as ei:
        kb.emotions_of("snake", taxonomy="ekman99")
    assert "mikels8" in str(ei.value) and "plutchik8" in str(ei.value)
    with pytest.raises(KnowledgeError, match="valid labels"):
        kb.define("happiness")
    with pytest.raises(KnowledgeError):
        kb.taxonomy("nope")


def test_define_and_taxonomy(kb):
    d = kb.define("awe")
    assert "vast" in d.definition and d.appraisal and "Keltner & Haidt 2003" in d.source
    t = kb.taxonomy("emotion6")
    assert t.labels[-1] == "neutral" and set(t.definitions) == set(t.labels)
    assert kb.define("Joy", taxonomy="plutchik8").label == "joy"


def test_map_distribution(kb):
    out = kb.map_distribution({"joy": 1.0}, "emotion6", "mikels8")
    assert math.isclose(sum(out.values()), 1.0) and out["anger"] == 0
    assert out["amusement"] > 0 and out["contentment"] > 0
    sent = kb.map_distribution({"fear": 0.5, "awe": 0.5}, "mikels8", "sentiment")
    assert math.isclose(sent["positive"], 0.5) and math.isclose(sent["negative"], 0.5)
    via = kb.map_distribution({"trust": 1.0}, "plutchik8", "plutchik8")
    assert via["trust"] == 1.0
    two_step = kb.map_distribution({"neutral": 1.0}, "emotion6", "plutchik8")  # via mikels8
    assert math.isclose(sum(two_step.values()), 1.0)
    with pytest.raises(KnowledgeError, match="valid labels"):
        kb.map_distribution({"happy": 1.0}, "emotion6", "mikels8")


def test_expand(kb):
    related = kb.expand("funeral", n=5)
    assert len(related) == 5 and "burial" in related
    assert "funeral" not in related
    sn = kb.expand("abandon", n=3)  # a SenticNet concept (within the first 3000)
    assert len(sn) == 3


def test_agent_tools(kb):
    from langchain_core.tools import BaseTool
    from pydantic import ValidationError

    from kever.tools.kb.agent_tools import ToolResult, make_kb_tools

    tools = {t.name: t for t in make_kb_tools(kb, k=3, shown=2)}
    assert set(tools) == {"kb_search", "emotions_of", "define"}
    assert all(isinstance(t, BaseTool) and t.args_schema is not None for t in tools.values())
    text, res = tools["kb_search"].func(query="thunderstorm")
    assert isinstance(res, ToolResult) and res.evidence and 0 < len(res.hits) <= 3
    assert all(h.weights and h.kind != "definition" for h in res.hits)
    assert text.count("; ") == min(2, len(res.hits)) - 1 and res.hits[0].id in text  # what the model reads
    text, res = tools["emotions_of"].func(concept="puppy")
    assert res.hits and text.startswith("amusement") and "from " in text
    text, res = tools["define"].func(label="fear")
    assert text.startswith("fear: ") and not res.evidence and res.hits == []
    text, res = tools["define"].func(label="joyfulness")
    assert text.startswith("error: 'joyfulness' is not a label") and res.error
    # through LangChain: content for the model, the ToolResult as the artifact
    msg = tools["kb_search"].invoke({"type": "tool_call", "id": "c1", "name": "kb_search", "args": {"query": "funeral"}})
    assert "event.funeral" in msg.content and msg.artifact.hits[0].id
    for bad in ({"query": ""}, {"query": "x" * 81}, {"query": "C3 colour"}, {"query": "storm", "k": 3}):
        with pytest.raises(ValidationError):
            tools["kb_search"].args_schema.model_validate(bad)


def test_get_by_id(kb):
    hits = kb.get(["def.mikels8.awe", "event.funeral"])
    assert [h.id for h in hits] == ["def.mikels8.awe", "event.funeral"]
    assert hits[1].weights["sadness"] > 0.9 and hits[0].kind == "definition"
    assert kb.get([]) == []
    with pytest.raises(KnowledgeError, match="no knowledge entry"):
        kb.get(["event.funeral", "nope.nothing"])
