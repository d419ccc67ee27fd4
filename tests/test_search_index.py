"""``kever index``: a real LanceDB index built from real image files with the ``fake`` preset.

Covers the walk (formats, nesting, hidden folders, non-images), what a row holds, incremental
runs (new / changed / deleted / touched), resuming after a kill, and the refusal of a second
writer.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kever.errors import InputError, KeverError
from kever.search.build import build_index
from kever.search.store import Store

MIKELS8 = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")


def photo(path: Path, seed: int, size=(48, 40), fmt: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def make_collection(root: Path) -> Path:
    photo(root / "a.jpg", 1)
    photo(root / "b.png", 2)
    photo(root / "trip" / "c.webp", 3)
    frames = [Image.new("RGB", (40, 30), c) for c in ((250, 10, 10), (10, 10, 250))]
    frames[0].save(root / "trip" / "d.gif", save_all=True, append_images=frames[1:], duration=100)
    photo(root / "trip" / "deeper" / "e.JPEG", 5)
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "notes.txt").write_text("not a photo")
    photo(root / ".thumbnails" / "hidden.jpg", 6)  # hidden folders are not walked
    return root


@pytest.fixture(scope="module")
def fake_reasoner():
    from kever.agent.reasoner import Reasoner

    return Reasoner.from_preset("fake")


class CountingFactory:
    """reasoner_factory that records how often a reasoner was asked for."""

    def __init__(self, reasoner, fail_after_batches: int | None = None):
        self.reasoner, self.calls, self.fail_after = reasoner, 0, fail_after_batches
        self.images: list[str] = []

    def __call__(self, preset: str):
        self.calls += 1
        outer = self

        class Wrapped:
            c, preset = self.reasoner.c, self.reasoner.preset

            def explain_many(self, images, **kw):
                if outer.fail_after is not None and len(outer.images) >= outer.fail_after:
                    raise KeyboardInterrupt  # a kill between batches
                images = list(images)
                outer.images += [str(i) for i in images]
                return outer.reasoner.explain_many(images, **kw)

        return Wrapped()


def test_index_walks_formats_and_stores_judgments(tmp_path, fake_reasoner):
    root = make_collection(tmp_path / "photos")
    f = CountingFactory(fake_reasoner)
    rep = build_index(root, reasoner_factory=f, preset="fake", batch_size=2)
    assert rep.index == str(root / ".kever-index")
    assert (rep.new, rep.judged, rep.photos, rep.other_files) == (6, 5, 5, 1)
    assert [s.path for s in rep.skipped] == ["broken.jpg"]
    assert "not an image" in rep.skipped[0].reason
    assert not any("hidden" in p for p in f.images)
    store = Store.open(root / ".kever-index")
    assert store.manifest.preset == "fake" and store.manifest.root == str(root.resolve())
    rows = {r["path"]: r for r in store.scan(None)}
    assert set(rows) == {"a.jpg", "b.png", "trip/c.webp", "trip/d.gif", "trip/deeper/e.JPEG"}
    r = store.get("path = 'trip/deeper/e.JPEG'")[0]
    assert r["folder"] == "trip/deeper/"
    assert r["sha256"] == hashlib.sha256((root / "trip/deeper/e.JPEG").read_bytes()).hexdigest()
    assert r["label"] in MIKELS8
    assert abs(sum(r["canonical"]) - 1) < 1e-3
    assert len(r["vector"]) == store.manifest.dim + 8
    np.testing.assert_allclose(r["vector"][-8:], r["canonical"], atol=1e-6)
    assert abs(np.linalg.norm(r["vector"][:-8]) - 1) < 1e-3  # the unit text embedding
    assert json.loads(r["cues"]) and json.loads(r["evidence"])
    assert -1 <= r["valence"] <= 1 and 0 <= r["arousal"] <= 1
    # the GIF was judged on its first (red) frame, like `kever explain`
    assert rows["trip/d.gif"]["sha256"]


def test_second_run_judges_only_what_changed(tmp_path, fake_reasoner):
    root = make_collection(tmp_path / "photos")
    build_index(root, reasoner_factory=CountingFactory(fake_reasoner), batch_size=4, preset="fake")
    again = CountingFactory(fake_reasoner)
    rep = build_index(root, reasoner_factory=again)
    assert (rep.new, rep.changed, rep.deleted, rep.unchanged, rep.judged) == (0, 0, 0, 5, 0)
    assert again.calls == 0, "an unchanged folder must not even load the models"
    assert [s.path for s in rep.skipped] == ["broken.jpg"]  # still listed, not retried

    photo(root / "a.jpg", 99)  # changed content
    (root / "b.png").unlink()  # deleted
    photo(root / "new" / "f.png", 7)  # new
    time.sleep(0.01)
    (root / "trip" / "c.webp").touch()  # touched, same content
    f = CountingFactory(fake_reasoner)
    rep = build_index(root, reasoner_factory=f)
    assert (rep.new, rep.changed, rep.deleted, rep.unchanged, rep.judged, rep.photos) == (1, 1, 1, 3, 2, 5)
    assert sorted(Path(p).name for p in f.images) == ["a.jpg", "f.png"]
    store = Store.open(root / ".kever-index")
    assert store.get("path = 'b.png'") == []
    assert store.get("path = 'a.jpg'")[0]["sha256"] == hashlib.sha256((root / "a.jpg").read_bytes()).hexdigest()


def test_a_killed_run_resumes_where_it_stopped(tmp_path, fake_reasoner):
    root = tmp_path / "photos"
    for i in range(7):
        photo(root / f"p{i}.png", 10 + i)
    killed = CountingFactory(fake_reasoner, fail_after_batches=4)
    with pytest.raises(KeyboardInterrupt):
        build_index(root, reasoner_factory=killed, preset="fake", batch_size=2)
    assert Store.open(root / ".kever-index").count() == 4  # two batches committed, the third lost
    rest = CountingFactory(fake_reasoner)
    rep = build_index(root, reasoner_factory=rest, batch_size=2)
    assert (rep.new, rep.unchanged, rep.judged, rep.photos) == (3, 4, 3, 7)
    assert sorted(Path(p).name for p in rest.images) == ["p4.png", "p5.png", "p6.png"]


def test_refusals_change_nothing(tmp_path, fake_reasoner):
    root = make_collection(tmp_path / "photos")
    f = CountingFactory(fake_reasoner)
    build_index(root, reasoner_factory=f, preset="fake")
    store = Store.open(root / ".kever-index")
    before = store.count()
    # everything moved away (an unmounted disk?): refused, the index is kept
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no photos in"):
        build_index(empty, root / ".kever-index", reasoner_factory=f)
    other = tmp_path / "other"
    photo(other / "x.jpg", 3)
    with pytest.raises(InputError, match="indexes .*photos, not"):
        build_index(other, root / ".kever-index", reasoner_factory=f)
    with pytest.raises(InputError, match="built with preset 'fake', not 'offline'"):
        build_index(root, reasoner_factory=f, preset="offline")
    assert Store.open(root / ".kever-index").count() == before
    # a folder that is not an index is never written into
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(InputError, match="is not a kever search index"):
        build_index(root, foreign, reasoner_factory=f)
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    with pytest.raises(InputError, match="is a file"):
        build_index(root / "a.jpg", reasoner_factory=f)
    with pytest.raises(KeverError, match="cannot write an index at .*pass --index PATH somewhere writable"):
        build_index(root, root / "a.jpg" / "idx", reasoner_factory=f)


def test_a_second_writer_is_refused(tmp_path, fake_reasoner):
    root = tmp_path / "photos"
    photo(root / "a.jpg", 1)
    index = tmp_path / "idx"
    build_index(root, index, reasoner_factory=CountingFactory(fake_reasoner), preset="fake")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from kever.search.store import lock; "
         "held = lock(sys.argv[1]); print('held', flush=True); time.sleep(60)", str(index)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(KeverError, match="another `kever index` is writing"):
            build_index(root, index, reasoner_factory=CountingFactory(fake_reasoner))
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder: the next run goes ahead
    rep = build_index(root, index, reasoner_factory=CountingFactory(fake_reasoner))
    assert rep.unchanged == 1


def test_cli_index_reports_progress_counts_and_skips(tmp_path):
    root = make_collection(tmp_path / "photos")
    cmd = [sys.executable, "-m", "kever", "index", str(root), "--preset", "fake", "--batch-size", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == r.stdout.strip().splitlines()[0]  # one summary line
    assert "5 photos indexed (6 new, 0 changed, 0 deleted, 0 unchanged, 1 skipped)" in r.stdout
    progress = [x for x in r.stderr.splitlines() if "judged" in x]
    assert progress[-1].startswith("kever index: 6/6 judged") and "photos/s" in progress[-1] and "ETA" in progress[-1]
    assert len(progress) == 3  # one line per batch of two when stderr is not a terminal
    assert "kever index: skipped broken.jpg: " in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cmd[:5] + ["--json"], capture_output=True, text=True, timeout=300)
    rep = json.loads(r.stdout)
    assert (rep["judged"], rep["unchanged"], rep["photos"]) == (0, 5, 5)
    assert "loading preset" not in r.stderr  # nothing to judge: no models loaded


def test_heic_is_indexed_where_pillow_heif_reads_it(tmp_path, fake_reasoner):
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif (kever[search]) is not installed")
    pillow_heif.register_heif_opener()
    root = tmp_path / "phone"
    root.mkdir()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(root / "IMG_0001.HEIC")
    photo(root / "b.jpg", 2)
    rep = build_index(root, reasoner_factory=CountingFactory(fake_reasoner), preset="fake")
    assert (rep.judged, rep.skipped) == (2, [])
    assert Store.open(root / ".kever-index").get("path = 'IMG_0001.HEIC'")[0]["label"] in MIKELS8
