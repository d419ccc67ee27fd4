"""The written explanation: a rationale that is right by construction, from the decision itself.

Every preset falls back to it, and it is the rationale wherever no capable language model is
configured. It costs well under a millisecond and reads the decision's exact contributions
(each shown evidence item's ``pushes`` on the label's log-score, agent/fusion.py), so it can
only say what the numbers did, and cites only what the judgment shows:

1. the label as what it is: the emotion this photo evokes more than photos in general do, with
   its probability beside its base rate; the likelier label when that is not the label (it is
   what photos in general evoke), and a near-tie in lift said as one;
2. the cues that pushed the label up most, in plain words (``Cue.say``, from cue_rules.yaml),
   each cited once with the strongest piece of evidence it brought ("the smiling, happy face
   [C3][E1]"); cues that read the same are said once ("two smiling, happy faces [C3][C4][E1]");
3. the cue that pulled hardest the other way, and which label it pointed to.

Wording is data (``EXPLAIN``) and thresholds are constants below; nothing here decides.
"""

from __future__ import annotations

from collections import defaultdict

NEAR_TIE = 0.03  # top two within 3 points: a near-tie
CLOSE = 0.12  # within 12 points: "narrowly ahead"
MIN_SHARE = 0.15  # a supporting cue is named if it carries >= 15% of the top cue's push
MAX_SUPPORT = 3
AGAINST_SHARE = 0.25  # the strongest opposing cue is named if its pull >= 25% of the top push

#: streams that are not one cue's doing: said in their own sentence, never credited to a cue
WHOLE_STREAMS = {
    "deliberation": "Weighing the cues against what typically elicits {label} and {other} tipped the balance {ref}.",
    "direct_vlm": "The vision-language model, asked directly, also named {label} {ref}.",
}

#: plain-words templates per cue family ({text} is the cue's text)
PHRASE = {
    "face": "the {text}",
    "object": "the {text}",
    "scene": "the {text}",
    "colour": "the {text}",
    "lighting": "the {text}",
    "composition": "the {text}",
    "text": 'the words "{text}" in the image',
    "concept": "what the knowledge base says of {text}",
    "narrative": "the scene as described",
}


def _phrase(cue) -> str:
    if getattr(cue, "say", ""):
        return cue.say
    text = cue.text.strip().rstrip(".")
    if cue.family == "object" and cue.confidence < 0.3:
        return f"what looks like {_a(text)}"
    return PHRASE.get(cue.family, "{text}").format(text=text)


def _a(noun: str) -> str:
    """'a bakery', 'an owl', 'sunglasses' (a plural takes no article)."""
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def cue_contributions(evidence) -> tuple[dict[str, float], dict[str, list]]:
    """Per cue: its share of the label's log-score (each item's ``score``, its exact part of the
    decided label's centred logit, split evenly over the cues that brought it), and its items,
    strongest first."""
    total: dict[str, float] = defaultdict(float)
    items: dict[str, list] = defaultdict(list)
    for e in evidence:
        if not e.cue_ids or e.stream in WHOLE_STREAMS:
            continue
        c = e.score
        for cid in e.cue_ids:
            total[cid] += c / len(e.cue_ids)
            items[cid].append((c, e))
    for cid in items:
        items[cid].sort(key=lambda ce: -abs(ce[0]))
    return dict(total), {cid: [e for _, e in v] for cid, v in items.items()}


NEAR_LIFT = 1.15  # the runner-up's lift within 15% of the label's: a near-tie


def standing(scores: dict[str, float], label: str, base: dict[str, float], lift: dict[str, float], verb: str) -> str:
    """The first sentence: the label as the emotion raised most above photos in general, its
    probability beside its base rate, and the likelier label when that is another one."""
    p, b = scores[label], base.get(label, 0.0)
    ranked = sorted(lift, key=lambda k: -lift[k])
    runner = next((k for k in ranked if k != label), None)
    out = f"This image {verb} {label} more than photos in general do ({p:.0%} here, {b:.0%} for photos in general)"
    if runner is not None and lift[label] < NEAR_LIFT * lift[runner]:
        out += f", in a near-tie with {runner} ({scores[runner]:.0%}, {base.get(runner, 0.0):.0%} in general)"
    out += "."
    likelier = max(scores, key=scores.get)
    if likelier != label:
        out += (f" {_capital(likelier)} is likelier ({scores[likelier]:.0%}), but no more than in photos in general "
                f"({base.get(likelier, 0.0):.0%}).") if lift[likelier] <= 1.0 else (
                f" {_capital(likelier)} is likelier ({scores[likelier]:.0%}), but raised less above its usual {base.get(likelier, 0.0):.0%}.")
    return out


