"""Run an evaluation: load the dataset, build the system once, log every sample, score, report.

``run_eval`` is the library entry point behind ``kever eval run``. Engines: ``local`` (this
process, ``explain_many`` over batches of ``batch_size``) and ``ray`` (Ray Data actors, see
:mod:`kever.evals.ray_engine`). Both write the same records through the same code.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from kever.errors import ConfigError, InputError
from kever.evals.datasets import Dataset, load_dataset
from kever.evals.record import ErrorInfo, Record
from kever.evals.rundir import RunConfig, RunDir
from kever.evals.sample import Sample
from kever.evals.systems import ABLATIONS, SYSTEMS, labels_argument, resolve_factory


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0-based i) -> (i, n)."""
    if not spec:
        return None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise InputError(f"--shard {spec!r} is not i/n", "e.g. --shard 0/4 (shards are numbered from 0)") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {spec!r}: need 0 <= i < n", "e.g. --shard 0/4 (shards are numbered from 0)")
    return i, n


def select(samples: Sequence[Sample], limit: int | None, shard: tuple[int, int] | None) -> list[Sample]:
    """First ``limit`` samples (in id order), then every n-th from i: shards partition the limited set."""
    chosen = list(samples[:limit] if limit else samples)
    if shard:
        i, n = shard
        chosen = chosen[i::n]
    return chosen


def _error(e: BaseException) -> ErrorInfo:
    return ErrorInfo(type=type(e).__name__, message=str(e))


def _dump(j) -> dict:
    return j.model_dump(mode="json") if hasattr(j, "model_dump") else dict(j)


def process_batch(system, samples: list[Sample], labels: str | list[str], rationale: bool, worker: str | None = None) -> list[Record]:
    """Judge a batch; one failing image never loses the others (a raising batch is retried one by one)."""
    t0 = time.perf_counter()
    try:
        results = list(system.explain_many([s.image for s in samples], labels=labels, rationale=rationale))
        if len(results) != len(samples):
            raise RuntimeError(f"explain_many returned {len(results)} results for {len(samples)} images")
        each = (time.perf_counter() - t0) / max(len(samples), 1)
        pairs = [(r, each) for r in results]
    except Exception as batch_error:  # noqa: BLE001 - isolate the culprit
        if len(samples) == 1:
            pairs = [(batch_error, time.perf_counter() - t0)]
        else:
            pairs = []
            for s in samples:
                t1 = time.perf_counter()
                try:
                    pairs.append((system.explain_many([s.image], labels=labels, rationale=rationale)[0], time.perf_counter() - t1))
                except Exception as e:  # noqa: BLE001
                    pairs.append((e, time.perf_counter() - t1))
    out = []
    for s, (res, secs) in zip(samples, pairs):
        if isinstance(res, BaseException):
            out.append(Record(id=s.id, image=s.image, truth=s.truth, error=_error(res), seconds=secs, worker=worker))
        else:
            out.append(Record(id=s.id, image=s.image, truth=s.truth, judgment=_dump(res), seconds=secs, worker=worker))
    return out


