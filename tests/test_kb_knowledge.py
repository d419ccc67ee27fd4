"""Curated knowledge files: schema, citations, and what a broken file does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kever.errors import ConfigError
from kever.knowledge import knowledge_dir, load_knowledge
from kever.knowledge.schema import FAMILIES

MIKELS8 = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"]


def test_curated_knowledge_loads_and_is_cited():
    kn = load_knowledge()
    assert kn.taxonomies["mikels8"].labels == MIKELS8
    assert kn.taxonomies["emotion6"].labels == ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
    assert set(kn.taxonomies) == {"mikels8", "emotion6", "sentiment", "plutchik8"}
    entries = [e for f in kn.cue_files.values() for e in f.entries]
    assert len(entries) >= 250
    families = {f.family for f in kn.cue_files.values()}
    assert {"colour", "scene", "object", "animal", "face", "action", "composition", "event"} <= families <= set(FAMILIES)
    for f in kn.cue_files.values():
        for e in f.entries:
            assert set(e.weights) <= set(MIKELS8)
            assert all(k in kn.sources for k in (e.sources or f.sources))
    # the FER classes all have a face entry
    faces = {a for f in kn.cue_files.values() if f.family == "face" for e in f.entries for a in [e.name, *e.aliases]}
    assert {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"} <= faces
    for t in kn.taxonomies.values():
        for e in t.emotions:
            assert e.definition and e.appraisal and e.sources


def test_mapping_tables_cover_their_labels():
    kn = load_knowledge()
    for (src, dst), m in kn.mappings.items():
        labels = kn.taxonomies[src].labels if src in kn.taxonomies else None
        if labels:
            assert set(m.table) == set(labels), f"{src}->{dst} misses labels"
        assert all(sum(row.values()) > 0 for row in m.table.values())


@pytest.fixture
def broken_copy(tmp_path, monkeypatch):
    """A copy of the knowledge folder pointed at by KEVER_KNOWLEDGE_DIR; returns its path."""
    dst = tmp_path / "knowledge"
    shutil.copytree(knowledge_dir(), dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setenv("KEVER_KNOWLEDGE_DIR", str(dst))
    return dst


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "fname, old, new, expected",
    [
        ("cues/colour.yaml", "weights: {fear: 0.6, sadness: 0.55", "weights: {fear: 1.6, sadness: 0.55",
         ["cues/colour.yaml", "'colour.dark'", "weights"]),
        ("cues/scenes.yaml", "weights: {awe: 0.85, contentment: 0.35, excitement: 0.15}",
         "weights: {awe: 0.85, joy: 0.35}", ["cues/scenes.yaml", "'scene.mountain'", "weights.joy"]),
        ("cues/faces.yaml", "valence: 0.8, arousal: 0.55}", "valence: 0.8, arousal: 0.55, sources: [nobody2020]}",
         ["cues/faces.yaml", "'face.happy'", "sources", "nobody2020"]),
        ("cues/events.yaml", "  - {id: event.funeral, name: funeral,", "  - {id: event.funeral, nam: funeral,",
         ["cues/events.yaml", "'event.funeral'", "name"]),
        ("taxonomies.yaml", "arousal: 0.6\n        sources: [keltner2003", "arousal: high\n        sources: [keltner2003",
         ["taxonomies.yaml", "arousal"]),
        ("mappings.yaml", "anticipation: {excitement: 0.8, awe: 0.2}", "anticipation: {eagerness: 0.8}",
         ["mappings.yaml", "plutchik8->mikels8", "anticipation"]),
        ("cues/objects.yaml", "entries:\n", "entries:\n  - {id: [oops\n", ["cues/objects.yaml", "YAML", "line"]),
    ],
)
def test_broken_file_is_a_config_error_naming_file_entry_field(broken_copy, fname, old, new, expected):
    _edit(broken_copy / fname, old, new)
    with pytest.raises(ConfigError) as ei:
        load_knowledge()
    msg = str(ei.value)
    for part in expected:
        assert part in msg, msg


def test_duplicate_id_across_files(broken_copy):
    _edit(broken_copy / "cues/body.yaml", "id: body.expansive,", "id: colour.dark,")
    with pytest.raises(ConfigError, match="duplicate id"):
        load_knowledge()


def test_missing_knowledge_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("KEVER_KNOWLEDGE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_knowledge()


def test_cli_reports_broken_file_in_one_line(broken_copy, capsys):
    from kever.cli import main

    _edit(broken_copy / "cues/colour.yaml", "weights: {fear: 0.6, sadness: 0.55", "weights: {fear: -2, sadness: 0.55")
    with pytest.raises(SystemExit) as ei:
        main(["kb", "stats"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "cues/colour.yaml" in err and "colour.dark" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
