"""``Index``: the Python API over a built index.

    from kever.search import Index
    idx = Index.open("photos/.kever-index")
    idx.search(emotion="awe", limit=10).hits          # list[Hit], best first
    idx.search("calm evening by the sea", valence=(0.3, 1))
    idx.search(like="query.jpg", folder="2024/")

Models load lazily and once: a Mikels-8 emotion or a region needs none; another emotion word
or free text loads the embedder and the knowledge base; ``like=`` loads the index's preset.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from kever.errors import InputError
from kever.search import query as Q
from kever.search.results import Hit, SearchResult
from kever.search.store import N_EMOTIONS, Store, sql_str

MAX_LIMIT = 500


class Index:
    def __init__(self, store: Store, reasoner=None):
        self.store = store
        self._reasoner = reasoner
        self._kb = None
        self._embedder = None
        self._loading = threading.RLock()  # lazy loads happen once, also under a threaded server

    @classmethod
    def open(cls, path: str | Path, reasoner=None) -> "Index":
        """Open an index folder (or a photo folder holding ``.kever-index``). ``reasoner``: an
        already-loaded :class:`~kever.agent.reasoner.Reasoner` of the index's preset, to share."""
        return cls(Store.open(Path(path)), reasoner)

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def root(self) -> Path:
        return Path(self.store.manifest.root)

    @property
    def preset(self) -> str:
        return self.store.manifest.preset

    def __len__(self) -> int:
        return self.store.count()

    # -- lazily loaded models ---------------------------------------------------------------
    def reasoner(self):
        with self._loading:
            return self._load_reasoner()

    def _load_reasoner(self):
        if self._reasoner is None:
            from kever.agent.reasoner import Reasoner

            self._reasoner = Reasoner.from_preset(self.preset)
        return self._reasoner

    def embedder(self):
        with self._loading:
            return self._load_embedder()

    def _load_embedder(self):
        if self._embedder is None:
            r = self._reasoner
            if r is not None and getattr(getattr(r, "c", None), "embedder", None) is not None:
                self._embedder = r.c.embedder
            elif self.store.manifest.embedder.startswith("fake/"):
                from kever.tools.kb.embedder import FakeEmbedder

                self._embedder = FakeEmbedder()
            else:
                from kever.tools.kb.embedder import MiniLMEmbedder

                self._embedder = MiniLMEmbedder()
            if self._embedder.model_id != self.store.manifest.embedder:
                raise InputError(f"{self.path} was built with embedder {self.store.manifest.embedder}, "
                                 f"not {self._embedder.model_id}")
        return self._embedder

    def kb(self):
        with self._loading:
            return self._load_kb()

    def _load_kb(self):
        if self._kb is None:
            r = self._reasoner
            if r is not None and getattr(getattr(r, "c", None), "kb", None) is not None:
                self._kb = r.c.kb
            else:
                from kever.tools.kb import KnowledgeBase

                self._kb = KnowledgeBase.open(embedder=self.embedder())
        return self._kb

    # -- looking up -------------------------------------------------------------------------
    def get(self, path: str) -> dict | None:
        """The stored row of one photo (relative path), or None."""
        rows = self.store.get(f"path = {sql_str(path)}")
        return rows[0] if rows else None

    def file(self, path: str) -> Path | None:
        """The photo file of an indexed relative path (None if not indexed or outside the root)."""
        if self.get(path) is None:
            return None
        f = (self.root / path).resolve()
        try:
            f.relative_to(self.root.resolve())
        except ValueError:
            return None
        return f

    # -- searching --------------------------------------------------------------------------
    def search(
        self,
        text: str | None = None,
        *,
        emotion: str | None = None,
        like: str | Path | None = None,
        valence: tuple[float, float] | str | None = None,
        arousal: tuple[float, float] | str | None = None,
        min_confidence: float | None = None,
        folder: str | None = None,
        limit: int = 20,
    ) -> SearchResult:
        t0 = time.perf_counter()
        text = text.strip() if isinstance(text, str) else None
        if text is not None and len(text) > Q.MAX_QUERY_CHARS:
            raise InputError(f"query is {len(text)} characters; at most {Q.MAX_QUERY_CHARS}")
        if text and like is not None:
            raise InputError("give a query text or --like, not both", "an example photo already says what to look for")
        if not 1 <= int(limit) <= MAX_LIMIT:
            raise InputError(f"limit {limit} must be between 1 and {MAX_LIMIT}")
        if min_confidence is not None and not 0 <= float(min_confidence) <= 1:
            raise InputError(f"min-confidence {min_confidence} must be between 0 and 1")
        va = Q.parse_range(valence, -1, 1, "valence") if isinstance(valence, str) else valence
        ar = Q.parse_range(arousal, 0, 1, "arousal") if isinstance(arousal, str) else arousal
        desc: dict = {"limit": int(limit)}
        target = None
        vector = None
        exclude = None
        dim = self.store.manifest.dim
        if emotion is not None:
            word = emotion.strip().lower()
            target = Q.emotion_profile(word, None if word in Q.mikels8() else self.kb())  # a Mikels label needs no model
            desc["emotion"] = word
        if like is not None:
            q_text, q_emo, exclude = self._example(like)
            a, b = Q.LIKE_WEIGHTS
            target = q_emo if target is None else target
            vector = np.concatenate([a * q_text, b * target / max(np.linalg.norm(target), 1e-9)])
            desc.update(mode="like", like=str(like))
        elif text:
            q = self.embedder().encode([text])[0]
            implied = None
            if target is None:
                prof = self.kb().emotions_of(text, "mikels8")
                if prof.match != "none" and prof.evidence:
                    implied = np.array([prof.distribution.get(m, 0.0) for m in Q.mikels8()])
                    target = implied
            w_emo = Q.IMPLIED_WEIGHT if target is not None else 0.0
            r = target if target is not None else np.zeros(N_EMOTIONS)
            vector = np.concatenate([Q.TEXT_WEIGHT * q, w_emo * r])
            desc.update(mode="text", text=text)
            if implied is not None:
                desc["implied_emotions"] = {m: round(float(x), 3) for m, x in zip(Q.mikels8(), implied) if x >= 0.05}
        elif target is not None:
            vector = np.concatenate([np.zeros(dim), target])
            desc["mode"] = "emotion"
        else:
            desc["mode"] = "filter"
        if target is not None and "emotion" in desc:
            desc["profile"] = {m: round(float(x), 3) for m, x in zip(Q.mikels8(), target) if x >= 0.05}
        where = Q.where_clause(va, ar, min_confidence, folder, exclude)
        desc.update({k: v for k, v in (("valence", va), ("arousal", ar), ("min_confidence", min_confidence),
                                       ("folder", folder)) if v is not None})
        if vector is not None:
            rows = self.store.nearest(vector, where, int(limit))
            for row in rows:
                row["_score"] = 1.0 - float(row["_distance"])  # lance's dot distance is 1 - x.y
        else:
            if where is None:
                raise InputError("nothing to search for", "give a query text, --emotion, --like, --valence/--arousal or a filter")
            rows = self.store.scan(where)
            for row in rows:
                row["_score"] = _centrality(row, va, ar)
            rows.sort(key=lambda r: (-r["_score"], -r["confidence"]))
            rows = rows[: int(limit)]
        hits = [self._hit(row, target, desc.get("emotion")) for row in rows]
        return SearchResult(index=str(self.path), query=desc, total=len(self), hits=hits,
                            seconds=round(time.perf_counter() - t0, 4))

    def _example(self, like) -> tuple[np.ndarray, np.ndarray, str | None]:
        """(text embedding, unit emotion vector, sha to exclude) of an example photo: its stored
        judgment when the same file is indexed, else a fresh judgment."""
        from kever.search.build import doc_text, sha256

        p = Path(like)
        if not p.is_file():
            raise InputError(f"--like {like}: no such photo")
        digest = sha256(p)
        rows = self.store.get(f"sha256 = '{digest}'", ["vector"])
        dim = self.store.manifest.dim
        if rows:
            v = np.asarray(rows[0]["vector"], dtype=np.float32)
            t, e = v[:dim], v[dim:]
        else:
            j = self.reasoner().explain(p, rationale=False)
            t = self.embedder().encode([doc_text(j)])[0]
            e = np.array([j.canonical.get(m, 0.0) for m in Q.mikels8()])
        return np.asarray(t, dtype=np.float64), np.asarray(e, dtype=np.float64), digest

    def _hit(self, row: dict, target, asked: str | None) -> Hit:
        line, ref = Q.reason(row, target, asked)
        return Hit(path=row["path"], file=str(self.root / row["path"]), score=round(float(row["_score"]), 5),
                   label=row["label"], confidence=round(float(row["confidence"]), 4),
                   valence=round(float(row["valence"]), 4), arousal=round(float(row["arousal"]), 4),
                   scores={m: round(float(x), 4) for m, x in zip(Q.mikels8(), row["canonical"])},
                   reason=line, evidence_ref=ref)


def _centrality(row: dict, va, ar) -> float:
    """1 at the centre of the asked region, falling off towards its edges."""
    d = []
    if va is not None:
        c, h = (va[0] + va[1]) / 2, max((va[1] - va[0]) / 2, 1e-9)
        d.append(abs(row["valence"] - c) / h)
    if ar is not None:
        c, h = (ar[0] + ar[1]) / 2, max((ar[1] - ar[0]) / 2, 1e-9)
        d.append(abs(row["arousal"] - c) / h)
    if not d:
        return float(row["confidence"])
    return float(max(0.0, 1.0 - float(np.sqrt(np.mean(np.square(d))))))