class Progress:
    """tqdm on stderr: done/total, rate and ETA; silent when disabled."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        self.total, self.initial, self.enabled = total, initial, enabled
        self.t_start: float | None = None

    def note(self, text: str) -> None:
        if self.enabled:
            print(f"eval: {text}", file=sys.stderr, flush=True)

    def start(self) -> None:
        """Start the clock after the system is built, so rate and ETA are the judging rate."""
        self.t_start = self.t_start or time.perf_counter()
        if self.enabled and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.initial, unit="img", file=sys.stderr, dynamic_ncols=True,
                            smoothing=0.1, desc="eval")

    def update(self, n: int = 1, failed: int = 0) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if failed:
                self.bar.set_postfix(failed=failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class RunResult:
    rundir: Path
    metrics: dict
    done_now: int
    skipped: int
    failed: int
    total: int
    seconds: float  # judging (system building excluded; see manifest.build_seconds)
    failed_ids: list[str] = field(default_factory=list)


def default_out(dataset: str, split: str | None, system: str, ablate: Iterable[str], shard) -> Path:
    name = "_".join([dataset] + ([split] if split else []) + [system] + [f"no-{a}" for a in sorted(ablate)]
                    + ([f"shard{shard[0]}of{shard[1]}"] if shard else []))
    return Path("runs") / name


def _factory_name(factory) -> str | None:
    if factory is None or isinstance(factory, str):
        return factory or None
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"


def run_eval(
    dataset: str,
    root: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    preset: str = "offline",
    system: str = "full",
    ablate: Iterable[str] = (),
    out: str | Path | None = None,
    resume: bool = False,
    shard: tuple[int, int] | str | None = None,
    engine: str = "local",
    batch_size: int = 1,
    concurrency: int = 2,
    rationale: bool = True,
    factory: Callable | str | None = None,
    progress: bool = True,
    report: bool = True,
    reps: int = 1000,
    seed: int = 0,
    retry_failed: bool = False,
) -> RunResult:
    if system not in SYSTEMS and factory is None:
        raise ConfigError(f"unknown system {system!r}", f"choose from {', '.join(SYSTEMS)}")
    ablate = sorted(set(ablate))
    for a in ablate:
        if a not in ABLATIONS:
            raise ConfigError(f"unknown ablation {a!r}", f"choose from {', '.join(ABLATIONS)}")
    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown engine {engine!r}", "choose local or ray")
    if batch_size < 1 or (limit is not None and limit < 1):
        raise InputError("--batch-size and --limit must be at least 1")
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    ds: Dataset = load_dataset(dataset, root, split)
    config = RunConfig(dataset=dataset, root=ds.root, split=split, label_set=ds.label_set, labels=ds.labels,
                       preset=preset, system=system, ablate=ablate, shard=shard, rationale=rationale,
                       factory=_factory_name(factory))
    rd = RunDir(out or default_out(dataset, split, system, ablate, shard))
    with rd.locked("kever eval run"):
        return _run_locked(rd, ds, config, limit=limit, shard=shard, resume=resume, retry_failed=retry_failed,
                           preset=preset, system=system, ablate=ablate, engine=engine, batch_size=batch_size,
                           concurrency=concurrency, rationale=rationale, factory=factory, progress=progress,
                           report=report, reps=reps, seed=seed)


def _run_locked(rd: RunDir, ds: Dataset, config: RunConfig, *, limit, shard, resume, retry_failed, preset, system,
                ablate, engine, batch_size, concurrency, rationale, factory, progress, report, reps, seed) -> RunResult:
    fresh = not rd.exists()
    manifest = rd.open_for(config, resume)
    rd.repair()  # a torn or corrupt line is moved aside; its sample is judged again below

    chosen = select(ds.samples, limit, shard)
    prior = ds.prior()  # over the whole split, so every shard and limit uses the same baseline
    done = {r.id: r for r in rd.records()}
    finished = {i for i, r in done.items() if r.ok or not retry_failed}
    todo = [s for s in chosen if s.id not in finished]
    skipped = len(chosen) - len(todo)
    chosen_ids = [s.id for s in chosen]
    manifest.limit = limit
    manifest.n_total = len(chosen)
    # a --limit below what the log holds scores the selection only; the rest stays logged
    manifest.scored_ids = chosen_ids if set(done) - set(chosen_ids) else None

    t0 = time.perf_counter()
    failed_ids: list[str] = []
    bar = Progress(total=len(chosen), initial=skipped, enabled=progress)
    try:
        with rd.samples_path.open("a", encoding="utf-8") as fh:
            def sink(rec: Record) -> None:
                rd.append(fh, rec)
                if not rec.ok:
                    failed_ids.append(rec.id)
                bar.update(1, failed=len(failed_ids))

            if todo:
                if engine == "local":
                    build = resolve_factory(factory) if not callable(factory) else factory
                    bar.note(f"building system {system!r} (preset {preset!r}) ...")
                    t_build = time.perf_counter()
                    try:
                        sys_ = build(preset=preset, system=system, ablate=tuple(ablate), prior=prior)
                    except BaseException:
                        if fresh and skipped == 0:  # nothing was judged: leave no half-made run behind
                            fh.close()
                            rd.discard()
                        raise
                    manifest.models = dict(getattr(sys_, "models", {}) or {})
                    manifest.build_seconds = round(time.perf_counter() - t_build, 3)
                    rd.write_manifest(manifest)
                    bar.start()
                    worker = f"{socket.gethostname()}:{os.getpid()}"
                    for b in range(0, len(todo), batch_size):
                        for rec in process_batch(sys_, todo[b:b + batch_size], labels_argument(ds.label_set, ds.labels), rationale, worker):
                            sink(rec)
                else:
                    from kever.evals.ray_engine import run_ray

                    bar.start()

                    models = run_ray(todo, config, prior, factory, batch_size=batch_size, concurrency=concurrency, sink=sink)
                    manifest.models = models
            rd.write_manifest(manifest)
    finally:
        bar.close()
    seconds = time.perf_counter() - (bar.t_start or t0)  # judging time, system building excluded

    metrics = _score(rd, reps=reps, seed=seed, report=report)
    return RunResult(rundir=rd.path, metrics=metrics, done_now=len(todo), skipped=skipped,
                     failed=metrics.get("n_failed", 0), total=len(chosen), seconds=seconds, failed_ids=failed_ids)


def rescore(rundir: str | Path | RunDir, *, reps: int = 1000, seed: int = 0, report: bool = True) -> dict:
    """Recompute ``metrics.json`` (and ``report.html``) from the log alone; no model is loaded.
    Holds the run's lock; corrupt lines are moved aside first, as on resume."""
    rd = rundir if isinstance(rundir, RunDir) else RunDir(rundir)
    rd.read_manifest()  # not a run directory: say so before making a lock file in it
    with rd.locked("kever eval rescore"):
        rd.repair()
        return _score(rd, reps=reps, seed=seed, report=report)


def selection_note(n_scored: int, n_logged: int, limit: int | None) -> str:
    why = f"--limit {limit}" if limit else "the dataset's current samples"
    return (f"scored {n_scored} of the {n_logged} logged samples (this run's selection, {why}); "
            f"the other {n_logged - n_scored} stay in samples.jsonl, unscored")


def _score(rd: RunDir, *, reps: int, seed: int, report: bool) -> dict:
    from kever.evals.scoring import compute_metrics

    manifest = rd.read_manifest()
    logged = rd.records()
    records = manifest.scored(logged)
    metrics = compute_metrics(records, manifest.config.labels, reps=reps, seed=seed)
    if len(records) != len(logged):
        metrics["n_logged"] = len(logged)
        metrics["n_unscored"] = len(logged) - len(records)
        metrics["selection"] = selection_note(len(records), len(logged), manifest.limit)
    metrics["run"] = {"dataset": manifest.config.dataset, "split": manifest.config.split,
                      "system": manifest.config.system, "preset": manifest.config.preset,
                      "ablate": manifest.config.ablate, "shard": manifest.config.shard,
                      "models": manifest.models, "n_expected": manifest.n_total, "limit": manifest.limit}
    rd.write_metrics(metrics)
    if report:
        from kever.evals.report import write_report

        write_report(rd, manifest, records, metrics)
    return metrics
