"""A run directory: ``manifest.json`` (config + versions), append-only ``samples.jsonl``,
``metrics.json``, ``report.html``.

``samples.jsonl`` is written one line per sample, flushed and fsynced, so a run killed at
any moment loses at most the samples in flight; a torn last line is cut off on reopening.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from pydantic import BaseModel, Field

from kever.errors import ConfigError
from kever.evals.record import Record

SAMPLES = "samples.jsonl"
MANIFEST = "manifest.json"
METRICS = "metrics.json"
REPORT = "report.html"


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

    def read_manifest(self) -> Manifest:
        p = self.path / MANIFEST
        if not p.is_file():
            raise ConfigError(f"{self.path} is not a kever run directory (no {MANIFEST})")
        return Manifest.model_validate_json(p.read_text(encoding="utf-8"))

    def write_manifest(self, manifest: Manifest) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        manifest.updated = now()
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, self.path / MANIFEST)

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

    def repair_tail(self) -> None:
        """Cut a torn last line (a kill during a write) so appends start on a clean line."""
        p = self.samples_path
        if not p.exists():
            return
        with p.open("rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            # find the last newline
            pos = size
            chunk = 4096
            while pos > 0:
                start = max(0, pos - chunk)
                fh.seek(start)
                data = fh.read(pos - start)
                i = data.rfind(b"\n")
                if i >= 0:
                    fh.truncate(start + i + 1)
                    return
                pos = start
            fh.truncate(0)

    def records(self) -> list[Record]:
        """All logged records, the last one per id winning (a retried failure replaces its error)."""
        p = self.samples_path
        if not p.exists():
            return []
        by_id: dict[str, Record] = {}
        with p.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = Record.model_validate_json(line)
                except ValueError:
                    continue  # a torn line from a kill mid-write
                by_id[rec.id] = rec
        return list(by_id.values())

    def append(self, fh, rec: Record) -> None:
        fh.write(rec.model_dump_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())

    def write_metrics(self, metrics: dict) -> Path:
        p = self.path / METRICS
        tmp = self.path / (METRICS + ".tmp")
        tmp.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        os.replace(tmp, p)
        return p
