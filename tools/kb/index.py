"""The on-disk index: SQLite (entries, lookup keys, FTS5 full text) plus an embedding matrix.

Layout: ``cache_dir("kb")/index-<key>/`` holding ``kb.sqlite``, ``emb.npy`` (float16),
``emb_rows.npy`` and ``manifest.json``. ``key`` hashes everything the index is built from
(curated files, package versions, imported lexicons, embedder, options, INDEX_VERSION), so
a change of any of them builds a new index. A build writes into a temporary folder and
``os.replace``-s it into place under a file lock: a reader sees a complete index or none.

Vectors of unchanged texts are reused from other indexes built with the same embedder.

What is embedded: curated cues, emotion definitions and the NRC EmoLex words (~7k texts,
15-90 s on 2 shared cores, measured). SenticNet's 200k concepts and imported lexicons are resolved lexically
(exact keys + FTS5/BM25 on their names): embedding all 200k takes ~5 min on 2 free cores
(measured ~700 texts/s) for concepts that are mostly multi-word paraphrases of words that
the curated entries and EmoLex already cover in the embedding space.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kever.errors import KnowledgeError
from kever.knowledge.loader import Knowledge, curated_hash, knowledge_dir
from kever.tools.kb.sources import (
    SOURCES,
    Entry,
    curated_entries,
    emolex_entries,
    file_sha,
    lexicon_entries,
    senticnet_entries,
)
from kever.versions import package_version

log = logging.getLogger(__name__)

INDEX_VERSION = 4

SCHEMA = """
CREATE TABLE entries (
  row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL,
  family TEXT, name TEXT NOT NULL, text TEXT NOT NULL, body TEXT NOT NULL, weights TEXT NOT NULL,
  valence REAL, arousal REAL, related TEXT NOT NULL, citations TEXT NOT NULL, emb INTEGER NOT NULL
);
CREATE TABLE keys (key TEXT NOT NULL, row INTEGER NOT NULL);
CREATE VIRTUAL TABLE fts USING fts5(name, body, content='entries', content_rowid='row', tokenize='porter unicode61');
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


@dataclass(frozen=True)
class BuildSpec:
    """What an index is built from."""

    sources: tuple[str, ...] = SOURCES
    limit: int | None = None  # cap per installable source (tests use a subset)
    lexicons: tuple[Path, ...] = ()

    def key(self, embedder_id: str, root: Path | None = None) -> str:
        h = hashlib.sha256()
        parts = {
            "version": INDEX_VERSION,
            "curated": curated_hash(root),
            "sources": sorted(self.sources),
            "limit": self.limit,
            "senticnet": package_version("senticnet", None),
            "nrclex": package_version("nrclex", None),
            "lexicons": [(str(p), file_sha(p)) for p in self.lexicons],
            "embedder": embedder_id,
        }
        h.update(json.dumps(parts, sort_keys=True).encode())
        return h.hexdigest()[:16]


def kb_root() -> Path:
    from kever.paths import cache_dir

    return cache_dir("kb")


def _iter_entries(kn: Knowledge, spec: BuildSpec) -> Iterable[Entry]:
    unknown = set(spec.sources) - set(SOURCES)
    if unknown:
        raise KnowledgeError(f"unknown knowledge source(s) {sorted(unknown)}", f"valid: {', '.join(SOURCES)}")
    if "curated" in spec.sources:
        yield from curated_entries(kn)
    if "senticnet" in spec.sources:
        yield from senticnet_entries(kn, spec.limit)
    if "emolex" in spec.sources:
        yield from emolex_entries(kn, spec.limit)
    for p in spec.lexicons:
        yield from lexicon_entries(p, kn)


