"""``kever eval run | rescore | compare``: a small click group over :mod:`kever.evals`."""

from __future__ import annotations

import json

import click

from kever.errors import KeverError
from kever.evals.datasets import LOADERS
from kever.evals.systems import ABLATIONS, SYSTEMS


def _summary(m: dict) -> str:
    keys = ["accuracy", "balanced_accuracy", "macro_f1", "kl", "cosine", "intersection", "ece"]
    parts = []
    for k in keys:
        if m.get(k) is not None:
            ci = (m.get("ci") or {}).get(k)
            parts.append(f"{k} {m[k]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    return "  ".join(parts)


@click.group("eval")
def eval_group() -> None:
    """Evaluate over benchmark splits; rescore and compare runs."""


@eval_group.command("run")
@click.option("--dataset", required=True, type=click.Choice(sorted(LOADERS)), help="Dataset format.")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="Dataset folder.")
@click.option("--split", default=None, help="Split / list file (emoset: train|val|test; twitter: list name; csv: manifest name).")
@click.option("--limit", type=int, default=None, help="Only the first N samples (id order).")
@click.option("--preset", default="offline", show_default=True, help="Reasoner preset.")
@click.option("--system", default="full", show_default=True, type=click.Choice(SYSTEMS), help="System or baseline.")
@click.option("--ablate", multiple=True, type=click.Choice(ABLATIONS), help="Switch off a component (repeatable).")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False), help="Run directory (default runs/<dataset>_<system>...).")
@click.option("--resume", is_flag=True, help="Continue a run in --out, skipping finished samples.")
@click.option("--retry-failed", is_flag=True, help="With --resume, judge failed samples again.")
@click.option("--shard", default=None, help="Run shard i of n (0-based), e.g. 0/4.")
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "ray"]))
@click.option("--batch-size", default=1, show_default=True, type=int, help="Images per explain_many call.")
@click.option("--concurrency", default=2, show_default=True, type=int, help="Ray actors.")
@click.option("--rationale/--no-rationale", default=True, show_default=True, help="Have the system write rationales.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--reps", default=1000, show_default=True, type=int, help="Bootstrap resamples.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json to stdout.")
@click.option("--factory", default=None, hidden=True, help="module:callable building the system (tests).")
def run_cmd(dataset, root, split, limit, preset, system, ablate, out, resume, retry_failed, shard, engine,
            batch_size, concurrency, rationale, seed, reps, no_progress, as_json, factory) -> None:
    """Evaluate a system on a dataset; writes samples.jsonl, metrics.json and report.html."""
    from kever.evals.runner import run_eval

    res = run_eval(dataset, root, split=split, limit=limit, preset=preset, system=system, ablate=ablate, out=out,
                   resume=resume, shard=shard, engine=engine, batch_size=batch_size, concurrency=concurrency,
                   rationale=rationale, factory=factory, progress=not no_progress, reps=reps, seed=seed,
                   retry_failed=retry_failed)
    if as_json:
        click.echo(json.dumps(res.metrics, indent=2))
    else:
        click.echo(f"{res.rundir}: {res.total} samples ({res.done_now} judged now, {res.skipped} already done, "
                   f"{res.failed} failed) in {res.seconds:.1f}s")
        if res.metrics.get("selection"):
            click.echo(res.metrics["selection"])
        click.echo(_summary(res.metrics))
    if res.failed:
        raise KeverError(f"{res.failed} of {res.total} samples failed (logged with their errors in {res.rundir}/samples.jsonl)",
                         "see the report's gallery; rerun with --resume --retry-failed after fixing")


@eval_group.command("rescore")
@click.argument("rundirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--reps", default=1000, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
def rescore_cmd(rundirs, seed, reps, as_json) -> None:
    """Recompute metrics.json and report.html from the logs, without models."""
    from kever.evals.runner import rescore

    out = {}
    for d in rundirs:
        out[d] = rescore(d, reps=reps, seed=seed)
        if not as_json:
            click.echo(f"{d}: {_summary(out[d])}")
            if out[d].get("selection"):
                click.echo(f"{d}: {out[d]['selection']}")
    if as_json:
        click.echo(json.dumps(out if len(rundirs) > 1 else out[rundirs[0]], indent=2))


@eval_group.command("compare")
@click.argument("rundirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable table.")
@click.option("--reps", default=1000, show_default=True, type=int, help="Bootstrap resamples for the paired differences.")
def compare_cmd(rundirs, as_json, reps) -> None:
    """Side-by-side table of runs' headline figures (95% intervals; best in bold), then each run
    against the first: paired bootstrap intervals of the differences on the samples both judged."""
    from kever.evals.compare import compare_table, load_runs, paired_differences, render_paired, render_text

    runs = load_runs(list(rundirs))
    table = compare_table(runs)
    paired = paired_differences(runs, reps=reps)
    if as_json:
        click.echo(json.dumps({**table, "paired": paired}, indent=2))
    else:
        click.echo(render_text(table))
        click.echo(render_paired(paired, runs[0]["label"]))


@eval_group.command("merge")
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("rundirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--reps", default=1000, show_default=True, type=int)
def merge_cmd(out, rundirs, seed, reps) -> None:
    """Merge shard run dirs (--shard i/n of one config) into OUT and score the whole."""
    from kever.evals.merge import merge_runs
    from kever.evals.runner import rescore

    dest = merge_runs(out, list(rundirs))
    m = rescore(dest, reps=reps, seed=seed)
    click.echo(f"{out}: {m['n']} samples from {len(rundirs)} runs")
    click.echo(_summary(m))
