"""``kever index DIR`` and ``kever search INDEX QUERY``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from kever.errors import InputError


def _reasoner_factory(preset: str):
    from kever.agent.reasoner import Reasoner

    click.echo(f"kever index: loading preset {preset} ...", err=True)
    return Reasoner.from_preset(preset)


class _Progress:
    """A progress line with rate and ETA: rich's bar on a terminal, a plain line per batch otherwise."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.t0 = None

    def start(self, total: int) -> None:
        self.t0 = time.perf_counter()
        if total == 0:
            return
        if self.tty:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("judging"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                                TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("judging", total=total, rate="")
            self.bar.start()

    def __call__(self, done: int, total: int) -> None:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        rate = done / dt
        eta = (total - done) / rate if rate > 0 else 0
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=f"{rate:.2f} photos/s")
        else:
            click.echo(f"kever index: {done}/{total} judged, {rate:.2f} photos/s, ETA {eta:.0f} s", err=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@click.command("index")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--index", "index_path", type=click.Path(path_type=Path), default=None,
              help="Index folder to create or update (default: FOLDER/.kever-index).")
@click.option("--preset", default=None, help="Model preset for a new index (default offline); an existing index keeps its own.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1, 512),
              help="Photos judged and committed together (a kill loses at most one batch).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Judge here, or on Ray actors (RAY_ADDRESS, else a local Ray; the photos must be readable by every worker).")
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 1024), help="Ray actors (--engine ray).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
def index(folder: Path, index_path: Path | None, preset: str | None, batch_size: int, engine: str, concurrency: int,
          as_json: bool) -> None:
    """Judge every photo under FOLDER (recursively) into a searchable index; again: only what changed."""
    from kever.search.build import build_index

    bar = _Progress()
    try:
        report = build_index(folder, index_path, reasoner_factory=_reasoner_factory, preset=preset,
                             batch_size=batch_size, progress=bar, on_start=bar.start, engine=engine,
                             concurrency=concurrency)
    finally:
        bar.stop()
    for s in report.skipped:
        click.echo(f"kever index: skipped {s.path}: {s.reason}", err=True)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        rate = f", {report.photos_per_s:.2f} photos/s" if report.photos_per_s else ""
        click.echo(f"{report.index}: {report.photos} photos indexed ({report.new} new, {report.changed} changed, "
                   f"{report.deleted} deleted, {report.unchanged} unchanged, {len(report.skipped)} skipped) "
                   f"in {report.seconds:.1f} s{rate}")
    if report.photos == 0 and report.skipped:
        click.echo(f"kever: error: none of the {len(report.skipped)} photos in {folder} could be read", err=True)
        sys.exit(1)


@click.command("search")
@click.argument("index_path", metavar="INDEX", type=click.Path(path_type=Path))
@click.argument("query", required=False)
@click.option("--emotion", default=None, help="An emotion word: any label set's label (awe, joy, positive) or another word (calm, dread).")
@click.option("--like", type=click.Path(path_type=Path), default=None, help="Photos like this one, in emotion and content.")
@click.option("--valence", default=None, help="Valence range a..b within -1..1, e.g. 0.3..1.")
@click.option("--arousal", default=None, help="Arousal range a..b within 0..1, e.g. 0..0.4.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None, help="Only judgments at least this confident.")
@click.option("--folder", default=None, help="Only photos under this folder (relative to the indexed folder).")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def search(index_path, query, emotion, like, valence, arousal, min_confidence, folder, limit, as_json) -> None:
    """Find photos in INDEX by emotion, free text (QUERY), example (--like) or valence/arousal region."""
    from kever.search.index import Index

    if query is not None and not query.strip():
        raise InputError("empty query text", "leave QUERY out, or search by --emotion, --like, --valence/--arousal")
    idx = Index.open(index_path)
    if len(idx) == 0:
        raise InputError(f"{idx.path} holds no photos", "run `kever index` on its folder first")
    res = idx.search(query, emotion=emotion, like=like, valence=valence, arousal=arousal,
                     min_confidence=min_confidence, folder=folder, limit=limit)
    if as_json:
        click.echo(res.model_dump_json(indent=2))
    else:
        _print(res)
    if not res.hits:
        click.echo(f"kever search: no photos match {_said(res.query)} among {res.total} indexed", err=True)
        sys.exit(1)


def _said(q: dict) -> str:
    bits = [f"{k}={q[k]}" for k in ("text", "emotion", "like", "valence", "arousal", "min_confidence", "folder") if k in q]
    return ", ".join(bits) or "the query"


def _print(res) -> None:
    from rich.console import Console
    from rich.table import Table

    if not res.hits:
        return
    t = Table(title=f"{len(res.hits)} of {res.total} photos ({_said(res.query)}; {res.seconds * 1000:.0f} ms)",
              title_justify="left", show_lines=False, expand=True)
    t.add_column("#", justify="right")
    t.add_column("score", justify="right")
    t.add_column("photo", overflow="fold")
    t.add_column("label")
    t.add_column("V / A", justify="right")
    t.add_column("why", no_wrap=True, overflow="ellipsis", ratio=1)
    for i, h in enumerate(res.hits, 1):
        t.add_row(str(i), f"{h.score:.3f}", h.path, f"{h.label} {h.confidence:.2f}",
                  f"{h.valence:+.2f} / {h.arousal:.2f}", h.reason)
    Console(soft_wrap=False).print(t)
