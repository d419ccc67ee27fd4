"""A query as one vector and one filter, and each hit's one-line reason.

Every photo's stored vector is ``[t | p]``: ``t`` the unit text embedding of what was seen and
judged, ``p`` its Mikels-8 distribution. A query vector ``[a * q | b * r]`` makes the store's
dot product ``a * cos(q, t) + b * (r . p)``, an exact blend in one scan:

- ``--emotion WORD``: ``a = 0``, ``r`` = the word's Mikels-8 profile, mapped as ``kever explain
  --labels`` maps it (:func:`emotion_profile`), so the score is the photo's probability of the
  word's emotions;
- free text: ``q`` = its embedding, ``r`` = the emotions the knowledge base says the words
  evoke (``kb.emotions_of``), blended ``TEXT_WEIGHT : IMPLIED_WEIGHT``; with ``--emotion`` too,
  that word's profile replaces the implied one;
- ``--like photo``: ``q`` and ``r`` are the example's own ``t`` and (unit) ``p``.

Valence/arousal regions, confidence and folder are filters applied before the scan; a query
of filters alone ranks by nearness to the region's centre.
"""

from __future__ import annotations

import json
import re

import numpy as np

from kever.errors import InputError

TEXT_WEIGHT = 0.7
IMPLIED_WEIGHT = 0.3
LIKE_WEIGHTS = (0.5, 0.5)
MAX_QUERY_CHARS = 500
MAX_REASON_CHARS = 120
_RANGE = re.compile(r"^\s*(-?\d*\.?\d*)\s*\.\.\s*(-?\d*\.?\d*)\s*$")


def mikels8() -> tuple[str, ...]:
    from kever.agent.fusion import MIKELS8

    return MIKELS8


def emotion_profile(word: str, kb) -> np.ndarray:
    """The Mikels-8 profile (sums to 1) of one emotion word: a Mikels label is itself; another
    label set's label or any emotion word goes through :func:`kever.agent.labels.resolve_labels`,
    the mapping ``explain --labels`` uses (an unknown word is the same one-line error)."""
    from kever.agent.labels import resolve_labels

    m8 = mikels8()
    w = (word or "").strip().lower()
    if not w:
        raise InputError("empty emotion word", "e.g. --emotion awe, --emotion joy, --emotion calm")
    if "," in w:
        raise InputError(f"--emotion takes one word, not a list ({word!r})", "run one search per emotion")
    if w in m8:
        r = np.zeros(len(m8))
        r[m8.index(w)] = 1.0
        return r
    # resolved beside the eight Mikels labels, each column of the label set's matrix is
    # P(word | m) = (r_m + e) / (r_m + 1 + 9e) (labels.py adds e = 1e-6 to every row, then
    # normalises each column); solve for the word's own profile r.
    try:
        x = resolve_labels([w, *m8], kb).matrix[0]
    except InputError:
        raise InputError(f"unknown emotion word '{w}': the knowledge base has no emotion associations for it",
                         "use an emotion word, e.g. awe, joy, calm, dread, or any mikels8/emotion6/sentiment label") from None
    eps = 1e-6
    r = np.clip((x * (1 + 9 * eps) - eps) / np.clip(1 - x, 1e-12, None), 0, None)
    if r.sum() <= 0:
        raise InputError(f"'{word}' has no emotion associations in the knowledge base")
    return r / r.sum()


def parse_range(spec: str | None, lo: float, hi: float, name: str) -> tuple[float, float] | None:
    if spec is None:
        return None
    m = _RANGE.match(str(spec))
    if not m or (not m.group(1) and not m.group(2)):
        raise InputError(f"--{name} {spec!r} is not a range", f"write it as a..b within {lo:g}..{hi:g}, e.g. 0.3..1 or ..0.4")
    try:
        a = float(m.group(1)) if m.group(1) else lo
        b = float(m.group(2)) if m.group(2) else hi
    except ValueError:
        raise InputError(f"--{name} {spec!r} is not a range", f"write it as a..b within {lo:g}..{hi:g}") from None
    if a > b or a < lo or b > hi:
        raise InputError(f"--{name} {spec!r} must lie within {lo:g}..{hi:g}, low end first")
    return a, b


def sql_prefix(folder: str) -> str:
    """A folder prefix as a SQL LIKE pattern on ``path`` (``%``, ``_`` and ``\\`` escaped)."""
    f = folder.strip().replace("\\", "/").lstrip("./") if folder.strip() not in (".", "./") else ""
    esc = f.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("'", "''")
    return f"path LIKE '{esc}%' ESCAPE '\\'"


def where_clause(valence=None, arousal=None, min_confidence=None, folder=None, exclude_sha=None) -> str | None:
    parts = []
    if valence is not None:
        parts.append(f"valence >= {valence[0]!r} AND valence <= {valence[1]!r}")
    if arousal is not None:
        parts.append(f"arousal >= {arousal[0]!r} AND arousal <= {arousal[1]!r}")
    if min_confidence is not None:
        parts.append(f"confidence >= {float(min_confidence)!r}")
    if folder:
        parts.append(sql_prefix(folder))
    if exclude_sha:
        parts.append(f"sha256 != '{exclude_sha}'")
    return " AND ".join(f"({p})" for p in parts) or None


def reason(row: dict, target: np.ndarray | None, asked: str | None = None) -> tuple[str, str | None]:
    """One line from the stored evidence: the item that pushes most towards what was asked
    (``target``, a Mikels-8 profile, named ``asked``), or the one that moved the decided label
    most. The arrow names what the item raises: the asked emotion when it raises it, else the
    label it favours most."""
    m8 = mikels8()
    evidence = json.loads(row.get("evidence") or "[]")
    cues = {c["id"]: c for c in json.loads(row.get("cues") or "[]")}
    if not evidence:
        return f"judged {row['label']}; no evidence was recorded", None
    if target is not None:
        def key(e):
            return sum(float(t) * e.get("pushes", {}).get(m, 0.0) for m, t in zip(m8, target))
    else:
        def key(e):
            return e.get("score", 0.0)
    e = max(evidence, key=key)
    cue = next((cues[c] for c in e.get("cue_ids", []) if c in cues), None)
    towards = asked if asked and target is not None and key(e) > 0 else (e.get("points_to") or row["label"])
    text = " ".join(str(e.get("text", "")).split())
    line = f"{cue.get('say') or cue.get('text')} → {towards}: {text}" if cue else f"{towards}: {text}"
    if len(line) > MAX_REASON_CHARS:
        line = line[:MAX_REASON_CHARS - 1].rstrip() + "…"
    ref = e.get("ref") or None
    return (line + (f" [{ref}]" if ref else "")), ref
