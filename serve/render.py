"""What a person reads in a chat: citations as numbered sources, progress as one line per step.

The judgment cites its cues and knowledge entries by id (``[C2]``, ``[E1]``, an entry id); in
the JSON (``/v1/emotion``) those ids are the point, in a chat answer they are noise. Here each
cited id becomes a superscript number (``¹``), the same number each time it recurs in one
reply, and the reply ends with a *Sources* list saying what each number is: a cue seen in the
image, or a piece of affective knowledge and where it comes from. Bracketed text that names
nothing in the judgment is left as written.
"""

from __future__ import annotations

import re

from kever.agent.judgment import Cue, Evidence, Judgment

_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
#: a run of one or more bracketed ids, with the spaces before it: " [C2][E1]", " [C1, E3]"
_RUN = re.compile(r"\s*(?:\[[A-Za-z][\w.:/-]{0,80}(?:\s*[,;]\s*[A-Za-z][\w.:/-]{0,80})*\])+")
_ID = re.compile(r"[A-Za-z][\w.:/-]{0,80}")
_KEVER_FILE = re.compile(r"\s*\(kever [^()]*\)")  # "(kever cues/colour.yaml)": provenance kept in the JSON


def sup(n: int) -> str:
    return str(n).translate(_SUP)


class Sources:
    """Numbers the cues and knowledge entries one reply cites, in order of first citation."""

    def __init__(self, j: Judgment):
        self.j = j
        self._by_id: dict[str, Cue | Evidence] = {}
        for e in j.evidence:
            self._by_id[e.id] = e
            if e.ref:
                self._by_id[e.ref] = e
        for c in j.cues:
            self._by_id[c.id] = c
        self._order: list[Cue | Evidence] = []

    def number(self, item: Cue | Evidence) -> int:
        for i, seen in enumerate(self._order):
            if seen is item:
                return i + 1
        self._order.append(item)
        return len(self._order)

    def mark(self, items: list[Cue | Evidence]) -> str:
        nums = sorted({self.number(x) for x in items})
        return ",".join(sup(n) for n in nums)

    def cite(self, text: str) -> str:
        """Replace every run of known ids in ``text`` with superscript numbers."""

        def repl(m: re.Match) -> str:
            ids = _ID.findall(m.group(0))
            items = [self._by_id[i] for i in ids if i in self._by_id]
            if len(items) != len(ids):
                return m.group(0)  # not (only) citations: leave it alone
            return self.mark(items)

        return _RUN.sub(repl, text)

    def footer(self) -> str:
        if not self._order:
            return ""
        lines = ["**Sources**", ""]
        for i, item in enumerate(self._order, 1):
            lines.append(f"- {sup(i)} {describe(item)}")
        return "\n".join(lines)


def source_name(source: str) -> str:
    """Where a knowledge entry comes from, for a person: the literature, without kever's file name."""
    s = _KEVER_FILE.sub("", source.strip()).strip()
    return s[:160] + ("…" if len(s) > 160 else "")


def describe(item: Cue | Evidence) -> str:
    if isinstance(item, Cue):
        return f"Seen in the image: {item.text} ({item.family}, confidence {item.confidence:.2f})"
    return f"Knowledge: {item.text}" + (f" — {source_name(item.source)}" if item.source else "")


def with_sources(body: str, sources: Sources) -> str:
    foot = sources.footer()
    return body if not foot else body.rstrip() + "\n\n" + foot


# ---------------------------------------------------------------- progress

#: node -> what the step does, in a person's words (one line per step in the "thinking" block).
STEPS = {
    "understand": None,  # reading the question: instant, not worth a line
    "judge": None,  # the reasoner's own steps follow
    "answer": None,
    "perceive": "Looking at the image: colour, faces, objects, text",
    "describe_cues": "Describing what the image shows",
    "retrieve": "Looking up what is known about these cues",
    "align": "Checking each cue against the image",
    "reconcile": "Weighing the evidence",
    "deliberate": "A close call: taking a second look",
    "rationale": "Writing the explanation",
    "followup": "Writing the answer",
    "relabel": "Re-scoring over another set of labels (the image is not looked at again)",
    "consult": "Asking the language model which knowledge to look up",
}


class Progress:
    """One line per step run: at its start when the reasoner reports starts, else at its end."""

    def __init__(self):
        self._open: set[str] = set()

    def line(self, ev: dict) -> str | None:
        node, status = str(ev.get("node", "?")), ev.get("status", "end")
        if status == "start":
            self._open.add(node)
        elif node in self._open:
            self._open.discard(node)
            return None  # announced at its start
        text = STEPS.get(node, "Working")  # never a raw node name (a step without a line reads "Working")
        return None if text is None else f"{text}\n"
