"""Merge the run dirs of ``--shard i/n`` runs (same config otherwise) into one run, then score it.

Each part contributes the records it scores (its ``--limit`` selection, see
:attr:`Manifest.scored_ids`). The parts and the destination are locked while merging, so an
unfinished shard that is still being written is refused, not merged half-done.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
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
    with ExitStack() as stack:
        for p in dict.fromkeys(Path(p).resolve() for p in parts):  # a part named twice is locked once
            stack.enter_context(RunDir(p).locked("kever eval merge (reading)"))
        stack.enter_context(dest.locked("kever eval merge"))
        records = {}
        for p, m in zip(parts, manifests):
            logged, bad = RunDir(p).scan()
            if bad:
                print(f"eval: {p}: {len(bad)} corrupt line(s) in samples.jsonl left out of the merge "
                      f"(`kever eval rescore {p}` moves them aside)", file=sys.stderr, flush=True)
            by_id = {r.id: r for r in logged}  # the last record per id wins, as in RunDir.records
            for r in m.scored(by_id.values()):
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
