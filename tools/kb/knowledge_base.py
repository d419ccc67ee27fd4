"""KnowledgeBase: hybrid retrieval, concept -> emotion profiles, expansion, definitions."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kever.errors import InputError, KnowledgeError
from kever.knowledge.loader import CANONICAL, Knowledge, load_knowledge
from kever.tools.kb.index import BuildSpec, check_index, ensure_index, registered_lexicons
from kever.tools.kb.models import EmotionDefinition, EmotionProfile, Hit, Taxonomy
from kever.tools.kb.sources import SOURCES, norm_key, short_cite

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 1000  # longer queries are cut here (a warning is logged)
MAX_QUERY_TOKENS = 32
RRF_K = 60
#: embedding hits below these cosines (curated entries, lexicon words) are not evidence;
#: an embedder may carry its own ``min_sim`` pair (FakeEmbedder does). Chosen by looking at
#: MiniLM similarities of gibberish and non-English queries (curated <= 0.30, words <= 0.45)
#: against real English cue queries (curated 0.5-0.75, words 0.55-0.7).
MIN_DENSE_SIM = (0.32, 0.5)
SOURCE_TRUST = {"curated": 1.0, "definition": 1.0, "emolex": 0.8, "emolex_full": 0.8, "nrc_vad": 0.8, "senticnet": 0.6}
STOPWORDS = frozenset(
    "a an the of and or in on at to for with by from is are was were be been it its this that these those "
    "as into over under near very some any no not his her their our your my".split()
)


def _origin(entry_id: str) -> str:
    return entry_id.split(":")[0] if ":" in entry_id else ("definition" if entry_id.startswith("def.") else "curated")


class KnowledgeBase:
    """Open with :meth:`open`; all methods are read-only and cheap after that."""

    def __init__(self, path: Path, knowledge: Knowledge, embedder, manifest: dict):
        self.path = path
        self.knowledge = knowledge
        self.embedder = embedder
        self.manifest = manifest
        self.db = sqlite3.connect(f"file:{path / 'kb.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        self.emb = np.load(path / "emb.npy").astype(np.float32)
        self.emb_rows = np.load(path / "emb_rows.npy")
        kinds = dict(self.db.execute("SELECT row, kind FROM entries WHERE emb >= 0").fetchall())
        self.emb_kinds = np.asarray([kinds.get(int(r), "") for r in self.emb_rows])
        self._curated_mask = self.emb_kinds != "lexicon"
        self._emb_t = None
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, embedder=None, progress: bool = True, *, build: bool = True, force: bool = False,
             sources: Sequence[str] = SOURCES, limit: int | None = None,
             lexicons: Sequence[Path | str] | None = None, knowledge_root: Path | None = None) -> "KnowledgeBase":
        """Load the index from ``kever.paths.cache_dir("kb")``, building it if absent or stale.

        ``sources``/``limit`` build a smaller index (tests; ``KEVER_KB_LIMIT`` sets ``limit``
        for a whole process, e.g. a test session driving the CLI); ``lexicons`` defaults to the ones
        registered by ``kever kb build --lexicon``; ``build=False`` raises KnowledgeError
        instead of building.
        """
        kn = load_knowledge(knowledge_root)
        if limit is None and os.environ.get("KEVER_KB_LIMIT"):
            try:
                limit = int(os.environ["KEVER_KB_LIMIT"])
            except ValueError:
                raise KnowledgeError(f"KEVER_KB_LIMIT must be an integer, not {os.environ['KEVER_KB_LIMIT']!r}") from None
        if embedder is None:
            from kever.tools.kb.embedder import MiniLMEmbedder

            embedder = MiniLMEmbedder()
        lex = [Path(p) for p in (registered_lexicons() if lexicons is None else lexicons)]
        missing = [p for p in lex if not p.is_file()]
        if missing:
            if lexicons is not None:
                raise KnowledgeError(f"lexicon file {missing[0]} does not exist")
            log.warning("registered lexicon(s) no longer exist, skipped: %s", ", ".join(map(str, missing)))
            lex = [p for p in lex if p.is_file()]
        spec = BuildSpec(sources=tuple(sources), limit=limit, lexicons=tuple(lex))
        path = ensure_index(kn, spec, embedder, build=build, force=force, progress=progress)
        return cls(path, kn, embedder, check_index(path))

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ rows -> hits
    _COLS = "row, id, source, kind, family, name, text, weights, valence, arousal, citations"

    def _hits(self, rows: Sequence[int], scores: Sequence[float] | None = None) -> list[Hit]:
        if not rows:
            return []
        q = f"SELECT {self._COLS} FROM entries WHERE row IN ({','.join('?' * len(rows))})"
        by_row = {r[0]: r for r in self.db.execute(q, [int(r) for r in rows]).fetchall()}
        out = []
        for i, r in enumerate(rows):
            rec = by_row.get(int(r))
            if rec is None:
                continue
            out.append(Hit(
                id=rec[1], source=rec[2], kind=rec[3], family=rec[4], name=rec[5], text=rec[6],
                weights=json.loads(rec[7]), valence=rec[8], arousal=rec[9], citations=json.loads(rec[10]),
                score=round(float(scores[i]), 6) if scores is not None else 0.0,
            ))
        return out

    # ------------------------------------------------------------------ search
    @staticmethod
    def _clean_query(text: str) -> str:
        if not isinstance(text, str):
            raise InputError(f"a knowledge query must be text, not {type(text).__name__}")
        q = " ".join(text.split())
        if not q:
            raise InputError("empty knowledge query", "give a few words, e.g. 'dark stormy sky'")
        if len(q) > MAX_QUERY_CHARS:
            log.warning("knowledge query of %d characters cut to %d", len(q), MAX_QUERY_CHARS)
            q = q[:MAX_QUERY_CHARS]
        return q

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (n, dim), L2-normalised, through the query cache: the agent's
        cue, alignment and attribution texts repeat within and across images."""
        vecs = self._encode(list(texts))
        return np.stack(vecs) if vecs else np.zeros((0, self.embedder.dim), dtype=np.float32)

    def _encode(self, queries: list[str]) -> list[np.ndarray]:
        """Query embeddings, batched, with an LRU cache (cue texts repeat across images)."""
        with self._lock:
            have = {q: self._qcache[q] for q in dict.fromkeys(queries) if q in self._qcache}
        todo = [q for q in dict.fromkeys(queries) if q not in have]
        if todo:
            vecs = self.embedder.encode(todo)
            for q, v in zip(todo, vecs):
                have[q] = np.asarray(v, dtype=np.float32)
        with self._lock:
            for q, v in have.items():
                self._qcache[q] = v
                self._qcache.move_to_end(q)
            while len(self._qcache) > 4096:
                self._qcache.popitem(last=False)
        return [have[q] for q in queries]

    def _lexical(self, q: str, n: int, kinds: Sequence[str] | None) -> list[int]:
        rows: list[int] = []
        # exact names/aliases first
        key = norm_key(q)
        kind_sql = f" AND e.kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        kind_args = list(kinds) if kinds else []
        if key:
            rows += [r[0] for r in self.db.execute(
                f"SELECT k.row FROM keys k JOIN entries e ON e.row = k.row WHERE k.key = ?{kind_sql} LIMIT 20",
                [key, *kind_args])]
        toks = [t for t in re.findall(r"\w+", q.lower()) if t not in STOPWORDS][:MAX_QUERY_TOKENS]
        if toks:
            match = " OR ".join('"' + t.replace('"', "") + '"' for t in dict.fromkeys(toks))
            try:
                rows += [r[0] for r in self.db.execute(
                    f"SELECT e.row FROM fts JOIN entries e ON e.row = fts.rowid WHERE fts MATCH ?{kind_sql} "
                    f"ORDER BY bm25(fts, 4.0, 1.0) LIMIT ?", [match, *kind_args, n])]
            except sqlite3.OperationalError as e:  # an FTS syntax corner case: lexical part gives nothing
                log.debug("fts query %r failed: %s", match, e)
        return list(dict.fromkeys(rows))

    def _similarities(self, vecs: list[np.ndarray]) -> np.ndarray:
        """Cosines of the queries against every embedded entry, (n_queries, n_embedded).

        Done in torch, not numpy: right after a torch forward pass, numpy's BLAS threads
        fight torch's spinning OpenMP threads and one mat-vec took ~100 ms instead of 0.1 ms."""
        if self.emb.shape[0] == 0 or not vecs:
            return np.zeros((len(vecs), self.emb.shape[0]), dtype=np.float32)
        import torch

        if self._emb_t is None:
            self._emb_t = torch.from_numpy(self.emb)
        with torch.no_grad():
            return (torch.from_numpy(np.stack(vecs).astype(np.float32)) @ self._emb_t.T).numpy()

    def _dense(self, sims: np.ndarray, n: int, kinds: Sequence[str] | None, curated: bool) -> list[int]:
        """Nearest embedded entries: curated ones (cues, definitions) or lexicon words; ranked
        apart so that one-word lexicon entries, which sit close to any short query, do not
        crowd out the curated cue descriptions."""
        if self.emb.shape[0] == 0:
            return []
        mask = self._curated_mask if curated else ~self._curated_mask
        if kinds:
            mask = mask & np.isin(self.emb_kinds, list(kinds))
        sims = np.where(mask, sims, -1.0)
        n = min(n, sims.shape[0])
        top = np.argpartition(-sims, n - 1)[:n]
        top = top[np.argsort(-sims[top])]
        floor = getattr(self.embedder, "min_sim", MIN_DENSE_SIM)[0 if curated else 1]
        return [int(self.emb_rows[i]) for i in top if sims[i] >= floor]

    def _fuse(self, lists: Sequence[list[int]], k: int) -> tuple[list[int], list[float]]:
        score: dict[int, float] = {}
        for ranked in lists:
            for rank, r in enumerate(ranked):
                score[r] = score.get(r, 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(score, key=lambda r: -score[r])[:k]
        return best, [score[r] for r in best]

    def _check_kinds(self, kinds: Sequence[str] | None) -> list[str] | None:
        if kinds is None:
            return None
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        valid = {"cue", "concept", "definition", "lexicon"}
        bad = [x for x in kinds if x not in valid]
        if bad:
            raise InputError(f"unknown entry kind(s) {bad}", f"valid kinds: {', '.join(sorted(valid))}")
        return kinds

    def search(self, text: str, k: int = 10, kinds: Sequence[str] | None = None) -> list[Hit]:
        """Hybrid search, reciprocal-rank fused (k=60) over three ranked lists: FTS5/BM25 on
        names and curated text (exact name/alias matches first), embedding similarity over the
        curated entries, and embedding similarity over the EmoLex words. Embedding hits under
        MIN_DENSE_SIM are dropped, so text that matches nothing (e.g. another language)
        returns few or no hits rather than noise."""
        return self.search_many([text], k=k, kinds=kinds)[0]

    def search_many(self, texts: Sequence[str], k: int = 10, kinds: Sequence[str] | None = None) -> list[list[Hit]]:
        if isinstance(texts, str):
            raise InputError("search_many takes a list of texts", "use search() for one text")
        if not 1 <= int(k) <= 200:
            raise InputError(f"k must be between 1 and 200, not {k}")
        kinds = self._check_kinds(kinds)
        queries = [self._clean_query(t) for t in texts]
        vecs = self._encode(queries) if queries else []
        sims = self._similarities(vecs)
        n = max(50, 5 * k)
        out = []
        for q, v in zip(queries, sims):
            lists = [self._lexical(q, n, kinds), self._dense(v, n, kinds, curated=True),
                     self._dense(v, n, kinds, curated=False)]
            rows, scores = self._fuse(lists, k)
            out.append(self._hits(rows, scores))
        return out

    # ------------------------------------------------------------------ lookup
    def get(self, ids: Sequence[str], *, missing: str = "raise") -> list[Hit]:
        """Entries by id, in the order asked (score 1.0). An unknown id raises KnowledgeError,
        or is left out with ``missing="skip"`` (an ImageNet class with no derived entry)."""
        ids = list(ids)
        if not ids:
            return []
        found = dict(self.db.execute(
            f"SELECT id, row FROM entries WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall())
        absent = [i for i in ids if i not in found]
        if absent and missing != "skip":
            raise KnowledgeError(f"no knowledge entry with id(s) {', '.join(absent)}")
        rows = [found[i] for i in ids if i in found]
        return self._hits(rows, [1.0] * len(rows))

    def lookup(self, concept: str) -> list[Hit]:
        """Entries whose name or alias is exactly ``concept`` (normalised)."""
        key = norm_key(concept)
        if not key:
            return []
        rows = [r[0] for r in self.db.execute("SELECT row FROM keys WHERE key = ? ORDER BY row", [key])]
        return self._hits(list(dict.fromkeys(rows)), [1.0] * len(rows))

    @staticmethod
    def _variants(key: str) -> list[str]:
        out = []
        for suf, rep in (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e")):
            if key.endswith(suf) and len(key) > len(suf) + 2:
                out.append(key[: -len(suf)] + rep)
        for a, b in (("colour", "color"), ("color", "colour"), ("grey", "gray"), ("gray", "grey")):
            if a in key:
                out.append(key.replace(a, b))
        return out

    def resolve(self, concept: str, search: bool = True) -> tuple[list[Hit], str]:
        """Evidence for a concept and how it was found (see EmotionProfile.match);
        ``search=False`` skips the hybrid-search fallback (lookups only, no embedding)."""
        key = norm_key(concept)
        if not key:
            raise InputError("empty concept", "give a word or short phrase, e.g. 'thunderstorm'")
        hits = self.lookup(key)
        if hits:
            return hits, "exact"
        for v in self._variants(key):
            hits = self.lookup(v)
            if hits:
                return hits, "variant"
        words = [w for w in key.split() if w not in STOPWORDS]
        if len(words) > 1:
            hits = []
            for w in words:
                found = self.lookup(w) or next((h for v in self._variants(w) if (h := self.lookup(v))), [])
                hits += found
            if hits:
                return hits, "tokens"
        if not search:
            return [], "none"
        hits = [h for h in self.search(concept, k=5) if h.kind != "definition"][:3]
        return (hits, "search") if hits else ([], "none")

    def emotions_of(self, concept: str, taxonomy: str = "mikels8") -> EmotionProfile:
        """A distribution over ``taxonomy``'s labels for what ``concept`` evokes, with evidence.

        Evidence entries are combined with per-source trust (curated 1.0, NRC lexicons 0.8,
        SenticNet 0.6; search hits further scaled by their rank).
        """
        tax = self._taxonomy_def(taxonomy)
        concept = self._clean_query(concept)
        hits, match = self.resolve(concept)
        canon = self.knowledge.taxonomies[CANONICAL].labels
        acc = dict.fromkeys(canon, 0.0)
        vsum = vw = asum = aw = 0.0
        for i, h in enumerate(hits):
            w = SOURCE_TRUST.get(_origin(h.id), 0.7) * (1.0 / (i + 1) if match == "search" else 1.0)
            tot = sum(h.weights.values())
            if tot > 0:
                for lab, x in h.weights.items():
                    acc[lab] = acc.get(lab, 0.0) + w * x / tot
            if h.valence is not None:
                vsum, vw = vsum + w * h.valence, vw + w
            if h.arousal is not None:
                asum, aw = asum + w * h.arousal, aw + w
        total = sum(acc.values())
        if total > 0:
            dist = {lab: acc[lab] / total for lab in canon}
        else:
            dist = dict.fromkeys(canon, 1.0 / len(canon))
        if tax.name != CANONICAL:
            dist = self.map_distribution(dist, CANONICAL, tax.name)
        return EmotionProfile(
            concept=concept, taxonomy=tax.name, distribution={k: round(v, 6) for k, v in dist.items()},
            evidence=hits, valence=round(vsum / vw, 4) if vw else None,
            arousal=round(asum / aw, 4) if aw else None, match=match,
        )

    def expand(self, concept: str, n: int = 5) -> list[str]:
        """Related concepts: curated aliases and SenticNet's related-concept graph (breadth
        first), then nearest embedded entries."""
        key = norm_key(self._clean_query(concept))
        out: list[str] = []
        seen = {key}
        frontier = [key]
        depth = 0
        while frontier and len(out) < n and depth < 3:
            nxt = []
            for c in frontier:
                for r in self.db.execute(
                        "SELECT e.related FROM keys k JOIN entries e ON e.row = k.row WHERE k.key = ?", [c]):
                    for rel in json.loads(r[0]):
                        rk = norm_key(rel)
                        if rk and rk not in seen:
                            seen.add(rk)
                            out.append(rel)
                            nxt.append(rk)
            frontier, depth = nxt, depth + 1
        if len(out) < n:
            for h in self.search(concept, k=n + 5, kinds=["cue", "concept", "lexicon"]):
                hk = norm_key(h.name)
                if hk and hk not in seen:
                    seen.add(hk)
                    out.append(h.name)
        return out[:n]

    # ------------------------------------------------------------------ taxonomies
    def _taxonomy_def(self, name: str):
        tax = self.knowledge.taxonomies.get(str(name).strip().lower())
        if tax is None:
            raise KnowledgeError(f"unknown taxonomy {name!r}", f"valid names: {', '.join(self.knowledge.taxonomies)}")
        return tax

    def define(self, label: str, taxonomy: str = "mikels8") -> EmotionDefinition:
        tax = self._taxonomy_def(taxonomy)
        lab = str(label).strip().lower()
        for e in tax.emotions:
            if e.label == lab:
                cites = [self.knowledge.sources[k] for k in e.sources]
                return EmotionDefinition(
                    id=f"def.{tax.name}.{e.label}", label=e.label, taxonomy=tax.name, definition=e.definition,
                    appraisal=e.appraisal, valence=e.valence, arousal=e.arousal,
                    source="; ".join(short_cite(c) for c in cites), citations=cites,
                )
        raise KnowledgeError(f"{label!r} is not a {tax.name} label", f"valid labels: {', '.join(tax.labels)}")

    def taxonomy(self, name: str) -> Taxonomy:
        tax = self._taxonomy_def(name)
        return Taxonomy(
            name=tax.name, title=tax.title, labels=tax.labels,
            definitions={lab: self.define(lab, tax.name) for lab in tax.labels},
            source="; ".join(short_cite(self.knowledge.sources[k]) for k in tax.sources),
        )

    def map_distribution(self, dist: dict[str, float], from_taxonomy: str, to_taxonomy: str) -> dict[str, float]:
        """Carry a distribution from one taxonomy to another through the curated mapping tables
        (directly, or through Mikels 8 when no direct table exists)."""
        src, dst = self._taxonomy_def(from_taxonomy), self._taxonomy_def(to_taxonomy)
        bad = [k for k in dist if k not in src.labels]
        if bad:
            raise KnowledgeError(f"{bad} not {src.name} label(s)", f"valid labels: {', '.join(src.labels)}")
        vals = {k: float(v) for k, v in dist.items()}
        if any(v < 0 or v != v for v in vals.values()):
            raise InputError("a distribution must have non-negative numbers")
        if src.name == dst.name:
            out = {lab: vals.get(lab, 0.0) for lab in src.labels}
        elif (src.name, dst.name) in self.knowledge.mappings:
            out = self._apply(vals, self.knowledge.mappings[(src.name, dst.name)].table, dst.labels)
        elif (src.name, CANONICAL) in self.knowledge.mappings and (CANONICAL, dst.name) in self.knowledge.mappings:
            mid = self._apply(vals, self.knowledge.mappings[(src.name, CANONICAL)].table,
                              self.knowledge.taxonomies[CANONICAL].labels)
            out = self._apply(mid, self.knowledge.mappings[(CANONICAL, dst.name)].table, dst.labels)
        else:
            raise KnowledgeError(f"no mapping from {src.name} to {dst.name}")
        total = sum(out.values())
        if total <= 0:
            return dict.fromkeys(dst.labels, 1.0 / len(dst.labels))
        return {k: v / total for k, v in out.items()}

    @staticmethod
    def _apply(dist: dict[str, float], table: dict[str, dict[str, float]], labels: list[str]) -> dict[str, float]:
        out = dict.fromkeys(labels, 0.0)
        for k, p in dist.items():
            row = table.get(k, {})
            s = sum(row.values())
            for lab, w in row.items():
                out[lab] += p * w / s
        return out

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict:
        size = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        kinds = dict(self.db.execute("SELECT kind, count(*) FROM entries GROUP BY kind").fetchall())
        families = dict(self.db.execute(
            "SELECT family, count(*) FROM entries WHERE family IS NOT NULL GROUP BY family").fetchall())
        return {
            "path": str(self.path), "size_bytes": size, "entries": self.manifest["entries"],
            "embedded": self.manifest["embedded"], "embedder": self.manifest["embedder"],
            "by_source": self.manifest["counts"], "by_kind": kinds, "by_family": families,
            "taxonomies": list(self.knowledge.taxonomies), "lexicons": self.manifest["lexicons"],
            "build_s": self.manifest["build_s"], "built_at": self.manifest["built_at"],
        }