def build_index(dest: Path, kn: Knowledge, spec: BuildSpec, embedder, progress: bool = True) -> dict:
    """Write a complete index into the (new, empty) folder ``dest``; returns its manifest."""
    t0 = time.perf_counter()
    dest.mkdir(parents=True)
    db = sqlite3.connect(dest / "kb.sqlite")
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
    to_embed: list[str] = []
    emb_rows: list[int] = []
    seen: set[str] = set()
    rows, keys = [], []
    counts: dict[str, int] = {}
    row = 0
    for e in _iter_entries(kn, spec):
        if e.id in seen:
            continue
        seen.add(e.id)
        row += 1
        emb = -1
        if e.embed:
            emb = len(to_embed)
            to_embed.append(f"{e.name}: {e.text}" if e.kind != "lexicon" else e.name)
            emb_rows.append(row)
        rows.append((row, e.id, e.source, e.kind, e.family, e.name, e.text, e.body, json.dumps(e.weights),
                     e.valence, e.arousal, json.dumps(e.related), json.dumps(e.citations), emb))
        keys += [(k, row) for k in e.keys]
        src = e.id.split(":")[0] if ":" in e.id else "curated"
        counts[src] = counts.get(src, 0) + 1
        if len(rows) >= 20000:
            db.executemany("INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            rows = []
    db.executemany("INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO keys VALUES (?,?)", keys)
    db.execute("CREATE INDEX keys_key ON keys(key)")
    db.execute("INSERT INTO fts(fts) VALUES ('rebuild')")
    t_sql = time.perf_counter() - t0

    t1 = time.perf_counter()
    text_keys = [hashlib.sha1(t.encode()).hexdigest() for t in to_embed]
    known = _reusable_vectors(dest.parent, embedder, set(text_keys))
    todo = [i for i, k in enumerate(text_keys) if k not in known]
    batches = [[to_embed[i] for i in todo[j:j + 256]] for j in range(0, len(todo), 256)]
    it: Iterable = batches
    if progress and batches:
        from tqdm import tqdm

        it = tqdm(batches, desc="kever kb: embedding", unit="batch", file=sys.stderr)
    parts = [embedder.encode(b) for b in it]
    fresh = np.concatenate(parts).astype(np.float16) if parts else np.zeros((0, embedder.dim), dtype=np.float16)
    mat = np.zeros((len(to_embed), embedder.dim), dtype=np.float16)
    for j, i in enumerate(todo):
        mat[i] = fresh[j]
    for i, k in enumerate(text_keys):
        if k in known:
            mat[i] = known[k]
    np.save(dest / "emb.npy", mat)
    np.save(dest / "emb_rows.npy", np.asarray(emb_rows, dtype=np.int64))
    (dest / "emb_keys.json").write_text(json.dumps(text_keys))
    t_emb = time.perf_counter() - t1
    manifest = {
        "index_version": INDEX_VERSION, "entries": row, "embedded": len(emb_rows),
        "dim": int(mat.shape[1]) if mat.size else embedder.dim, "embedder": embedder.model_id,
        "counts": counts, "sources": list(spec.sources), "limit": spec.limit,
        "lexicons": [str(p) for p in spec.lexicons],
        "build_s": {"sqlite": round(t_sql, 2), "embed": round(t_emb, 2)},
        "embedded_fresh": len(todo), "embedded_reused": len(to_embed) - len(todo),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    db.executemany("INSERT INTO meta VALUES (?,?)", [("manifest", json.dumps(manifest))])
    db.commit()
    db.close()
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _reusable_vectors(root: Path, embedder, wanted: set[str]) -> dict[str, np.ndarray]:
    """Vectors of the same texts from other complete indexes built with the same embedder,
    so that a change to one curated file does not re-embed everything."""
    found: dict[str, np.ndarray] = {}
    for d in sorted(root.glob("index-*"), key=lambda p: -p.stat().st_mtime):
        try:
            man = json.loads((d / "manifest.json").read_text())
            if man.get("embedder") != embedder.model_id or man.get("dim") != embedder.dim:
                continue
            keys = json.loads((d / "emb_keys.json").read_text())
            emb = np.load(d / "emb.npy", mmap_mode="r")
            if emb.shape != (len(keys), embedder.dim):
                continue
        except (OSError, ValueError, json.JSONDecodeError):
            continue
        for i, k in enumerate(keys):
            if k in wanted and k not in found:
                found[k] = np.array(emb[i])
        if len(found) == len(wanted):
            break
    return found


def check_index(path: Path) -> dict:
    """Raise KnowledgeError if the index at ``path`` is incomplete or corrupt; else its manifest."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        db = sqlite3.connect(f"file:{path / 'kb.sqlite'}?mode=ro", uri=True)
        try:
            n = db.execute("SELECT count(*) FROM entries").fetchone()[0]
            db.execute("SELECT rowid FROM fts WHERE fts MATCH 'x' LIMIT 1").fetchall()
        finally:
            db.close()
        emb = np.load(path / "emb.npy", mmap_mode="r")
        rows = np.load(path / "emb_rows.npy", mmap_mode="r")
    except (OSError, ValueError, KeyError, sqlite3.DatabaseError, json.JSONDecodeError) as e:
        raise KnowledgeError(f"the knowledge index at {path} is corrupt ({type(e).__name__}: {e})", "run: kever kb build --force") from None
    if n != manifest.get("entries") or emb.shape[0] != manifest.get("embedded") or rows.shape[0] != emb.shape[0]:
        raise KnowledgeError(f"the knowledge index at {path} is inconsistent (entries {n} vs manifest {manifest.get('entries')})", "run: kever kb build --force")
    return manifest


def ensure_index(kn: Knowledge, spec: BuildSpec, embedder, *, build: bool = True, force: bool = False,
                 progress: bool = True) -> Path:
    """Path of a complete index for ``spec``, building it (atomically, under a lock) if needed."""
    from filelock import FileLock

    root = kb_root()
    key = spec.key(embedder.model_id, kn.root if kn.root != knowledge_dir() else None)
    final = root / f"index-{key}"
    if final.is_dir() and not force:
        try:
            check_index(final)
            return final
        except KnowledgeError:
            if not build:
                raise
            log.warning("knowledge index %s is corrupt; rebuilding", final)
    elif not build:
        raise KnowledgeError("the knowledge index has not been built (or its sources changed)", "run: kever kb build")
    with FileLock(str(root / f".lock-{key}"), timeout=1800):
        if final.is_dir() and not force:  # someone else finished while we waited
            try:
                check_index(final)
                return final
            except KnowledgeError:
                pass
        tmp = root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        try:
            build_index(tmp, kn, spec, embedder, progress=progress)
            check_index(tmp)
            if final.exists():
                trash = root / f".old-{key}-{uuid.uuid4().hex[:6]}"
                os.replace(final, trash)
                os.replace(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    _prune(root, keep=final)
    return final


def _prune(root: Path, keep: Path, max_indexes: int = 6) -> None:
    """Drop the oldest indexes beyond ``max_indexes`` (stale sources), best effort."""
    idx = sorted((p for p in root.glob("index-*") if p.is_dir() and p != keep), key=lambda p: p.stat().st_mtime)
    for p in idx[: max(0, len(idx) - (max_indexes - 1))]:
        shutil.rmtree(p, ignore_errors=True)


def registered_lexicons() -> list[Path]:
    f = kb_root() / "lexicons.json"
    if not f.is_file():
        return []
    try:
        return [Path(p) for p in json.loads(f.read_text())]
    except (json.JSONDecodeError, TypeError):
        return []


def register_lexicons(paths: Sequence[Path]) -> list[Path]:
    current = registered_lexicons()
    for p in paths:
        p = Path(p).resolve()
        if p not in current:
            current.append(p)
    f = kb_root() / "lexicons.json"
    tmp = f.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps([str(p) for p in current]))
    os.replace(tmp, f)
    return current
