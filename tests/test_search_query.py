"""``kever search`` and ``Index.search`` over a real index built with the ``fake`` preset:
each query mode's score is checked against the stored vectors by hand, the filters against
the stored values, and the CLI's output and bad-input lines in a real process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kever.errors import InputError
from kever.search import Index
from kever.search.build import build_index
from kever.search.query import emotion_profile, parse_range
from kever.search.store import Store

MIKELS8 = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")


@pytest.fixture(scope="module")
def fake_reasoner():
    from kever.agent.reasoner import Reasoner

    return Reasoner.from_preset("fake")


@pytest.fixture(scope="module")
def built(tmp_path_factory, fake_reasoner) -> Path:
    root = tmp_path_factory.mktemp("collection")
    rng = np.random.default_rng(0)
    for i in range(24):
        folder = root / ("beach" if i % 3 == 0 else "city" if i % 3 == 1 else "home/kids")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (36, 48, 3), dtype=np.uint8)).save(folder / f"p{i:02d}.jpg")
    build_index(root, reasoner_factory=lambda p: fake_reasoner, preset="fake", batch_size=8)
    return root


@pytest.fixture(scope="module")
def index(built, fake_reasoner) -> Index:
    return Index.open(built / ".kever-index", reasoner=fake_reasoner)


def rows(index: Index) -> dict[str, dict]:
    return {r["path"]: r for r in index.store.get("path != ''", limit=10_000)}


def test_emotion_search_ranks_by_the_photos_probability_of_it(index):
    stored = rows(index)
    res = index.search(emotion="awe", limit=5)
    want = sorted(stored, key=lambda p: -stored[p]["canonical"][1])[:5]
    assert [h.path for h in res.hits] == want
    for h in res.hits:
        assert h.score == pytest.approx(stored[h.path]["canonical"][1], abs=1e-4)
    assert res.query["mode"] == "emotion" and res.total == 24


def test_other_label_sets_and_words_map_as_explain_does(index, fake_reasoner):
    kb = fake_reasoner.c.kb
    joy = emotion_profile("joy", kb)  # an emotion6 label: its curated mapping to Mikels 8
    mapped = kb.map_distribution({"joy": 1.0}, "emotion6", "mikels8")
    np.testing.assert_allclose(joy, np.array([mapped[m] for m in MIKELS8]) / sum(mapped.values()), atol=1e-4)
    calm = emotion_profile("calm", kb)  # any word: its knowledge-base profile, as `--labels calm,...`
    prof = kb.emotions_of("calm", "mikels8").distribution
    np.testing.assert_allclose(calm, [prof[m] for m in MIKELS8], atol=1e-4)
    stored = rows(index)
    res = index.search(emotion="calm", limit=3)
    scores = {p: float(np.dot(calm, r["canonical"])) for p, r in stored.items()}
    assert [h.path for h in res.hits] == sorted(scores, key=lambda p: -scores[p])[:3]
    with pytest.raises(InputError, match="unknown emotion word 'blorfish'"):
        index.search(emotion="blorfish")


def test_text_search_blends_content_and_implied_emotion(index, fake_reasoner):
    q = "church with a bright sky"
    res = index.search(q, limit=24)
    dim = index.store.manifest.dim
    qv = fake_reasoner.c.embedder.encode([q])[0]
    prof = fake_reasoner.c.kb.emotions_of(q, "mikels8")
    r = np.array([prof.distribution[m] for m in MIKELS8]) if prof.match != "none" else np.zeros(8)
    full = {x["path"]: np.asarray(x["vector"]) for x in rows(index).values()}
    for h in res.hits:
        v = full[h.path]
        assert h.score == pytest.approx(0.7 * float(qv @ v[:dim]) + 0.3 * float(r @ v[dim:]), abs=1e-3)
    assert [h.score for h in res.hits] == sorted((h.score for h in res.hits), reverse=True)


def test_like_an_indexed_photo_excludes_itself_and_ranks_by_both(index, built):
    stored = rows(index)
    example = "beach/p00.jpg"
    res = index.search(like=built / example, limit=5)
    assert example not in [h.path for h in res.hits]
    dim = index.store.manifest.dim
    ev = np.asarray(stored[example]["vector"])
    t, e = ev[:dim], ev[dim:] / np.linalg.norm(ev[dim:])
    want = {p: 0.5 * float(t @ np.asarray(r["vector"])[:dim]) + 0.5 * float(e @ np.asarray(r["canonical"]))
            for p, r in stored.items() if p != example}
    assert [h.path for h in res.hits] == sorted(want, key=lambda p: -want[p])[:5]


def test_like_a_new_photo_judges_it(index, tmp_path):
    p = tmp_path / "new.png"
    Image.new("RGB", (40, 30), (20, 90, 200)).save(p)
    res = index.search(like=p, limit=3)
    assert len(res.hits) == 3 and res.query["mode"] == "like"
    with pytest.raises(InputError, match="no such photo"):
        index.search(like=tmp_path / "missing.jpg")


def test_filters_hold_and_exclude(index):
    stored = rows(index)
    va = sorted(r["valence"] for r in stored.values())
    lo = va[len(va) // 2]  # about half the photos are below it
    res = index.search(emotion="contentment", valence=(lo, 1.0), limit=50)
    assert res.hits and all(h.valence >= lo - 1e-6 for h in res.hits)
    assert len(res.hits) == sum(r["valence"] >= lo for r in stored.values()) < 24
    res = index.search(emotion="fear", folder="home/", limit=50)
    assert sorted(h.path for h in res.hits) == sorted(p for p in stored if p.startswith("home/"))
    conf = sorted(r["confidence"] for r in stored.values())[-5]
    res = index.search(emotion="awe", min_confidence=conf, limit=50)
    assert len(res.hits) == 5 and all(h.confidence >= conf - 1e-4 for h in res.hits)
    # a region alone ranks by nearness to its centre
    res = index.search(valence="-1..1", arousal="0..1", limit=3)
    assert res.query["mode"] == "filter" and len(res.hits) == 3
    assert index.search(emotion="awe", folder="nowhere/").hits == []
    # a folder name with LIKE wildcards matches literally
    assert index.search(emotion="awe", folder="home_%").hits == []


def test_each_hit_has_a_reason_from_its_evidence(index):
    stored = rows(index)
    for h in index.search(emotion="sadness", limit=5).hits:
        ev = json.loads(stored[h.path]["evidence"])
        cited = next(e for e in ev if e["ref"] == h.evidence_ref)
        best = max(ev, key=lambda e: e["pushes"].get("sadness", 0.0))
        assert cited["ref"] == best["ref"]
        assert h.reason.endswith(f"[{h.evidence_ref}]") and "\n" not in h.reason
        assert " ".join(cited["text"].split())[:20] in h.reason
        if best["pushes"].get("sadness", 0.0) > 0:
            # the arrow (or, for evidence without a cue, the head) names what the item raises
            assert "→ sadness: " in h.reason or h.reason.startswith("sadness: ")


def test_ranges_and_limits_are_checked(index):
    assert parse_range("0.3..1", -1, 1, "valence") == (0.3, 1.0)
    assert parse_range("..0.4", 0, 1, "arousal") == (0.0, 0.4)
    for bad in ("1..0.3", "abc", "0.2", "-2..0", ".."):
        with pytest.raises(InputError):
            parse_range(bad, -1, 1, "valence")
    with pytest.raises(InputError, match="limit"):
        index.search(emotion="awe", limit=0)
    with pytest.raises(InputError, match="at most"):
        index.search("x" * 501)
    with pytest.raises(InputError, match="nothing to search for"):
        index.search()
    with pytest.raises(InputError, match="not both"):
        index.search("calm sea", like=__file__)


def kever(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kever", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_cli_search_json_rich_and_no_results(built):
    r = kever("search", built, "--emotion", "awe", "--limit", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["hits"]) == 3 and {"path", "score", "label", "reason"} <= set(out["hits"][0])
    r = kever("search", built / ".kever-index", "--emotion", "awe", "--limit", "2")
    assert r.returncode == 0 and out["hits"][0]["path"] in r.stdout and "3 of 24" not in r.stdout
    r = kever("search", built, "--emotion", "awe", "--folder", "nowhere/")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "kever search: no photos match emotion=awe, folder=nowhere/ among 24 indexed"]


def test_cli_bad_input_is_one_line(built, tmp_path):
    cases = []
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((("index", empty), 2, "no photos in"))
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("x")
    (texts / "b.pdf").write_bytes(b"%PDF")
    cases.append((("index", texts), 2, "(2 other files"))
    cases.append((("search", tmp_path / "nope", "--emotion", "awe"), 2, "no index at"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.bin").write_bytes(b"\0" * 10)
    cases.append((("search", foreign, "--emotion", "awe"), 2, "is not a kever search index"))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(built / ".kever-index", corrupt)
    (corrupt / "kever-index.json").write_text("{ not json")
    cases.append((("search", corrupt, "--emotion", "awe"), 2, "is corrupt"))
    broken = tmp_path / "broken"
    shutil.copytree(built / ".kever-index", broken)
    shutil.rmtree(broken / "photos.lance")
    cases.append((("search", broken, "--emotion", "awe"), 2, "photo table is missing or corrupt"))
    cases.append((("search", built, "--emotion", "blorfish"), 2, "unknown emotion word"))
    cases.append((("search", built, "--valence", "2..3"), 2, "must lie within -1..1"))
    cases.append((("search", built), 2, "nothing to search for"))
    for args, code, words in cases:
        r = kever(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == code, (args, r.stderr)
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, (args, r.stderr)
    assert Store.open(built).count() == 24  # nothing indexed was lost
