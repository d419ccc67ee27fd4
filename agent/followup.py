"""A follow-up question about a stored judgment ("why not fear?", "what made it awe?"),
answered by the preset's language model from that judgment alone, and checked.

The model is given the judgment's own facts: the decided label and the asked one with their
scores, and the cues and knowledge items that moved the two apart (each with its push on each
label, from the evidence's ``pushes``). Its answer must pass :func:`check_followup`: it cites at
least one id of the judgment and none it does not hold, names the asked label, never says the
image evokes a label other than the decided one (it may say it does not), names no object,
scene or expression absent from the cues and evidence, and does not repeat itself. A failed
check gets one regeneration; a second failure returns ``None`` and the caller keeps the answer
composed from the numbers (``kever.serve.answers``), which is right by construction.
Nothing here changes the judgment: the label stays the one the numbers decided.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kever.agent.judgment import Evidence, Judgment, RationaleAttempt
from kever.agent.rationale import citation_problem, generate_checked, repeat_problem, stray_labels, unseen_problem
from kever.prompts import load_prompt

MAX_NEW_TOKENS = 80


@dataclass
class FollowUp:
    text: str | None  # the model's checked answer; None: keep the composed one
    prompt_ref: str | None = None
    notes: list[str] = field(default_factory=list)
    attempts: list[RationaleAttempt] = field(default_factory=list)


def facts(j: Judgment, asked: str, k: int = 6) -> tuple[str, str]:
    """(cue lines, evidence lines) for the model: the items that most separate the decided label
    from ``asked`` (for ``asked == j.label``: the strongest support), each marked with its side."""
    top = j.label
    # pushes as the judgment states them (Judgment.push); their difference only orders and sides
    # the items (it is shown as "favours X over Y", never as a push)
    if asked == top:
        key = {e.id: j.push(e, top) for e in j.evidence}
    else:
        key = {e.id: j.push(e, top) - j.push(e, asked) for e in j.evidence}
    ev = sorted(j.evidence, key=lambda e: -abs(key[e.id]))[:k]

    def side(e: Evidence) -> str:
        if asked == top:
            return f"for {top}" if key[e.id] > 0 else f"against {top}"
        return f"favours {top} over {asked}" if key[e.id] > 0 else f"favours {asked} over {top}"

    ev_lines = [f"[{e.ref}] {e.text[:160]} ({side(e)})" for e in ev if e.ref]
    cue_ids = [cid for e in ev for cid in e.cue_ids]
    by_id = {c.id: c for c in j.cues}
    cues = [by_id[c] for c in dict.fromkeys(cue_ids) if c in by_id][:k] or sorted(j.cues, key=lambda c: -c.confidence)[:3]
    cue_lines = [f"[{c.id}] {c.family}: {c.text}" for c in cues]
    return "\n".join(cue_lines) or "(none)", "\n".join(ev_lines) or "(none)"


#: the checks a model-written follow-up must pass, in the order they are reported
CHECKS = ("cites existing ids", "names the asked label", "never says another label is evoked", "names nothing unseen",
          "no repeats")


def check_followup(text: str, j: Judgment, asked: str) -> dict[str, str | None]:
    """Each check of :data:`CHECKS` -> None (passed) or what is wrong."""
    out: dict[str, str | None] = dict.fromkeys(CHECKS)
    known = {c.id for c in j.cues} | {e.ref for e in j.evidence if e.ref}
    out["cites existing ids"] = citation_problem(text, known, 1)
    if not re.search(rf"\b{re.escape(asked.lower())}\b", (text or "").lower()):
        out["names the asked label"] = f"does not name '{asked}'"
    out["never says another label is evoked"] = stray_labels(text or "", j.label, j.scores, allowed=(asked,))
    out["names nothing unseen"] = unseen_problem(text, j)
    out["no repeats"] = repeat_problem(text)
    return out


def answer_followup(text_lm, j: Judgment, question: str, asked: str | None) -> FollowUp:
    """The model's answer to ``question`` about ``j`` (checked, one regeneration), or ``text=None``."""
    asked = asked or j.label
    if asked not in j.scores:
        return FollowUp(None, notes=[f"'{asked}' is not in the judgment's labels"])
    prompt = load_prompt("followup")
    cues, evidence = facts(j, asked)
    messages = prompt.messages(question=question.strip()[:300], label=j.label, prob=j.scores[j.label], asked=asked,
                               asked_prob=j.scores[asked], cues=cues, evidence=evidence)
    got = generate_checked(text_lm, messages, lambda t: check_followup(t, j, asked),
                           f"Rewrite it using only the facts listed, naming {asked} and citing ids like [C1] or [E1].",
                           MAX_NEW_TOKENS)
    out = FollowUp(got.text, prompt.ref, attempts=got.attempts)
    if got.error:
        out.notes.append(f"follow-up model failed ({got.error}); the composed answer is used")
    elif got.text is None:
        out.notes.append(f"model follow-up failed its check twice ({got.problem}); the composed answer is used")
    return out
