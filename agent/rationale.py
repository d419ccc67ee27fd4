"""The rationale: written by a language model from evidence ids, checked, else templated.

Small language models (the packaged SmolLM2-135M) write fluent sentences but do not copy
citation ids. When a model's text names the decided label but cites nothing, each sentence
is *attributed*: the cues and evidence whose texts are closest to it in embedding space
(cosine >= ``ATTRIBUTION_MIN``) are cited after it, and the result is marked
``rationale_kind = "model-attributed"``, so a reader knows the ids were attached by kever,
not by the model.

The check: at least one citation, every cited id ([C3], [E2]) exists in the judgment, and the
first label of the label set that the text names is the decided label (it argues for the
decision that the numbers made, not for another). A failed check gets one regeneration; a
second failure gets the templated rationale, recorded as ``rationale_kind = "template"``.
"""

from __future__ import annotations

import re

from kever.prompts import load_prompt

CITE = re.compile(r"\[([CE]\d+)\]")
ATTRIBUTION_MIN = 0.45
MAX_NEW_TOKENS = 48  # two short sentences; ~2 s for SmolLM2-135M on 2 idle cores


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: -kv[1])


def _fields(state) -> dict:
    ranked = _ranked(state.scores)
    runner = ranked[1] if len(ranked) > 1 else ranked[0]
    cues = "\n".join(f"[{c.id}] {c.family}: {c.text}" for c in sorted(state.cues, key=lambda c: -c.confidence)[:8])
    ev = []
    for e in state.evidence[:6]:
        top = ", ".join(k for k, _ in sorted(e.weights.items(), key=lambda kv: -kv[1])[:2])
        ev.append(f"[{e.ref}] {e.text} (associated with {top})")
    return dict(
        label=state.label, prob=state.scores[state.label], runner_up=runner[0], runner_prob=runner[1],
        cues=cues or "(none)", evidence="\n".join(ev) or "(none)",
    )


def check(text: str, state) -> str | None:
    """None if the rationale passes; else what is wrong."""
    if not text or len(text.strip()) < 20:
        return "empty or too short"
    cited = CITE.findall(text)
    if not cited:
        return "cites no evidence id"
    known = {c.id for c in state.cues} | {e.ref for e in state.evidence}
    bad = sorted(set(cited) - known)
    if bad:
        return f"cites unknown id(s) {', '.join(bad)}"
    lower = text.lower()
    positions = {lab: m.start() for lab in state.scores if (m := re.search(rf"\b{re.escape(lab.lower())}\b", lower))}
    if state.label not in positions:
        return f"does not name the decided label '{state.label}'"
    first = min(positions, key=positions.get)
    if first != state.label:
        return f"argues for '{first}' before the decided label '{state.label}'"
    for other in positions:
        if other != state.label and re.search(rf"\bevok\w*\s+(?:a |an )?{re.escape(other.lower())}\b", lower):
            return f"also says the image evokes '{other}'"
    sentences = [s.strip().lower() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    if len(set(sentences)) < len(sentences):
        return "repeats itself"
    return None


def template(state) -> str:
    ranked = _ranked(state.scores)
    label, p = ranked[0]
    parts = [f"The image most likely evokes {label} ({p:.0%})"]
    if len(ranked) > 1:
        parts[0] += f", ahead of {ranked[1][0]} ({ranked[1][1]:.0%})."
    else:
        parts[0] += "."
    supporting = [e for e in state.evidence if e.weights and max(e.weights, key=e.weights.get) == label][:3]
    cue_by_id = {c.id: c for c in state.cues}
    if supporting:
        bits = []
        for e in supporting:
            cue = cue_by_id.get(e.cue_ids[0]) if e.cue_ids else None
            seen = f"{cue.text} [{cue.id}]" if cue else "a cue"
            bits.append(f"{seen}, which the knowledge base links to {label} [{e.ref}]")
        parts.append("It rests on " + "; ".join(bits) + ".")
    elif state.cues:
        top = sorted(state.cues, key=lambda c: -c.confidence)[:3]
        parts.append("Cues seen: " + "; ".join(f"{c.text} [{c.id}]" for c in top) + ".")
    against = [e for e in state.evidence if e.weights and max(e.weights, key=e.weights.get) != label][:1]
    if against:
        e = against[0]
        other = max(e.weights, key=e.weights.get)
        parts.append(f"Some evidence points to {other} instead [{e.ref}].")
    return " ".join(parts)


_PREAMBLE = re.compile(r"^\s*(here(?:'|’)?s|here is|sure|certainly|okay)\b[^\n]*?:\s*", re.I)


def _complete_sentences(text: str) -> str:
    """Drop a chatty preamble ("Here's a rewritten version:") and a trailing half sentence
    (generation stopped at the token limit)."""
    text = _PREAMBLE.sub("", text.strip()).strip()
    end = max(text.rfind("."), text.rfind("!"), text.rfind("?"))
    return text[: end + 1] if end > 0 else text


def attribute(text: str, state, embedder) -> str:
    """Cite after each sentence the cues/evidence it paraphrases (see module docstring)."""
    import numpy as np

    items = [(c.id, c.text) for c in state.cues] + [(e.ref, e.text) for e in state.evidence]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    if not items or not sentences:
        return text
    encode = embedder.embed if hasattr(embedder, "embed") else embedder.encode
    emb = encode([t for _, t in items] + sentences)
    item_emb, sent_emb = emb[: len(items)], emb[len(items):]
    sims = sent_emb @ item_emb.T
    out = []
    for sent, row in zip(sentences, sims):
        best = [items[i][0] for i in np.argsort(row)[::-1][:2] if row[i] >= ATTRIBUTION_MIN]
        if best:
            cites = "".join(f"[{b}]" for b in best)
            sent = re.sub(r"([.!?])$", f" {cites}\\1", sent) if re.search(r"[.!?]$", sent) else f"{sent} {cites}"
        out.append(sent)
    return " ".join(out)


def write_rationale(state, text_lm, embedder=None) -> tuple[str, str, str | None, list[str]]:
    """(text, kind, prompt ref, notes)."""
    notes: list[str] = []
    if text_lm is None:
        return template(state), "template", None, notes
    prompt = load_prompt("rationale")
    messages = prompt.messages(**_fields(state))
    problem = None
    for attempt in range(2):
        try:
            text = _complete_sentences(text_lm.generate(messages, max_new_tokens=MAX_NEW_TOKENS))
        except Exception as e:
            notes.append(f"rationale model failed ({type(e).__name__}: {e}); templated rationale used")
            return template(state), "template", prompt.ref, notes
        problem = check(text, state)
        if problem is None:
            return text, "model", prompt.ref, notes
        if problem == "cites no evidence id" and embedder is not None:
            attributed = attribute(text, state, embedder)
            if check(attributed, state) is None:
                return attributed, "model-attributed", prompt.ref, notes
        messages = messages + [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"That answer {problem}. Rewrite it: explain why the image evokes {state.label}, citing ids like [C1] or [E1] from the lists above."},
        ]
    notes.append(f"model rationale failed its check twice ({problem}); templated rationale used")
    return template(state), "template", prompt.ref, notes