def closeness(scores: dict[str, float], label: str) -> str:
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    p = scores[label]
    if len(ranked) < 2:
        return f"{label} ({p:.0%})"
    runner, q = next((k, v) for k, v in ranked if k != label)
    if p - q < NEAR_TIE:
        return f"{label} ({p:.0%}), in a near-tie with {runner} ({q:.0%})"
    if p - q < CLOSE:
        return f"{label} ({p:.0%}), narrowly ahead of {runner} ({q:.0%})"
    return f"{label} ({p:.0%}), ahead of {runner} ({q:.0%})"


def written_explanation(label: str, scores: dict[str, float], cues, evidence, labels=None,
                        base: dict[str, float] | None = None, lift: dict[str, float] | None = None) -> str:
    """Two or three sentences (see the module docstring). ``labels``: the asked LabelSet, to name
    what pointed elsewhere in its words; ``base`` and ``lift``: the decision's base rates and
    lifts (without them the label is said as the most likely one)."""
    cue_by_id = {c.id: c for c in cues}
    verb = "reads as" if labels is not None and labels.name == "sentiment" else "evokes"
    if base and lift:
        first = standing(scores, label, base, lift, verb)
    else:
        first = f"This image most likely {verb} {closeness(scores, label)}."
    total, items = cue_contributions(evidence)
    cited_refs: set[str] = set()

    def cite(cid: str, same: tuple[str, ...] = ()) -> str:
        """The cue in plain words with its ids, and the strongest evidence not yet cited;
        ``same``: more cues that read the same (two smiling faces), said once, all cited."""
        ref = next((e.ref for e in items.get(cid, []) if e.ref not in cited_refs), None)
        if ref:
            cited_refs.add(ref)
        ids = "".join(f"[{c}]" for c in (cid, *same))
        cue = cue_by_id[cid]
        if cue.family == "concept" and same:  # the agent's lookups, said as one: "what the knowledge base says of a and b"
            said = PHRASE["concept"].format(text=_join([cue_by_id[c].text.strip() for c in (cid, *same)]))
        else:
            said = _plural(_phrase(cue), 1 + len(same))
        return f"{said} {ids}" + (f"[{ref}]" if ref else "")

    support = sorted((c for c, v in total.items() if v > 0 and c in cue_by_id), key=lambda c: -total[c])
    top = total[support[0]] if support else 0.0
    support = [c for c in support if total[c] >= MIN_SHARE * top]
    groups: dict[str, list[str]] = {}  # phrase -> its cues, strongest first (one phrase is said once)
    for c in support:
        key = "concept" if cue_by_id[c].family == "concept" else _phrase(cue_by_id[c])
        groups.setdefault(key, []).append(c)
    grouped = list(groups.values())[:MAX_SUPPORT]
    support = [c for g in grouped for c in g]
    sentences = [first]
    if support:
        sentences.append(f"It rests mostly on {_join([cite(g[0], tuple(g[1:])) for g in grouped])}.")
    else:
        sentences.append("No cue in the image clearly points to it; the call rests on weak evidence.")
    for e in evidence:  # deliberation that moved the label as much as the strongest cue
        if e.stream in WHOLE_STREAMS and e.ref not in cited_refs:
            c = e.score
            if c > 0 and c >= top:
                ranked = sorted(scores, key=lambda k: -scores[k])
                other = next((k for k in ranked if k != label), label)
                sentences.append(WHOLE_STREAMS[e.stream].format(label=label, other=other, ref=f"[{e.ref}]"))
                cited_refs.add(e.ref)
    said = {_phrase(cue_by_id[c]) for c in support}
    against = sorted((c for c, v in total.items() if v < 0 and c in cue_by_id and c not in support
                      and _phrase(cue_by_id[c]) not in said), key=lambda c: total[c])
    if against and top > 0 and -total[against[0]] >= AGAINST_SHARE * top:
        cid = against[0]
        other = next((o for e in items[cid] if (o := e.points_to) and o != label), None)
        if other:
            sentences.append(f"{_capital(cite(cid))} pulled the other way, toward {other}.")
    return " ".join(sentences)


NUMBER = {2: "two", 3: "three", 4: "four", 5: "five"}


def _plural(phrase: str, n: int) -> str:
    """'the smiling, happy face' said of n cues: 'two smiling, happy faces'."""
    if n == 1:
        return phrase
    words = phrase.split()
    if words and words[0].lower() in ("the", "a", "an"):
        words = words[1:]
    last = words[-1] if words else ""
    if last and not last.endswith("s"):
        words[-1] = last + ("es" if last.endswith(("x", "ch", "sh")) else "s")
    return f"{NUMBER.get(n, str(n))} {' '.join(words)}"


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:]
