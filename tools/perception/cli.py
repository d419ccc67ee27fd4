"""``kever perceive IMAGE... [--json] [--extractors colour,faces,objects,text]``."""

from __future__ import annotations

import json
import sys

import click

from kever.errors import KeverError

DEFAULT_EXTRACTORS = "colour,faces,objects,text"


def _render(console, p) -> None:
    from rich.table import Table

    table = Table(title=f"{p.source}  ({p.width}x{p.height})", show_header=False, title_justify="left", expand=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    if p.brightness is not None:
        table.add_row(
            "light",
            f"brightness {p.brightness:.2f}   contrast {p.contrast:.2f}",
        )
        table.add_row(
            "colour",
            f"saturation {p.saturation:.2f}   colourfulness {p.colorfulness:.2f} (M={p.colorfulness_raw:.0f})   warmth {p.warmth:+.2f}",
        )
        table.add_row("colours", ", ".join(f"{c.name} {c.share:.0%}" for c in p.colours) or "-")
    if "faces" in p.models:
        if not p.faces:
            table.add_row("faces", "none found")
        for i, f in enumerate(p.faces, 1):
            top = sorted(f.expressions.model_dump().items(), key=lambda kv: -kv[1])[:3]
            table.add_row(
                f"face {i}",
                f"{f.dominant} {f.dominant_score:.2f}  ({', '.join(f'{k} {v:.2f}' for k, v in top[1:])})  box {list(f.box)} score {f.score:.2f}",
            )
    if "objects" in p.models:
        table.add_row("objects", ", ".join(f"{o.label} {o.score:.2f}" for o in p.objects) or "-")
    if "text" in p.models:
        table.add_row("text", "; ".join(f"{t.text!r} {t.score:.2f}" for t in p.text) or "none found")
    for note in p.notes:
        table.add_row("note", note)
    table.add_row("time", "  ".join(f"{k} {v * 1000:.0f} ms" for k, v in p.timings.items()), style="dim")
    console.print(table)


@click.command("perceive")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object for one image, a list for several.")
@click.option(
    "--extractors",
    "-e",
    default=DEFAULT_EXTRACTORS,
    show_default=True,
    help="Comma-separated subset of colour, faces, objects, text.",
)
@click.option("--batch-size", default=8, show_default=True, help="Images per CNN batch.")
@click.option("--models", "show_models", is_flag=True, help="Also print which model produced each cue.")
def perceive(images: tuple[str, ...], as_json: bool, extractors: str, batch_size: int, show_models: bool) -> None:
    """Measure the visual cues of IMAGE(s): colour and light, faces and expressions, objects and
    scene (ImageNet), text. Bad files are reported one line each; the others still print."""
    from rich.console import Console

    from kever.images import load_image
    from kever.tools.perception.perceiver import Perceiver, check_extractors

    names = check_extractors(extractors.split(","))
    console = Console()
    perceiver: Perceiver | None = None
    results: list = [None] * len(images)  # Perception, or (source, KeverError), in input order
    failed: list[KeverError] = []
    pending: list = []  # (index, LoadedImage) waiting for a batch

    def flush() -> None:
        nonlocal perceiver
        if not pending:
            return
        if perceiver is None:  # load models only once a usable image is in hand
            perceiver = Perceiver.load(names)
        for (i, _), p in zip(pending, perceiver.perceive_many([im for _, im in pending], batch_size=batch_size)):
            if isinstance(p, KeverError):  # cannot happen for loaded images, but never lose it
                results[i] = (images[i], p)
                failed.append(p)
                click.echo(f"kever: error: {p}", err=True)
                continue
            results[i] = p
            if not as_json:
                _render(console, p)
                if show_models:
                    for k, v in p.models.items():
                        console.print(f"  [dim]{k}: {v}[/dim]")
        pending.clear()

    for i, item in enumerate(images):
        try:
            pending.append((i, load_image(item)))
        except KeverError as e:
            results[i] = (item, e)
            failed.append(e)
            click.echo(f"kever: error: {e}", err=True)
        if len(pending) >= batch_size:
            flush()
    flush()

    if as_json:
        def as_dict(r):
            if isinstance(r, tuple):
                return {"source": r[0], "error": str(r[1])}
            return r.model_dump(mode="json")

        payload = as_dict(results[0]) if len(images) == 1 else [as_dict(r) for r in results]
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    if failed:
        sys.exit(max(e.exit_code for e in failed))
