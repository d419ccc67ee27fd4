"""Chat replies composed from a stored judgment (scores, cues, evidence): no model is run.

Every claim is traced to the cues and knowledge entries it comes from, in words a person
reads: the rationale's citations become numbered sources (``¹``) listed at the end of the
reply (see :mod:`kever.serve.render`); a knowledge line names its source and the cues that
retrieved it. The ids themselves stay in the judgment's JSON (``/v1/emotion``).
"""

from __future__ import annotations

from kever.agent.judgment import Cue, Evidence, Judgment
from kever.serve.render import Sources, source_name, with_sources


def _pct(p: float) -> str:
    return f"{100 * p:.0f}%"


def _ranked(j: Judgment) -> list[tuple[str, float]]:
    return sorted(j.scores.items(), key=lambda kv: -kv[1])


def _cues_of(j: Judgment, e: Evidence) -> list[Cue]:
    return [c for c in j.cues if c.id in e.cue_ids]


def _cues_for(j: Judgment, ev: list[Evidence]) -> list[Cue]:
    ids = {cid for e in ev for cid in e.cue_ids}
    cues = [c for c in j.cues if c.id in ids]
    return cues or sorted(j.cues, key=lambda c: -c.confidence)[:3]


def _support(j: Judgment, label: str, k: int = 4) -> list[Evidence]:
    ev = [e for e in j.evidence if j.push(e, label) > 0]
    return sorted(ev, key=lambda e: -j.push(e, label))[:k]


def _ev_line(j: Judgment, e: Evidence, *labels: str) -> str:
    """An evidence line with its push on each of ``labels``, as the judgment states it
    (:meth:`Judgment.push`): the same item shows the same push in every answer."""
    seen = _cues_of(j, e)
    lead = f"Seen: {_and([c.text for c in seen])}. " if seen else ""
    source = f"; {source_name(e.source)}" if e.source else ""
    pushes = ", ".join(f"{j.push(e, label):+.2f} on {label}" for label in labels)
    return f"- {lead}{e.text} (push {pushes}{source})"


def _cue_line(c: Cue) -> str:
    return f"- {c.family}: {c.text} (confidence {c.confidence:.2f})"


def _and(items: list[str]) -> str:
    items = [f"“{x}”" for x in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def scores_table(j: Judgment) -> str:
    return "\n".join(f"- {name}: {_pct(p)}" for name, p in _ranked(j))


def first_answer(j: Judgment) -> str:
    src = Sources(j)
    top = _ranked(j)[:3]
    lines = [f"**{j.label}** ({_pct(j.confidence)} confidence; valence {j.valence:+.2f}, arousal {j.arousal:.2f})."]
    if len(top) > 1:
        lines.append("Next: " + ", ".join(f"{n} {_pct(p)}" for n, p in top[1:]) + ".")
    if j.rationale:
        lines += ["", src.cite(j.rationale)]
    hint = ("Ask a follow-up: \"why not <emotion>?\", \"what in the image made it "
            f"{j.label}?\", \"answer for Ekman's six instead\", \"show the scores\".")
    return with_sources("\n".join(lines), src) + "\n\n" + hint


def projected(j: Judgment, label: str) -> str | None:
    """For a label set projected from the fused Mikels-8 distribution, where evidence is weighted
    over Mikels-8: say so, with that distribution."""
    canonical = getattr(j, "canonical", None) or {}
    if not canonical or label in canonical or label == j.label:
        return None
    top = ", ".join(f"{m} {_pct(p)}" for m, p in sorted(canonical.items(), key=lambda kv: -kv[1])[:4])
    return (f"The evidence is weighted over the Mikels-8 emotions; the {j.label_set} scores, {label} "
            f"{_pct(j.scores[label])} among them, are that fused distribution mapped onto {j.label_set} "
            f"(fused: {top}).")


def support(j: Judgment, label: str | None) -> str:
    label = label or j.label
    if label not in j.scores:
        return not_in_set(j, label)
    note = projected(j, label)
    if note:
        return note + "\n\nCues seen:\n" + "\n".join(_cue_line(c) for c in sorted(j.cues, key=lambda c: -c.confidence)[:5])
    ev = _support(j, label)
    head = f"What points to **{label}** ({_pct(j.scores[label])})"
    if not ev:
        return f"{head}: no knowledge entry in this judgment supports {label}; its score comes from the prior " \
               f"and the other streams.\n\nCues seen:\n" + "\n".join(_cue_line(c) for c in j.cues[:5])
    out = [f"{head}:", "", "Knowledge used:", *(_ev_line(j, e, label) for e in ev), "", "From these cues in the image:"]
    out += [_cue_line(c) for c in _cues_for(j, ev)]
    return "\n".join(out)


def contrast(j: Judgment, label: str) -> str:
    if label not in j.scores:
        return not_in_set(j, label)
    ranked = [n for n, _ in _ranked(j)]
    if label == j.label:
        return f"It is {label}: {label} is the top label ({_pct(j.scores[label])}).\n\n" + support(j, label)
    rank = ranked.index(label) + 1
    out = [f"**{label}** scored {_pct(j.scores[label])} (rank {rank} of {len(ranked)}), against "
           f"{_pct(j.scores[j.label])} for **{j.label}**."]
    note = projected(j, label)
    if note:
        return "\n\n".join([out[0], note])
    # ordered by how far an item separates the two labels; what is shown is its push on each
    separation = {e.id: j.push(e, j.label) - j.push(e, label) for e in j.evidence}
    for_top = sorted((e for e in j.evidence if separation[e.id] > 0), key=lambda e: -separation[e.id])[:3]
    for_it = _support(j, label, 3)
    if for_top:
        out += ["", f"Evidence that favours {j.label} over {label} (its push on each):",
                *(_ev_line(j, e, j.label, label) for e in for_top)]
    if for_it:
        out += ["", f"What did point towards {label}, more weakly:", *(_ev_line(j, e, label) for e in for_it)]
    else:
        out += ["", f"No cue or knowledge entry in this judgment points to {label}."]
    return "\n".join(out)


def with_model_answer(j: Judgment, model_text: str, composed: str) -> str:
    """The language model's checked answer first, then the composed answer it was written from."""
    src = Sources(j)
    return with_sources(f"{src.cite(model_text)}\n\n{composed}", src)


def scores(j: Judgment) -> str:
    return f"Scores ({j.label_set}, summing to 100%):\n{scores_table(j)}\n\nconfidence {_pct(j.confidence)}, " \
           f"valence {j.valence:+.2f}, arousal {j.arousal:.2f}"


def relabeled(j: Judgment, why: str = "") -> str:
    return f"Re-scored over {', '.join(j.scores)} from the same cues and evidence (perception not re-run){why}:\n\n" \
        + first_answer(j)


def not_in_set(j: Judgment, label: str) -> str:
    return f"'{label}' is not in this judgment's labels ({', '.join(j.scores)}). " \
           "Ask e.g. \"answer for Ekman's six instead\" or \"labels: a, b, c\" to switch label set."


def no_image() -> str:
    return "Send an image (an image_url part, e.g. a data: URL) and I will say which emotion it evokes and why; " \
           "then ask follow-ups about it."
