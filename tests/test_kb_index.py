"""The on-disk index: versioned by its sources, atomic, rebuilt when stale or corrupt,
concurrent builds, imported lexicons. Small indexes (curated + a few hundred lexicon rows)
with FakeEmbedder; each test has its own cache dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kever.errors import KnowledgeError
from kever.knowledge import knowledge_dir
from kever.knowledge.loader import load_knowledge
from kever.tools.kb import KnowledgeBase
from kever.tools.kb.embedder import FakeEmbedder

_KN = load_knowledge()
#: every cue entry of every file (the derived imagenet.yaml included) + one definition per taxonomy label
N_CURATED = sum(len(cf.entries) for cf in _KN.cue_files.values()) + sum(len(t.emotions) for t in _KN.taxonomies.values())
LIMIT = 300


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("KEVER_CACHE_DIR", str(d))
    return d


def _open(**kw) -> KnowledgeBase:
    kw.setdefault("limit", LIMIT)
    return KnowledgeBase.open(FakeEmbedder(), progress=False, **kw)


def test_build_once_then_reuse(cache):
    with pytest.raises(KnowledgeError, match="has not been built"):
        _open(build=False)
    kb = _open()
    path = kb.path
    assert path.parent == cache / "kb" and (path / "manifest.json").is_file()
    assert kb.manifest["counts"] == {"curated": N_CURATED, "senticnet": LIMIT, "emolex": kb.manifest["counts"]["emolex"]}
    mtime = (path / "kb.sqlite").stat().st_mtime_ns
    kb2 = _open(build=False)
    assert kb2.path == path and (path / "kb.sqlite").stat().st_mtime_ns == mtime
    assert not list((cache / "kb").glob(".tmp-*"))
    s = kb2.stats()
    assert s["entries"] == kb.manifest["entries"] and s["size_bytes"] > 0 and s["by_family"]["face"] == 15


def test_changed_curated_file_builds_a_new_index(cache, tmp_path, monkeypatch):
    first = _open().path
    kdir = tmp_path / "knowledge"
    shutil.copytree(knowledge_dir(), kdir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setenv("KEVER_KNOWLEDGE_DIR", str(kdir))
    assert _open().path == first  # same content, same key
    f = kdir / "cues" / "events.yaml"
    f.write_text(f.read_text().replace("A funeral, burial or memorial", "A funeral or a burial or a memorial"))
    kb = _open()
    assert kb.path != first
    assert "A funeral or a burial" in kb.search("funeral", k=3, kinds=["cue"])[0].text
    # only the changed entry is embedded again; the rest is reused from the first index
    assert kb.manifest["embedded_fresh"] == 1 and kb.manifest["embedded_reused"] == kb.manifest["embedded"] - 1
    # a different embedder or subset is a different index too
    assert _open(limit=LIMIT + 1).path not in (first, kb.path)


@pytest.mark.parametrize("damage", ["truncate_sqlite", "drop_embeddings", "garble_manifest"])
def test_corrupt_index_is_detected_and_rebuilt(cache, damage):
    path = _open().path
    if damage == "truncate_sqlite":
        with open(path / "kb.sqlite", "r+b") as f:
            f.truncate(4096)
    elif damage == "drop_embeddings":
        (path / "emb.npy").unlink()
    else:
        (path / "manifest.json").write_text("{not json")
    with pytest.raises(KnowledgeError, match="corrupt|inconsistent"):
        _open(build=False)
    kb = _open()
    assert kb.path == path and kb.search("funeral", k=1)[0].id == "event.funeral"


def test_leftover_temp_dir_from_a_crash_is_harmless(cache):
    root = cache / "kb"
    root.mkdir(parents=True)
    (root / ".tmp-deadbeef-1-abc").mkdir()
    (root / ".tmp-deadbeef-1-abc" / "kb.sqlite").write_bytes(b"half written")
    assert _open().search("wedding", k=1)[0].id == "event.wedding"


def test_concurrent_builds_leave_one_good_index(cache):
    code = (
        "from kever.tools.kb import KnowledgeBase\n"
        "from kever.tools.kb.embedder import FakeEmbedder\n"
        f"kb = KnowledgeBase.open(FakeEmbedder(), progress=False, limit={LIMIT})\n"
        "print(kb.path, kb.search('funeral', k=1)[0].id)\n"
    )
    env = {**os.environ, "KEVER_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    lines = {o[0].strip() for o in outs}
    assert len(lines) == 1 and lines.pop().endswith("event.funeral")
    assert len(list((cache / "kb").glob("index-*"))) == 1
    assert not list((cache / "kb").glob(".tmp-*"))


def test_unknown_source(cache):
    with pytest.raises(KnowledgeError, match="unknown knowledge source"):
        _open(sources=("curated", "wikipedia"))


def test_curated_only_index(cache):
    kb = _open(sources=("curated",))
    assert kb.manifest["counts"] == {"curated": N_CURATED}
    assert kb.emotions_of("thunderstorm").evidence[0].id == "lighting.storm"


# --------------------------------------------------------------------------- user lexicons

def test_bad_lexicon_file(cache, tmp_path):
    bad = tmp_path / "words.csv"
    bad.write_text("word,score\nhappy,1\n")
    with pytest.raises(KnowledgeError, match="no format"):
        _open(lexicons=[bad])
    with pytest.raises(KnowledgeError, match="does not exist"):
        _open(lexicons=[tmp_path / "missing.txt"])


def test_import_small_lexicons_in_both_formats(cache, tmp_path):
    vad = tmp_path / "vad.txt"
    vad.write_text("Word\tValence\tArousal\tDominance\nsunbeam\t0.900\t0.400\t0.500\ngloom\t0.100\t0.300\t0.200\n")
    emolex = tmp_path / "emolex.txt"
    emolex.write_text("".join(f"gloomful\t{e}\t{int(e in ('sadness', 'negative'))}\n" for e in
                              ["anger", "anticipation", "disgust", "fear", "joy", "negative", "positive", "sadness", "surprise", "trust"]))
    kb = _open(sources=("curated",), lexicons=[vad, emolex])
    assert kb.manifest["counts"] == {"curated": N_CURATED, "nrc_vad": 2, "emolex_full": 1}
    p = kb.emotions_of("sunbeam")
    assert p.match == "exact" and p.valence == pytest.approx(0.8) and p.arousal == pytest.approx(0.4)
    g = kb.emotions_of("gloomful")
    assert g.distribution["sadness"] == pytest.approx(1.0) and g.valence == -0.5
    assert any(h.id == "nrc_vad:gloom" for h in kb.search("gloom", k=5))


@pytest.mark.shared_data
def test_import_nrc_files_from_shared_data(cache, shared_data):
    kbdir = shared_data / "kb"
    vad, emolex = kbdir / "NRC-VAD-Lexicon.txt", kbdir / "NRC-Emotion-Lexicon-Wordlevel-v0.92.txt"
    if not (vad.is_file() and emolex.is_file()):
        pytest.skip("NRC lexicon files are absent")
    kb = _open(sources=("curated",), lexicons=[vad, emolex])
    counts = kb.manifest["counts"]
    assert counts["nrc_vad"] > 19000 and 6000 < counts["emolex_full"] < 7000
    happy, grief = kb.emotions_of("happy"), kb.emotions_of("grief")
    assert happy.valence > 0.5 and grief.valence < -0.5
    assert max(grief.distribution, key=grief.distribution.get) == "sadness"


def test_broken_curated_file_leaves_the_index_alone(cache, tmp_path, monkeypatch):
    from kever.errors import ConfigError

    path = _open().path
    before = sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir())
    kdir = tmp_path / "knowledge"
    shutil.copytree(knowledge_dir(), kdir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (kdir / "cues" / "faces.yaml").write_text("family: face\nsources: [ekman1992]\nentries: []\n")
    monkeypatch.setenv("KEVER_KNOWLEDGE_DIR", str(kdir))
    with pytest.raises(ConfigError, match="cues/faces.yaml"):
        _open()
    assert sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir()) == before
    assert [p.name for p in (cache / "kb").glob("index-*")] == [path.name]
    monkeypatch.delenv("KEVER_KNOWLEDGE_DIR")
    assert _open(build=False).path == path
