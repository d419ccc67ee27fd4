"""A run directory: ``manifest.json`` (config + versions), append-only ``samples.jsonl``,
``metrics.json``, ``report.html``.

``samples.jsonl`` is written one line per sample, flushed and fsynced, so a run killed at
any moment loses at most the samples in flight. On reopening, every line that is not a record
(a torn last line from a kill, a corrupt line anywhere) is copied to ``samples.corrupt.jsonl``
and the log is rewritten without it, atomically; its sample is judged again.

Whoever writes a run directory (``eval run``, ``rescore``, ``merge``) holds its lock,
``.lock``: a ``filelock`` lock, an ``flock`` on Linux and macOS, so the kernel frees it when
the holder dies, even by ``kill -9``; a stale lock cannot block a later run. ``.lock.owner``
says who holds it, for the one-line refusal a second writer gets.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from pydantic import BaseModel, Field, ValidationError

from kever.errors import ConfigError
from kever.evals.record import Record

SAMPLES = "samples.jsonl"
CORRUPT = "samples.corrupt.jsonl"
MANIFEST = "manifest.json"
METRICS = "metrics.json"
REPORT = "report.html"
LOCK = ".lock"
OWNER = ".lock.owner"


class RunInUse(ConfigError):
    """Another process is writing this run directory."""


def atomic_write(path: Path, text: str) -> None:
    """Write ``path`` through a uniquely named temporary file beside it and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunConfig(BaseModel):
    """What makes two runs comparable; ``--resume`` refuses a run dir with a different one."""

    dataset: str
    root: str
    split: str | None = None
    label_set: str
    labels: list[str]
    preset: str = "offline"
    system: str = "full"
    ablate: list[str] = Field(default_factory=list)
    shard: tuple[int, int] | None = None
    rationale: bool = True
    factory: str | None = None

    def key(self) -> dict:
        return self.model_dump(mode="json")


class Manifest(BaseModel):
    config: RunConfig
    limit: int | None = None
    models: dict[str, str] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    created: str = ""
    updated: str = ""
    n_total: int = 0
    build_seconds: float | None = None
    #: The ids this run scores when the log also holds others (``--resume --limit`` below what
    #: was logged); None: every logged record is scored.
    scored_ids: list[str] | None = None

    def scored(self, records: Iterable[Record]) -> list[Record]:
        if self.scored_ids is None:
            return list(records)
        keep = set(self.scored_ids)
        return [r for r in records if r.id in keep]


def versions() -> dict[str, str]:
    from kever import __version__

    out = {"kever": __version__, "python": platform.python_version()}
    import numpy

    out["numpy"] = numpy.__version__
    return out


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def samples_path(self) -> Path:
        return self.path / SAMPLES

    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    # ---- the lock -------------------------------------------------------------------------

    def holder(self) -> str:
        """Who holds the lock, in words, from ``.lock.owner`` (written just after acquiring)."""
        try:
            o = json.loads((self.path / OWNER).read_text(encoding="utf-8"))
            return f"pid {o['pid']} on {o['host']} ({o['what']}, since {o['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    @contextmanager
    def locked(self, what: str) -> Iterator["RunDir"]:
        """Hold this run directory's lock for ``what`` (e.g. ``"kever eval run"``); refuse at
        once, with who holds it, when another process does."""
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path / LOCK))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunInUse(f"{self.path} is in use by {self.holder()}",
                           "wait for it to end, or choose another --out; "
                           "the lock is freed by itself when that process ends, even if it is killed") from None
        try:
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": now()}
            atomic_write(self.path / OWNER, json.dumps(owner))
            yield self
        finally:
            (self.path / OWNER).unlink(missing_ok=True)
            lock.release()

    # ---- the manifest ---------------------------------------------------------------------

    def read_manifest(self) -> Manifest:
        p = self.path / MANIFEST
        if not p.is_file():
            raise ConfigError(f"{self.path} is not a kever run directory (no {MANIFEST})")
        return Manifest.model_validate_json(p.read_text(encoding="utf-8"))

    def write_manifest(self, manifest: Manifest) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        manifest.updated = now()
        atomic_write(self.path / MANIFEST, manifest.model_dump_json(indent=2))

    def open_for(self, config: RunConfig, resume: bool) -> Manifest:
        """Start a new run here, or check that ``config`` matches the one being resumed."""
        if self.exists():
            old = self.read_manifest()
            if not resume:
                raise ConfigError(f"{self.path} already holds a run",
                                  "pass --resume to continue it, or choose another --out")
            if old.config.key() != config.key():
                diff = [f"{k}: {old.config.key()[k]!r} -> {v!r}" for k, v in config.key().items() if old.config.key().get(k) != v]
                raise ConfigError(f"cannot resume {self.path}: its config differs ({'; '.join(diff)})",
                                  "resume with the same options, or choose another --out")
            return old
        if self.samples_path.exists() and self.samples_path.stat().st_size:
            raise ConfigError(f"{self.path} holds samples but no {MANIFEST}", "choose another --out")
        m = Manifest(config=config, versions=versions(), created=now())
        self.write_manifest(m)
        return m

    def discard(self) -> None:
        """Remove a run that never judged anything (the system could not be built)."""
        for name in (SAMPLES, MANIFEST):
            (self.path / name).unlink(missing_ok=True)

    # ---- the log --------------------------------------------------------------------------

    def scan(self) -> tuple[list[Record], list[tuple[int, bytes, str]]]:
        """(records in log order, [(line number, raw line, why it is not a record)]).
        A last line without its newline (a kill mid-write) counts as corrupt."""
        p = self.samples_path
        records: list[Record] = []
        bad: list[tuple[int, bytes, str]] = []
        if not p.exists():
            return records, bad
        with p.open("rb") as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                if not raw.endswith(b"\n"):
                    bad.append((n, raw, "torn last line (cut off mid-write)"))
                    continue
                try:
                    records.append(Record.model_validate_json(raw))
                except ValidationError as e:
                    bad.append((n, raw, f"not a record: {e.errors()[0].get('msg', 'invalid')}"))
        return records, bad

    def repair(self) -> list[str]:
        """Move every corrupt line of the log to ``samples.corrupt.jsonl`` (appended, the bytes
        as they were) and rewrite the log without them, atomically. Call with the lock held.
        Returns one note per moved line (also printed on stderr)."""
        _, bad = self.scan()
        if not bad:
            return []
        with (self.path / CORRUPT).open("ab") as side:
            for _, raw, _ in bad:
                side.write(raw if raw.endswith(b"\n") else raw + b"\n")
            side.flush()
            os.fsync(side.fileno())
        drop = {n for n, _, _ in bad}
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{SAMPLES}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, self.samples_path.open("rb") as src:
                for n, raw in enumerate(src, 1):
                    if n not in drop:
                        out.write(raw)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.samples_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        notes = [f"{SAMPLES} line {n} is corrupt ({why}); moved to {CORRUPT}, its sample will be judged again"
                 for n, _, why in bad]
        for note in notes:
            print(f"eval: {self.path}: {note}", file=sys.stderr, flush=True)
        return notes

    def records(self) -> list[Record]:
        """All logged records, the last one per id winning (a retried failure replaces its error)."""
        by_id: dict[str, Record] = {}
        for rec in self.scan()[0]:
            by_id[rec.id] = rec
        return list(by_id.values())

    def append(self, fh, rec: Record) -> None:
        fh.write(rec.model_dump_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())

    def write_metrics(self, metrics: dict) -> Path:
        p = self.path / METRICS
        atomic_write(p, json.dumps(metrics, indent=2))
        return p
