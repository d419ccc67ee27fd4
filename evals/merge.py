"""Merge the run dirs of ``--shard i/n`` runs (same config otherwise) into one run, then score it."""

from __future__ import annotations

from pathlib import Path

from kever.errors import ConfigError
from kever.evals.rundir import Manifest, RunDir, now, versions


def merge_runs(out: str | Path, parts: list[str | Path]) -> RunDir:
    if not parts:
        raise ConfigError("nothing to merge")
    manifests = [RunDir(p).read_manifest() for p in parts]
    base = manifests[0].config.model_copy(update={"shard": None})
    for p, m in zip(parts, manifests):
        if m.config.model_copy(update={"shard": None}).key() != base.key():
            raise ConfigError(f"{p} was run with another config than {parts[0]}", "merge only shards of one run")
    dest = RunDir(out)
    if dest.exists() or (dest.samples_path.exists() and dest.samples_path.stat().st_size):
        raise ConfigError(f"{out} already holds a run", "merge into a new folder")
    records = {}
    for p in parts:
        for r in RunDir(p).records():
            if r.id in records and records[r.id].ok and not r.ok:
                continue  # keep a success over a failure of the same id
            records[r.id] = r
    models = {}
    for m in manifests:
        models.update(m.models)
    dest.write_manifest(Manifest(config=base, models=models, versions=versions(), created=now(),
                                 n_total=sum(m.n_total for m in manifests)))
    with dest.samples_path.open("a", encoding="utf-8") as fh:
        for r in records.values():
            dest.append(fh, r)
    return dest
