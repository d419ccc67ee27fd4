"""The index on disk: one folder a user can copy.

    INDEX/kever-index.json   manifest: format, root folder, preset, embedder, vector size
    INDEX/photos.lance/      the LanceDB table, one row per photo
    INDEX/write.lock         held by the one ``kever index`` writing it

Each row's ``vector`` is ``[text embedding (unit length) | Mikels-8 distribution]``, so one
dot-product search ranks by a blend of content and emotion (:mod:`kever.search.query`).
LanceDB commits every ``upsert``: a killed run keeps every batch it finished.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from dataclasses import dataclass, field
from pathlib import Path

from kever.errors import InputError, KeverError, missing_package

FORMAT = "kever-search-index"
VERSION = 1
MANIFEST = "kever-index.json"
TABLE = "photos"
LOCK = "write.lock"
N_EMOTIONS = 8
#: columns read for listing and search results (everything but the vector and the embedded text)
COLUMNS = ["path", "folder", "sha256", "size", "mtime_ns", "label", "canonical", "valence", "arousal",
           "confidence", "cues", "evidence", "preset"]


class BadIndex(InputError):
    """A missing, foreign or corrupt index."""


def _lancedb():
    os.environ.setdefault("LANCEDB_LOG", "error")  # lance's Rust warnings would reach the user's terminal
    try:
        import lancedb
    except ImportError:
        raise missing_package("lancedb", "search") from None
    return lancedb


def schema(dim: int):
    import pyarrow as pa

    return pa.schema([
        ("path", pa.string()), ("folder", pa.string()), ("sha256", pa.string()), ("size", pa.int64()),
        ("mtime_ns", pa.int64()), ("label", pa.string()), ("canonical", pa.list_(pa.float32(), N_EMOTIONS)),
        ("valence", pa.float32()), ("arousal", pa.float32()), ("confidence", pa.float32()),
        ("cues", pa.string()), ("evidence", pa.string()), ("preset", pa.string()), ("versions", pa.string()),
        ("text", pa.string()), ("indexed_at", pa.float64()), ("vector", pa.list_(pa.float32(), dim + N_EMOTIONS)),
    ])


@dataclass
class Manifest:
    root: str
    preset: str
    embedder: str
    dim: int
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    format: str = FORMAT
    version: int = VERSION
    skipped: list[dict] = field(default_factory=list)

    def dump(self) -> dict:
        return dict(self.__dict__)


def is_index(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def resolve(path: Path) -> Path:
    """An index folder, or a photo folder holding its default index ``.kever-index``."""
    path = Path(path)
    if not is_index(path) and is_index(path / ".kever-index"):
        return path / ".kever-index"
    return path


def read_manifest(path: Path) -> Manifest:
    path = Path(path)
    if not path.exists():
        raise BadIndex(f"no index at {path}", "build one with `kever index DIR --index PATH`")
    if not path.is_dir():
        raise BadIndex(f"{path} is a file, not a kever search index (an index is a folder)")
    f = path / MANIFEST
    if not f.is_file():
        raise BadIndex(f"{path} is not a kever search index (no {MANIFEST})", "build one with `kever index DIR --index PATH`")
    try:
        data = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadIndex(f"{f} is corrupt ({type(e).__name__}); the index cannot be read",
                          "rebuild it with `kever index DIR --index PATH`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadIndex(f"{f} is not a kever search index manifest")
    if data.get("version") != VERSION:
        raise BadIndex(f"{path} is index format version {data.get('version')}; this kever reads version {VERSION}",
                          "rebuild it with `kever index DIR --index PATH`")
    try:
        known = {k: data[k] for k in Manifest.__dataclass_fields__ if k in data}
        m = Manifest(**known)
        int(m.dim), str(m.root), str(m.preset)
    except (TypeError, ValueError, KeyError) as e:
        raise BadIndex(f"{f} is corrupt ({e})", "rebuild it with `kever index DIR --index PATH`") from None
    return m


def write_manifest(path: Path, m: Manifest) -> None:
    m.updated = time.time()
    tmp = Path(path) / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(m.dump(), indent=2))
    os.replace(tmp, Path(path) / MANIFEST)


class Store:
    """The LanceDB table of one index folder."""

    def __init__(self, path: Path, manifest: Manifest, table):
        self.path, self.manifest, self.table = Path(path), manifest, table

    @classmethod
    def open(cls, path: Path) -> "Store":
        path = resolve(path)
        m = read_manifest(path)
        lancedb = _lancedb()
        try:
            # readers see each commit at once (a server reading while `kever index` writes)
            table = lancedb.connect(str(path), read_consistency_interval=timedelta(0)).open_table(TABLE)
            table.count_rows()
        except Exception as e:  # lance raises ValueError/OSError/RuntimeError for a damaged table
            raise BadIndex(f"{path}: the photo table is missing or corrupt ({type(e).__name__}: {str(e)[:120]})",
                              "rebuild it with `kever index DIR --index PATH`") from None
        return cls(path, m, table)

    @classmethod
    def create(cls, path: Path, manifest: Manifest) -> "Store":
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(p.name not in (LOCK,) for p in path.iterdir())):
            raise BadIndex(f"{path} exists and is not a kever search index; nothing was written there",
                              "pass another --index")
        path.mkdir(parents=True, exist_ok=True)
        lancedb = _lancedb()
        table = lancedb.connect(str(path)).create_table(TABLE, schema=schema(manifest.dim), mode="overwrite")
        write_manifest(path, manifest)
        return cls(path, manifest, table)

    # -- reading ----------------------------------------------------------------------------
    def count(self) -> int:
        return self.table.count_rows()

    def files(self) -> dict[str, tuple[str, int, int]]:
        """path -> (sha256, size, mtime_ns) of every indexed photo."""
        n = self.count()
        if not n:
            return {}
        cols = self.table.search().select(["path", "sha256", "size", "mtime_ns"]).limit(n).to_arrow().to_pydict()
        return {p: (h, s, m) for p, h, s, m in zip(cols["path"], cols["sha256"], cols["size"], cols["mtime_ns"])}

    def get(self, where: str, columns: list[str] | None = None, limit: int = 1) -> list[dict]:
        return self.table.search().where(where).select(columns or COLUMNS + ["vector"]).limit(limit).to_list()

    def nearest(self, vector, where: str | None, limit: int) -> list[dict]:
        """Rows by descending dot product with ``vector`` (exact: a full scan, filters first)."""
        q = self.table.search(list(map(float, vector))).distance_type("dot").limit(limit)
        if where:
            q = q.where(where, prefilter=True)
        return q.select(COLUMNS + ["_distance"]).to_list()

    def scan(self, where: str | None, limit: int | None = None) -> list[dict]:
        q = self.table.search()
        if where:
            q = q.where(where)
        return q.select(COLUMNS).limit(limit or max(self.count(), 1)).to_list()

    # -- writing (under the lock) -----------------------------------------------------------
    def upsert(self, rows: list[dict]) -> None:
        if not rows:
            return
        import pyarrow as pa

        t = pa.Table.from_pylist(rows, schema=schema(self.manifest.dim))
        (self.table.merge_insert("path").when_matched_update_all().when_not_matched_insert_all().execute(t))

    def delete(self, paths: list[str]) -> None:
        for i in range(0, len(paths), 500):
            chunk = paths[i:i + 500]
            self.table.delete("path IN (" + ", ".join(sql_str(p) for p in chunk) + ")")

    def compact(self) -> None:
        """Merge the per-batch fragments and drop old versions (the folder stays small)."""
        import warnings
        from datetime import timedelta

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.table.optimize(cleanup_older_than=timedelta(seconds=0))
        except Exception:  # an optimisation only: the index is already complete
            pass


def sql_str(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def lock(path: Path):
    """The index's write lock (released by the OS if the process dies)."""
    from filelock import FileLock, Timeout

    lk = FileLock(str(Path(path) / LOCK), timeout=0)
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        lk.acquire()
    except Timeout:  # (a subclass of OSError: first)
        raise KeverError(f"another `kever index` is writing {path}; wait for it to finish "
                         "(nothing was changed)") from None
    except OSError as e:  # a read-only folder (e.g. a dataset): the index must go elsewhere
        raise KeverError(f"cannot write an index at {path} ({e.strerror or e})",
                         "pass --index PATH somewhere writable") from None
    return lk
