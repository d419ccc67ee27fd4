"""The llama.cpp backend (xllamacpp) with the real Qwen2.5-Coder-1.5B GGUF, and the knowledge
agent on it. Skipped cleanly where the model file is absent: pull it once with
``kever models pull --preset offline-llm`` (kever's default cache) or point KEVER_LLM_GGUF at
a copy. The tests use it in place (they never copy 1 GB into the per-session cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kever.agent.models import ModelSpec, load_text_lm
from kever.agent.models.gguf_parts import check, lookup

pytestmark = pytest.mark.slow

MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"


def _user_cache_file() -> Path:
    """Where `kever models pull` puts the file for this user, whatever the tests' cache env."""
    env = os.environ.get("KEVER_LLM_GGUF")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) / "kever" if xdg else Path.home() / ".cache" / "kever"
    return root / "cache" / "models" / lookup(MODEL).file


@pytest.fixture(scope="module")
def gguf() -> Path:
    pytest.importorskip("xllamacpp", reason="the llm extra is not installed (pip install 'kever[llm]')")
    path = _user_cache_file()
    if not path.is_file():
        pytest.skip(f"{path} is absent (kever models pull --preset offline-llm)")
    problem = check(lookup(MODEL), path)
    if problem:
        pytest.skip(problem)
    return path


@pytest.fixture(scope="module")
def lm(gguf):
    return load_text_lm(ModelSpec(backend="llamacpp", model=str(gguf), options={"n_ctx": 2048}))


def test_loads_with_the_cores_and_writes_english(lm):
    assert lm.threads == len(os.sched_getaffinity(0)) and lm.n_ctx == 2048
    out = lm.generate([{"role": "user", "content": "In one short sentence: how does a thunderstorm make people feel?"}],
                      max_new_tokens=24)
    words = out.lower().split()
    assert len(words) >= 4 and any(w.strip(".,") in {"feel", "fear", "scared", "anxious", "afraid", "nervous", "uneasy", "excited"} for w in words), out
    assert 0 < lm.last.completion_tokens <= 24


def test_structured_call_fits_the_schema_and_reuses_the_prompt_cache(lm):
    schema = {"type": "object", "properties": {"calls": {"type": "array", "maxItems": 2, "items": {"anyOf": [
        {"type": "object", "properties": {"tool": {"type": "string", "enum": ["kb_search"]}, "query": {"type": "string", "maxLength": 40}},
         "required": ["tool", "query"], "additionalProperties": False}]}}}, "required": ["calls"], "additionalProperties": False}
    system = {"role": "system", "content": "Tools: kb_search(query). Reply with JSON only."}
    first = lm.generate_json([system, {"role": "user", "content": "Cues: coffin; people in black; church"}], schema, max_new_tokens=48)
    data = json.loads(first)
    assert set(data) == {"calls"} and all(c["tool"] == "kb_search" and c["query"] for c in data["calls"])
    assert "\n" not in first  # compact separators, not pretty-printed (half the tokens)
    # the same system prompt again: its tokens come from the KV cache
    lm.generate_json([system, {"role": "user", "content": "Cues: birthday cake; candles"}], schema, max_new_tokens=48)
    assert lm.last.cached_tokens >= 10


def test_the_agent_emits_tool_calls_that_parse(lm, tmp_path_factory):
    from kever.agent.config import AgentConfig
    from kever.agent.consult import ToolAgent
    from kever.agent.judgment import Cue
    from kever.tools.kb import KnowledgeBase
    from kever.tools.kb.embedder import FakeEmbedder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEVER_CACHE_DIR", str(tmp_path_factory.mktemp("kbcache")))
        kb = KnowledgeBase.open(embedder=FakeEmbedder(), progress=False, limit=3000)
    agent = ToolAgent(lm, kb, AgentConfig(max_rounds=1))
    cues = [Cue(id="C1", family="object", text="coffin", source="perception:test", confidence=0.8),
            Cue(id="C2", family="people", text="people in black clothes", source="perception:test", confidence=0.7),
            Cue(id="C3", family="scene", text="church interior", source="perception:test", confidence=0.6)]
    run = agent.run(cues)
    assert run.calls, "the model proposed no call for a funeral scene"
    assert all(c.ok for c in run.calls), [c.error for c in run.calls]
    assert {c.name for c in run.calls} <= {"kb_search", "emotions_of", "define"}
    assert run.evidence and not run.warnings
