"""Emotion search end to end with the real ``offline`` preset (perception, MiniLM, the knowledge
base) on the three photos kever ships: free text finds the photo it describes."""

from __future__ import annotations

import shutil

import pytest

from kever.paths import DEMO_IMAGE

pytestmark = pytest.mark.slow


def test_offline_index_and_text_search(tmp_path):
    from kever.agent.reasoner import Reasoner
    from kever.search import Index
    from kever.search.build import build_index

    try:
        reasoner = Reasoner.from_preset("offline")
    except Exception as e:  # noqa: BLE001 - a machine without the offline models
        pytest.skip(f"offline preset unavailable here: {e}")
    root = tmp_path / "photos"
    root.mkdir()
    for p in sorted(DEMO_IMAGE.parent.glob("*.jpg")):  # astronaut, chelsea (a cat), coffee
        shutil.copy(p, root / p.name)
    rep = build_index(root, reasoner_factory=lambda p: reasoner, preset="offline")
    assert (rep.photos, rep.skipped, rep.preset) == (3, [], "offline")
    idx = Index.open(root, reasoner=reasoner)
    assert idx.store.manifest.dim == 384  # all-MiniLM-L6-v2
    assert idx.search("a cup of espresso coffee", limit=1).hits[0].path == "coffee.jpg"
    assert idx.search("a cat", limit=1).hits[0].path == "chelsea.jpg"
    hits = idx.search(emotion="awe", limit=3).hits
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.reason for h in hits)
