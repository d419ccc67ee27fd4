"""The knowledge base with the real all-MiniLM-L6-v2 embedder, real SenticNet 6 and NRC
EmoLex (a subset: the first 1500 rows of each, set through KEVER_KB_LIMIT so that the CLI
opens the same index), and the ``kever kb`` commands."""

from __future__ import annotations

import json
import os

import pytest

from kever.cli import main

LIMIT = "1500"


@pytest.fixture(scope="session")
def embedder():
    from kever.tools.kb.embedder import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def real_kb(session_cache, embedder):
    from kever.tools.kb import KnowledgeBase

    saved = {k: os.environ.get(k) for k in ("KEVER_CACHE_DIR", "KEVER_KB_LIMIT")}
    os.environ.update(KEVER_CACHE_DIR=str(session_cache), KEVER_KB_LIMIT=LIMIT)
    try:
        return KnowledgeBase.open(embedder, progress=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def cli_env(real_kb, monkeypatch):
    monkeypatch.setenv("KEVER_KB_LIMIT", LIMIT)
    return real_kb


@pytest.mark.slow
def test_real_index_search_quality(real_kb, embedder):
    assert real_kb.embedder is embedder and real_kb.manifest["embedder"].endswith("all-MiniLM-L6-v2")
    assert real_kb.manifest["counts"]["senticnet"] == int(LIMIT)
    ids = [h.id for h in real_kb.search("crowd cheering at a stadium", k=10)]
    assert "body.crowd_happy" in ids[:3]
    storm = [h.id for h in real_kb.search("dark stormy sky with lightning", k=10, kinds=["cue"])]
    assert "lighting.storm" in storm[:3]
    # paraphrase with no shared words still reaches the curated entry through the embedding
    grief = [h.id for h in real_kb.search("people weeping beside a casket", k=10, kinds=["cue"])]
    assert {"event.funeral", "object.coffin", "action.cry"} & set(grief[:3])
    assert real_kb.search("xqzvw", k=10) == []


@pytest.mark.slow
def test_real_emotions_and_batch(real_kb):
    assert max((p := real_kb.emotions_of("thunderstorm")).distribution, key=p.distribution.get) == "fear"
    happy = real_kb.emotions_of("smiling face", taxonomy="sentiment")
    assert happy.distribution["positive"] > 0.8
    abandon = real_kb.emotions_of("abandon")  # SenticNet + EmoLex, no curated entry
    assert {h.id.split(":")[0] for h in abandon.evidence} == {"senticnet", "emolex"}
    assert abandon.valence < 0
    cues = ["dark", "smiling face", "beach", "snake", "funeral", "fireworks", "grey sky", "dog", "crying child",
            "mountain", "blood", "party", "war", "flowers", "storm", "garbage", "cake", "hospital", "sunset", "crowd"]
    batches = real_kb.search_many(cues, k=5)
    assert len(batches) == 20 and all(1 <= len(b) <= 5 for b in batches)
    assert real_kb.search_many(cues[:2], k=5)[1][0].id == batches[1][0].id


@pytest.mark.slow
def test_cli_search_json(cli_env, capsys):
    main(["kb", "search", "funeral", "--k", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert len(out["hits"]) == 3 and out["hits"][0]["id"] in ("event.funeral", "emolex:funeral", "senticnet:funeral")
    assert all(h["source"] and h["id"] for h in out["hits"])


@pytest.mark.slow
def test_cli_text_commands(cli_env, capsys):
    main(["kb", "search", "a puppy playing"])
    assert "source:" in capsys.readouterr().out
    main(["kb", "stats"])
    out = capsys.readouterr().out
    assert "entries:" in out and "by family:" in out
    main(["kb", "define", "awe"])
    assert "Keltner & Haidt 2003" in capsys.readouterr().out
    main(["kb", "emotions", "snake", "--taxonomy", "emotion6", "--json"])
    assert json.loads(capsys.readouterr().out)["taxonomy"] == "emotion6"
    main(["kb", "build"])
    assert "knowledge index ready" in capsys.readouterr().out
    with pytest.raises(SystemExit) as ei:
        main(["kb", "emotions", "xqzzyv"])
    assert ei.value.code == 1 and "no knowledge entry matched 'xqzzyv'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["kb", "search", "   "], "empty knowledge query"),
        (["kb", "emotions", "snake", "--taxonomy", "bogus"], "unknown taxonomy 'bogus'"),
        (["kb", "define", "happiness"], "not a mikels8 label"),
        (["kb", "build", "--lexicon", "/nonexistent/lexicon.txt"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line(cli_env, capsys, argv, needle):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_enormous_query_says_it_was_cut(cli_env, capsys):
    main(["kb", "search", "storm " * 1000, "--k", "2", "--json"])
    cap = capsys.readouterr()
    assert "cut to" in cap.err and len(json.loads(cap.out)["hits"]) <= 2


@pytest.mark.slow
def test_cli_non_english_says_nothing_matched(cli_env, capsys):
    main(["kb", "search", "xqzvw"])
    assert "no knowledge entry matched" in capsys.readouterr().out
