"""Judge a folder of photos into an index, incrementally and resumably.

A photo is known by its path relative to the folder; an unchanged size and mtime means
unchanged, otherwise its content hash decides. New and changed photos are judged in batches
(``Reasoner.explain_many``, no rationale) and each batch is committed before the next starts,
so a killed run loses at most the batch in flight and the next run picks up where it stopped.
Deleted photos are dropped. The reasoner is only loaded when something needs judging.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from kever import __version__
from kever.errors import InputError, KeverError
from kever.search.results import IndexReport, Skipped
from kever.search.store import LOCK, Manifest, Store, is_index, lock, sql_str, write_manifest
from kever.search.walk import PhotoFile, heif_supported, walk

#: evidence items kept per photo (the reason line reads them)
KEEP_EVIDENCE = 8


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def doc_text(j) -> str:
    """What the text embedding of a photo reads: what was seen, and the judgment."""
    seen = [c.say or c.text for c in j.cues]
    top = sorted(j.canonical.items(), key=lambda kv: -kv[1])[:2]
    return "; ".join(seen) + f". It evokes {top[0][0]}" + (f", and some {top[1][0]}." if len(top) > 1 else ".")


def judgment_row(pf: PhotoFile, digest: str, j, vec: np.ndarray, text: str) -> dict:
    from kever.agent.fusion import MIKELS8

    canonical = [float(j.canonical.get(m, 0.0)) for m in MIKELS8]
    cues = [{"id": c.id, "family": c.family, "text": c.text, "say": c.say, "confidence": round(c.confidence, 4)}
            for c in j.cues]
    evidence = [{"ref": e.ref, "id": e.id, "text": e.text, "score": round(e.score, 5), "points_to": e.points_to,
                 "cue_ids": e.cue_ids, "pushes": {k: round(v, 5) for k, v in e.pushes.items()}}
                for e in j.evidence[:KEEP_EVIDENCE]]
    folder = pf.rel.rsplit("/", 1)[0] + "/" if "/" in pf.rel else ""
    return {
        "path": pf.rel, "folder": folder, "sha256": digest, "size": pf.size, "mtime_ns": pf.mtime_ns,
        "label": j.label, "canonical": canonical, "valence": j.valence, "arousal": j.arousal,
        "confidence": j.confidence, "cues": json.dumps(cues), "evidence": json.dumps(evidence),
        "preset": j.models.get("preset", ""), "versions": json.dumps({"kever": __version__, **j.models, **j.prompt_versions}),
        "text": text, "indexed_at": time.time(),
        "vector": np.concatenate([np.asarray(vec, dtype=np.float32), np.asarray(canonical, dtype=np.float32)]).tolist(),
    }


def _batches(todo, reasoner, preset: str, batch_size: int, engine: str, concurrency: int):
    """(batch of (PhotoFile, sha256), its judgments or errors), one committed batch at a time."""
    if engine == "ray":
        from kever.search.ray_judge import judge_ray

        by_path = {str(pf.path): (pf, d) for pf, d in todo}
        for pairs in judge_ray(list(by_path), preset, batch_size, concurrency):
            yield [by_path[p] for p, _ in pairs], [j for _, j in pairs]
        return
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        yield batch, reasoner.explain_many([pf.path for pf, _ in batch], rationale=False, batch_size=8)


def _check_target(index: Path) -> None:
    if index.exists() and not is_index(index):
        if not index.is_dir() or any(p.name != LOCK for p in index.iterdir()):
            raise InputError(f"{index} exists and is not a kever search index; nothing was written there",
                             "pass another --index")


def build_index(
    root: Path,
    index: Path | None = None,
    *,
    reasoner_factory: Callable[[str], object],
    preset: str | None = None,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    engine: str = "local",
    concurrency: int = 2,
) -> IndexReport:
    """Index ``root`` into ``index`` (default ``root/.kever-index``).

    ``reasoner_factory(preset)`` builds the reasoner (called at most once, and only when a
    photo needs judging or the index is new); ``progress(done, total)`` after each batch;
    ``on_start(total)`` once the photos to judge are known. ``engine="ray"`` judges on Ray
    actors (:mod:`kever.search.ray_judge`, ``concurrency`` of them); the rest is the same."""
    if engine not in ("local", "ray"):
        raise InputError(f"unknown engine '{engine}'", "use local or ray")
    t0 = time.perf_counter()
    root = Path(root)
    if not root.exists():
        raise InputError(f"no folder {root}")
    if not root.is_dir():
        raise InputError(f"{root} is a file; `kever index` takes a folder of photos", "use `kever explain` for one photo")
    index = Path(index) if index is not None else root / ".kever-index"
    _check_target(index)
    w = walk(root, skip=index)
    if not w.photos:
        kinds = "JPEG, PNG, WebP, GIF" + (", HEIC" if heif_supported() else "")
        extra = (f"; {w.unsupported_heif} HEIC files need `pip install 'kever[search]'` (pillow-heif)"
                 if w.unsupported_heif else "")
        raise InputError(f"no photos in {root} ({w.others} other files; kever reads {kinds}){extra}"
                         + ("; the index was not changed" if is_index(index) else ""))
    held = lock(index)
    try:
        reasoner = None
        if is_index(index):
            store = Store.open(index)
            m = store.manifest
            if Path(m.root) != root.resolve():
                raise InputError(f"{index} indexes {m.root}, not {root.resolve()}; nothing was changed",
                                 "pass another --index for this folder")
            if preset not in (None, m.preset):
                raise InputError(f"{index} was built with preset '{m.preset}', not '{preset}'; nothing was changed",
                                 f"leave --preset out (or pass '{m.preset}'), or index into a new --index")
        else:
            reasoner = reasoner_factory(preset or "offline")
            emb = reasoner.c.embedder
            m = Manifest(root=str(root.resolve()), preset=reasoner.preset, embedder=emb.model_id, dim=int(emb.dim))
            store = Store.create(index, m)
        known = store.files()
        # files that could not be judged last time and have not changed since are listed
        # again, not retried
        failed = {d["path"]: d for d in m.skipped if isinstance(d, dict) and "path" in d}
        report = IndexReport(index=str(index), root=m.root, preset=m.preset, photos=0, other_files=w.others)
        todo: list[tuple[PhotoFile, str]] = []
        touched: list[dict] = []
        skipped: list[Skipped] = []
        sizes: dict[str, tuple[int, int]] = {}  # of the files skipped this run
        for pf in w.photos:
            old = known.get(pf.rel)
            f = failed.get(pf.rel)
            if old is None and f is not None and f.get("size") == pf.size and f.get("mtime_ns") == pf.mtime_ns:
                skipped.append(Skipped(path=pf.rel, reason=f["reason"]))
                sizes[pf.rel] = (pf.size, pf.mtime_ns)
                continue
            if old is not None and old[1] == pf.size and old[2] == pf.mtime_ns:
                report.unchanged += 1
                continue
            try:
                digest = sha256(pf.path)
            except OSError as e:
                skipped.append(Skipped(path=pf.rel, reason=f"cannot be read: {e.strerror or e}"))
                sizes[pf.rel] = (pf.size, pf.mtime_ns)
                continue
            if old is not None and old[0] == digest:  # touched, not changed: keep the judgment
                report.unchanged += 1
                touched.append({"path": pf.rel, "size": pf.size, "mtime_ns": pf.mtime_ns})
                continue
            report.new += old is None
            report.changed += old is not None
            todo.append((pf, digest))
        seen = {pf.rel for pf in w.photos}
        gone = [p for p in known if p not in seen]
        store.delete(gone)
        report.deleted = len(gone)
        for t in touched:
            store.table.update(where=f"path = {sql_str(t['path'])}",
                               values={"size": t["size"], "mtime_ns": t["mtime_ns"]})
        if todo and reasoner is None:
            reasoner = reasoner_factory(m.preset)
        if on_start is not None:
            on_start(len(todo))
        t_judge = time.perf_counter()
        if todo:
            emb = reasoner.c.embedder
            if emb.model_id != m.embedder:
                raise InputError(f"{index} was built with embedder {m.embedder}; preset '{m.preset}' now loads "
                                 f"{emb.model_id}", "rebuild the index into a new --index")
            done = 0
            for batch, judged in _batches(todo, reasoner, m.preset, batch_size, engine, concurrency):
                ok = [(pf, d, j) for (pf, d), j in zip(batch, judged) if not isinstance(j, KeverError)]
                for (pf, _), j in zip(batch, judged):
                    if isinstance(j, KeverError):
                        skipped.append(Skipped(path=pf.rel, reason=str(j)))
                        sizes[pf.rel] = (pf.size, pf.mtime_ns)
                if ok:
                    texts = [doc_text(j) for _, _, j in ok]
                    vecs = emb.encode(texts)
                    store.upsert([judgment_row(pf, d, j, v, t) for (pf, d, j), v, t in zip(ok, vecs, texts)])
                report.judged += len(ok)
                done += len(batch)
                if progress is not None:
                    progress(done, len(todo))
        # a changed photo that can no longer be read keeps no stale judgment
        stale = [s.path for s in skipped if s.path in known]
        store.delete(stale)
        report.skipped = skipped
        m.skipped = [{**s.model_dump(), "size": sizes[s.path][0], "mtime_ns": sizes[s.path][1]} for s in skipped]
        write_manifest(index, m)
        if todo or gone:
            store.compact()
        report.photos = store.count()
        report.seconds = round(time.perf_counter() - t0, 3)
        if report.judged:
            report.photos_per_s = round(report.judged / max(time.perf_counter() - t_judge, 1e-9), 3)
        return report
    finally:
        held.release()
