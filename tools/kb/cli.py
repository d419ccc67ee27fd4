"""``kever kb``: build, search and inspect the affective knowledge base."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from kever.errors import InputError

log = logging.getLogger(__name__)


def _open(build: bool = True, **kw):
    from kever.tools.kb.knowledge_base import KnowledgeBase

    return KnowledgeBase.open(progress=True, build=build, **kw)


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=1, ensure_ascii=False))


@click.group()
def kb() -> None:
    """Build, search and inspect the affective knowledge base."""


@kb.command()
@click.option("--lexicon", "lexicons", multiple=True, type=click.Path(path_type=Path),
              help="Import a user lexicon (NRC VAD or NRC EmoLex word-level); repeatable. Remembered for later builds.")
@click.option("--force", is_flag=True, help="Rebuild even if an up-to-date index exists.")
def build(lexicons: tuple[Path, ...], force: bool) -> None:
    """Build the index (once; rebuilt when its sources change)."""
    from kever.tools.kb.index import register_lexicons, registered_lexicons
    from kever.tools.kb.sources import sniff_lexicon

    for p in lexicons:
        sniff_lexicon(p)  # a clear error before anything is written
    lex = register_lexicons(lexicons) if lexicons else registered_lexicons()
    kbase = _open(force=force, lexicons=[p for p in lex if p.is_file()])
    s = kbase.stats()
    click.echo(f"knowledge index ready: {s['entries']} entries ({s['embedded']} embedded), "
               f"{s['size_bytes'] / 1e6:.1f} MB at {s['path']}")


@kb.command()
@click.argument("text")
@click.option("--k", "k", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["cue", "concept", "definition", "lexicon"]))
@click.option("--json", "as_json", is_flag=True, help="Print {'hits': [...]} as JSON.")
def search(text: str, k: int, kinds: tuple[str, ...], as_json: bool) -> None:
    """Hybrid (full-text + embedding) search over all entries."""
    from kever.tools.kb.knowledge_base import MAX_QUERY_CHARS

    if not text.strip():
        raise InputError("empty knowledge query", "give a few words, e.g. 'dark stormy sky'")
    if len(text) > MAX_QUERY_CHARS:
        click.echo(f"kever: note: query cut to its first {MAX_QUERY_CHARS} characters", err=True)
    hits = _open().search(text, k=k, kinds=list(kinds) or None)
    if as_json:
        _echo_json({"query": text, "hits": [h.model_dump() for h in hits]})
        return
    if not hits:
        click.echo("no knowledge entry matched (the knowledge base is English; try other words)")
        return
    for h in hits:
        w = ", ".join(f"{lab} {v:.2f}" for lab, v in sorted(h.weights.items(), key=lambda x: -x[1])[:3])
        click.echo(f"{h.score:.4f}  {h.id}  [{h.kind}{'/' + h.family if h.family else ''}]  {w}")
        click.echo(f"        {h.text[:140]}")
        click.echo(f"        source: {h.source}")


@kb.command()
@click.argument("concept")
@click.option("--taxonomy", default="mikels8", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def emotions(concept: str, taxonomy: str, as_json: bool) -> None:
    """What emotions a concept evokes, with the evidence."""
    p = _open().emotions_of(concept, taxonomy)
    if as_json:
        _echo_json(p.model_dump())
        if not p.evidence:
            sys.exit(1)
        return
    if not p.evidence:
        click.echo(f"kever: no knowledge entry matched {concept!r}; its distribution is uniform "
                   f"(try a related English word, or `kever kb search`)", err=True)
        sys.exit(1)
    click.echo(f"{p.concept} ({p.match} match) valence={p.valence} arousal={p.arousal}")
    for lab, v in sorted(p.distribution.items(), key=lambda x: -x[1]):
        click.echo(f"  {lab:12s} {v:.3f}")
    for h in p.evidence[:8]:
        click.echo(f"  evidence: {h.id} ({h.source})")


@kb.command()
@click.argument("label")
@click.option("--taxonomy", default="mikels8", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def define(label: str, taxonomy: str, as_json: bool) -> None:
    """Definition and appraisal pattern of an emotion label."""
    d = _open().define(label, taxonomy)
    if as_json:
        _echo_json(d.model_dump())
        return
    click.echo(f"{d.label} ({d.taxonomy}): {d.definition}\n  appraisal: {d.appraisal}\n"
               f"  valence {d.valence:+.2f}, arousal {d.arousal:.2f}\n  source: {d.source}")


@kb.command()
@click.option("--json", "as_json", is_flag=True)
def stats(as_json: bool) -> None:
    """Index size, entries per source/kind/family."""
    s = _open().stats()
    if as_json:
        _echo_json(s)
        return
    click.echo(f"index: {s['path']} ({s['size_bytes'] / 1e6:.1f} MB), built {s['built_at']}")
    click.echo(f"entries: {s['entries']} ({s['embedded']} embedded with {s['embedder']})")
    click.echo("by source: " + ", ".join(f"{k} {v}" for k, v in s["by_source"].items()))
    click.echo("by kind: " + ", ".join(f"{k} {v}" for k, v in s["by_kind"].items()))
    click.echo("by family: " + ", ".join(f"{k} {v}" for k, v in sorted(s["by_family"].items())))
    if s["lexicons"]:
        click.echo("imported lexicons: " + ", ".join(s["lexicons"]))
