"""The rationale: the written explanation (agent/explain.py), or a language model's, checked.

A model that can answer under a JSON-schema grammar (``generate_json``: llama.cpp, the fakes)
fills a structure instead of writing free text (:func:`structured_rationale`): up to three
points, strongest first, each naming ids of the facts shown (an enum: it cannot cite an id
that is not there) and its own short phrase. kever writes the sentence around them, the label
included, and keeps a point only if the text with it still passes :func:`check_all`; the
points left out are recorded with the check they failed. Fewer than two ids left gets one
regeneration, then the written explanation.

With no text model the rationale is the written explanation, right by construction. With one,
the model writes from the decision's own contributions (the cues and evidence that moved the
label, strongest first, each with the label it pushes toward), and its text must pass
:func:`check`: it names the decided label before any other label, never says another label is
evoked, cites at least two ids that exist in the judgment, names no object, scene or expression
that the cues and evidence do not mention, and does not repeat itself. A failed check gets one
regeneration; a second failure gets the written explanation (``rationale_kind = "template"``)
and a warning that says why.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from kever.agent.explain import WHOLE_STREAMS, cue_contributions, written_explanation
from kever.agent.fusion import MIKELS8
from kever.agent.judgment import RationaleAttempt
from kever.prompts import load_prompt

#: prompt versions: a model that fills a JSON structure, one that writes free text
STRUCTURED_PROMPT, FREE_TEXT_PROMPT = 4, 3
CITE = re.compile(r"\[([CE]\d+)\]")
MAX_NEW_TOKENS = 80  # two or three short sentences
#: the structured answer: points, ids per point, characters per phrase, and its token budget
MAX_POINTS, MAX_IDS, MAX_PHRASE = 3, 2, 72
STRUCTURED_MAX_NEW_TOKENS = 112  # above what three capped points take: the answer is never cut
#: facts shown to a model filling the structure (cues, then evidence), characters of each
SHOWN_CUES, SHOWN_EVIDENCE, FACT_CHARS = 3, 3, 72
MIN_CITATIONS = 2
#: words of the perception vocabulary too generic to count as naming something unseen
GENERIC = frozenset("image photo picture scene people person face faces thing light colour color view place background "
                    "foreground sky water day night time".split())


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: -kv[1])


def _fields(state) -> dict:
    ranked = _ranked(state.scores)
    runner = ranked[1] if len(ranked) > 1 else ranked[0]
    total, _ = cue_contributions(state.evidence)
    by_id = {c.id: c for c in state.cues}
    order = sorted((c for c in total if c in by_id), key=lambda c: -total[c])[:8]
    cues = "\n".join(f"[{c}] {by_id[c].family}: {by_id[c].text} ({'for' if total[c] > 0 else 'against'} {state.label})" for c in order)
    ev = []
    for e in state.evidence[:6]:
        ev.append(f"[{e.ref}] {e.text[:160]} ({'for' if e.score > 0 else 'against'} {state.label})")
    return dict(
        label=state.label, prob=state.scores[state.label], runner_up=runner[0], runner_prob=runner[1],
        cues=cues or "(none)", evidence="\n".join(ev) or "(none)",
    )


def written(state) -> str:
    """The written explanation of a graph state or a Judgment (with ``labels`` set)."""
    decision = getattr(state, "decision", None)
    base = getattr(state, "base_rates", None) or (decision.prior if decision is not None else None)
    lift = getattr(state, "lift", None) or (decision.lift if decision is not None else None)
    return written_explanation(state.label, state.scores, state.cues, state.evidence, state.labels, base, lift)


@lru_cache(maxsize=1)
def concept_vocabulary() -> tuple[str, ...]:
    """What perception or the knowledge base can name: ImageNet classes and the curated cue
    entries' names and aliases (objects, animals, scenes, faces, events, actions, body)."""
    from kever.knowledge.loader import load_knowledge
    from kever.tools.perception.objects import imagenet_classes

    words = {n.lower() for n in imagenet_classes()}
    for rel, cf in load_knowledge().cue_files.items():
        # curated entries only: the derived ImageNet file's aliases are every WordNet lemma ("grand")
        if rel != "cues/imagenet.yaml" and cf.family in ("object", "animal", "scene", "face", "event", "action", "body"):
            for e in cf.entries:
                words |= {e.name.lower(), *(a.lower() for a in e.aliases)}
    labels = set(MIKELS8) | {"joy", "surprise", "neutral", "happy", "sad", "angry", "fear", "disgust"}
    return tuple(sorted(w for w in words if len(w) >= 3 and w not in GENERIC and w not in labels))


def _stem(w: str) -> str:
    for suf in ("ies", "es", "s"):
        if w.endswith(suf) and len(w) > len(suf) + 2:
            return w[: -len(suf)] + ("y" if suf == "ies" else "")
    return w


def unseen_concepts(text: str, state) -> list[str]:
    """Concepts of the vocabulary the text names that no cue or shown evidence mentions."""
    seen = " ".join([c.text for c in state.cues] + [e.text for e in state.evidence]).lower()
    seen_stems = {_stem(w) for w in re.findall(r"[a-z]+", seen)}
    lower = re.sub(CITE, " ", text.lower())
    out = []
    for term in concept_vocabulary():
        if term in lower and re.search(rf"\b{re.escape(term)}(?:e?s)?\b", lower):
            if not all(_stem(w) in seen_stems for w in re.findall(r"[a-z]+", term)):
                out.append(term)
    return out


#: words that, just before "evokes <label>", make it a denial ("does not evoke fear")
_DENIAL = re.compile(r"(?:\bnot|n't|\bless|\bnever|\bno|\brather than|\binstead of)\s+(?:\w+\s+){0,2}$")


#: just before another label: words that set it against the decided one ("ahead of fear", "not fear")
_CONTRAST_BEFORE = re.compile(
    r"(?:\bnot|n't|\bno|\bnever|\bless|\bthan|\bover|\bahead of|\brather than|\binstead of|\bunlike|\bagainst|"
    r"\bversus|\bvs\.?|\bfrom|\bbelow|\bbehind|\bthen|\btoward|\btowards|\btie with|\bsuch as)\s+(?:\w+\s+){0,2}$")
#: just after it: "fear (20%) scored lower", "fear was weaker", "contentment is likelier (but no more than usual)"
_CONTRAST_AFTER = re.compile(r"^\s*(?:\(\d+%\)\s*)?(?:\w+\s+){0,2}(?:lower|less|weaker|behind|below|second|trails?|trailed|likelier)\b")


def stray_labels(text: str, decided: str, labels, allowed=()) -> str | None:
    """What is wrong if the text names a label other than ``decided`` (and ``allowed``) other
    than as the weaker alternative: "evokes fear", "reads as disgust, sadness, fear" for a sadness
    decision. "ahead of fear", "not fear", "fear scored lower", "sadness and fear" pass."""
    lower = re.sub(CITE, " ", text.lower())
    found = sorted(((m, other) for other in labels if other != decided
                    for m in re.finditer(rf"\b{re.escape(other.lower())}\b", lower)), key=lambda mo: mo[0].start())
    for m, other in found:
        before, after = lower[max(0, m.start() - 40):m.start()], lower[m.end():m.end() + 40]
        if re.search(r"\bevok\w*\s+(?:a |an )?$", before) and not _DENIAL.search(before[: before.rfind("evok")]):
            return f"says the image evokes '{other}'"
        if other in allowed:
            continue
        paired = re.search(rf"\b{re.escape(decided.lower())}\s*(?:\(\d+%\))?\s*(?:,|and|or|vs\.?|versus)\s+$", before)
        if not (paired or _CONTRAST_BEFORE.search(before) or _CONTRAST_AFTER.search(after)):
            return f"names '{other}' other than as the weaker alternative to '{decided}'"
    return None


#: the checks a model-written rationale must pass, in the order they are reported
CHECKS = ("cites >= 2 existing ids", "names the decided label first", "never says another label is evoked",
          "names nothing unseen", "no repeats")


def citation_problem(text: str, known: set[str], minimum: int) -> str | None:
    """What is wrong with the text's citations: none, unknown ids, fewer than ``minimum`` different ones."""
    cited = CITE.findall(text or "")
    if not text or len(text.strip()) < 20:
        return "empty or too short"
    if not cited:
        return "cites no evidence id"
    if bad := sorted(set(cited) - known):
        return f"cites unknown id(s) {', '.join(bad)}"
    if len(set(cited)) < min(minimum, len(known)):
        return f"cites fewer than {minimum} different ids"
    return None


def unseen_problem(text: str, state) -> str | None:
    unseen = unseen_concepts(text or "", state)
    return f"names {', '.join(repr(u) for u in unseen[:3])}, which no cue or evidence mentions" if unseen else None


def repeat_problem(text: str) -> str | None:
    """A sentence or a run of five words said twice, or one id cited twice."""
    sentences = [x.strip().lower() for x in re.split(r"(?<=[.!?])\s+", text or "") if x.strip()]
    cited = CITE.findall(text or "")
    twice = sorted({c for c in cited if cited.count(c) > 1})
    if len(set(sentences)) < len(sentences) or _repeats_a_phrase(text or ""):
        return "repeats itself"
    if twice:
        return f"cites {', '.join(f'[{c}]' for c in twice)} more than once"
    return None


def check_all(text: str, state) -> dict[str, str | None]:
    """Each check of :data:`CHECKS` -> None (passed) or what is wrong."""
    out: dict[str, str | None] = dict.fromkeys(CHECKS)
    known = {c.id for c in state.cues} | {e.ref for e in state.evidence}
    out["cites >= 2 existing ids"] = citation_problem(text, known, MIN_CITATIONS)
    lower = (text or "").lower()
    positions = {lab: m.start() for lab in state.scores if (m := re.search(rf"\b{re.escape(lab.lower())}\b", lower))}
    if state.label not in positions:
        out["names the decided label first"] = f"does not name the decided label '{state.label}'"
    elif (first := min(positions, key=positions.get)) != state.label:
        out["names the decided label first"] = f"argues for '{first}' before the decided label '{state.label}'"
    out["never says another label is evoked"] = stray_labels(text or "", state.label, state.scores)
    out["names nothing unseen"] = unseen_problem(text, state)
    out["no repeats"] = repeat_problem(text)
    return out


def check(text: str, state) -> str | None:
    """None if the rationale passes every check; else the first thing wrong."""
    return next((p for p in check_all(text, state).values() if p), None)


def _repeats_a_phrase(text: str, n: int = 5) -> bool:
    """The same run of ``n`` words twice (a looping model)."""
    words = re.findall(r"[a-z']+", re.sub(CITE, " ", text.lower()))
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) < len(grams)


_PREAMBLE = re.compile(r"^\s*(here(?:'|’)?s|here is|sure|certainly|okay)\b[^\n]*?:\s*", re.I)


def _complete_sentences(text: str) -> str:
    """Drop a chatty preamble ("Here's a rewritten version:") and a trailing half sentence
    (generation stopped at the token limit)."""
    text = _PREAMBLE.sub("", text.strip()).strip()
    end = max(text.rfind("."), text.rfind("!"), text.rfind("?"))
    return text[: end + 1] if end > 0 else text


@dataclass
class Written:
    text: str
    kind: str
    prompt_ref: str | None = None
    notes: list[str] = field(default_factory=list)
    attempts: list[RationaleAttempt] = field(default_factory=list)


@dataclass
class Checked:
    """What :func:`generate_checked` got: the accepted text (None: none passed, or the model
    failed), each attempt with the checks it failed, and why nothing was accepted."""

    text: str | None
    attempts: list[RationaleAttempt]
    problem: str | None = None
    error: str | None = None


def generate_checked(text_lm, messages: list[dict], check, rewrite: str, max_new_tokens: int = MAX_NEW_TOKENS) -> Checked:
    """Generate, check (``check(text) -> {name: problem | None}``), and on a failure regenerate
    once, told what was wrong (``rewrite``: what to ask for instead)."""
    attempts: list[RationaleAttempt] = []
    problem = None
    for _ in range(2):
        t0 = time.perf_counter()
        try:
            text = _complete_sentences(text_lm.generate(messages, max_new_tokens=max_new_tokens))
        except Exception as e:  # any model failure: the caller's composed text stands
            return Checked(None, attempts, error=f"{type(e).__name__}: {e}")
        results = check(text)
        failed = [name for name, p in results.items() if p]
        attempts.append(RationaleAttempt(text=text, failed=failed, seconds=round(time.perf_counter() - t0, 3),
                                         new_tokens=getattr(text_lm, "last_new_tokens", None)))
        problem = next((results[name] for name in failed), None)
        if problem is None:
            return Checked(text, attempts)
        messages = messages + [{"role": "assistant", "content": text},
                               {"role": "user", "content": f"That answer {problem}. {rewrite}"}]
    return Checked(None, attempts, problem=problem)


# -- the structured rationale ----------------------------------------------------------------
#: evidence whose text says how kever weighed the cues, not what the photo shows
METHOD_STREAMS = frozenset({"alignment", *WHOLE_STREAMS})


def shown_facts(state) -> list[tuple[str, str]]:
    """(id, text) of the facts that moved the label toward the decision, strongest first: up to
    :data:`SHOWN_CUES` cues, then up to :data:`SHOWN_EVIDENCE` evidence items."""
    total, _ = cue_contributions(state.evidence)
    by_id = {c.id: c for c in state.cues}
    cues = sorted((c for c in total if c in by_id and total[c] > 0), key=lambda c: -total[c])[:SHOWN_CUES]
    # knowledge entries only: an alignment or deliberation item's text describes kever's method
    # ("the cues read against the appraisal patterns ..."), which the model copied as a reason
    ev = sorted((e for e in state.evidence if e.score > 0 and e.ref and e.stream not in METHOD_STREAMS),
                key=lambda e: -e.score)[:SHOWN_EVIDENCE]
    out = [(c, f"{by_id[c].family}: {by_id[c].text}") for c in cues] + [(e.ref, e.text) for e in ev]
    return [(i, t if len(t) <= FACT_CHARS else t[: FACT_CHARS - 3].rsplit(" ", 1)[0] + "...") for i, t in out]


def rationale_schema(ids: list[str]) -> dict:
    """The JSON schema the model's answer is held to: the ids are an enum of those shown, the
    phrase is letters and light punctuation (no digits, brackets or quotes: no ids, no figures)."""
    return {
        "type": "object", "additionalProperties": False, "required": ["points"],
        "properties": {"points": {
            "type": "array", "minItems": min(2, len(ids)), "maxItems": MAX_POINTS,
            "items": {"type": "object", "additionalProperties": False, "required": ["ids", "why"], "properties": {
                "ids": {"type": "array", "minItems": 1, "maxItems": MAX_IDS, "items": {"type": "string", "enum": ids}},
                "why": {"type": "string", "minLength": 6, "maxLength": MAX_PHRASE, "pattern": "^[A-Za-z][A-Za-z ,;'-]*$"},
            }},
        }},
    }


#: words a phrase cut at its length cap must not end on
_DANGLING = frozenset("a an the and or but of to in on at for with by as is are was were be its their this that both "
                      "which who while from into than".split())


#: a phrase this close to the cap may have been stopped by it mid-word (a longer next token
#: does not fit): it is cut back to its last comma, else its last whole word
_NEAR_CAP = MAX_PHRASE - 12
_SHORT_WORDS = frozenset("i a an as at be by do go he if in is it me my no of on or so to up us we".split())


def _phrase(text: str) -> str:
    """The model's phrase, tidied: one that reached near the length cap is cut back to its last
    comma (else its last whole word), and no phrase ends on a dangling word or a fragment
    ("... and a m")."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) >= _NEAR_CAP:
        comma = max(text.rfind(","), text.rfind(";"))
        text = text[:comma] if comma >= MAX_PHRASE // 2 else text[: text.rfind(" ")] if " " in text else text
    words = text.strip(" ,;.-").split()
    while words and (words[-1].lower().strip(",;") in _DANGLING
                     or (len(words[-1].strip(",;")) <= 2 and words[-1].lower().strip(",;") not in _SHORT_WORDS)):
        words.pop()
    text = " ".join(words)
    text = text.strip(" ,;.-")
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and (first == "A" or not first.isupper()):  # "A sad face" -> "a sad face"; "TV", "I" stay
        text = text[0].lower() + text[1:]
    return text


def render(label: str, points: list[tuple[str, list[str]]]) -> str:
    """kever's sentence around the model's points: "The image evokes <label>: <phrase> [C1] [E2];
    <phrase> [E1]." """
    parts = [f"{p} " + " ".join(f"[{i}]" for i in ids) for p, ids in points]
    if len(parts) > 1:
        parts[-1] = "and " + parts[-1]
    return f"The image evokes {label}: " + "; ".join(parts) + "."


def assemble(answer: dict, state) -> tuple[str, list[str]]:
    """The text kever writes from a parsed answer, keeping each point only if the text with it
    passes the checks that a point can fail (unseen, stray labels, repeats); each id is cited
    once (a later point loses an id an earlier one cited). Returns the text and what was left
    out, each with why."""
    kept: list[tuple[str, list[str]]] = []
    dropped: list[str] = []
    cited: set[str] = set()
    known = {c.id for c in state.cues} | {e.ref for e in state.evidence}
    for point in (answer.get("points") or [])[:MAX_POINTS]:
        phrase = _phrase(str(point.get("why", "")))
        ids = [i for i in dict.fromkeys(point.get("ids") or []) if i in known and i not in cited]
        if not phrase or not ids:
            dropped.append(f"{phrase or '(empty)'}: {'no phrase' if not phrase else 'no id not cited already'}")
            continue
        text = render(state.label, kept + [(phrase, ids)])
        results = check_all(text, state)
        problem = next((results[c] for c in CHECKS[1:] if results[c]), None)  # citations are judged on the whole
        if problem:
            dropped.append(f"{phrase}: {problem}")
            continue
        kept.append((phrase, ids))
        cited |= set(ids)
    return (render(state.label, kept) if kept else ""), dropped


def structured_rationale(state, text_lm, prompt) -> Checked:
    """The model fills :func:`rationale_schema`; kever writes and checks the text (one
    regeneration when the points kept cite fewer than two ids)."""
    facts = shown_facts(state)
    messages = prompt.messages(label=state.label, facts="\n".join(f"[{i}] {t}" for i, t in facts) or "(none)")
    schema = rationale_schema([i for i, _ in facts] or ["C1"])
    attempts: list[RationaleAttempt] = []
    problem = None
    for _ in range(2):
        t0 = time.perf_counter()
        try:
            raw = text_lm.generate_json(messages, schema, name="rationale", max_new_tokens=STRUCTURED_MAX_NEW_TOKENS)
        except Exception as e:  # any model failure: the written explanation stands
            return Checked(None, attempts, error=f"{type(e).__name__}: {e}")
        try:
            answer = json.loads(raw)
            text, dropped = assemble(answer if isinstance(answer, dict) else {}, state)
        except json.JSONDecodeError:
            text, dropped = "", [f"not JSON (cut at the token limit?): {raw[:80]!r}"]
        results = check_all(text, state)
        failed = [name for name, p in results.items() if p]
        attempts.append(RationaleAttempt(text=text, failed=failed, seconds=round(time.perf_counter() - t0, 3),
                                         new_tokens=getattr(getattr(text_lm, "last", None), "completion_tokens", None)
                                         or getattr(text_lm, "last_new_tokens", None),
                                         answer=raw, dropped=dropped))
        problem = next((results[name] for name in failed), None)
        if problem is None:
            return Checked(text, attempts)
        # what was left out and why, word for word: told only "fewer than two ids", the model
        # answered the same again (temperature 0)
        left_out = f" Left out: {'; '.join(dropped)}." if dropped else ""
        messages = messages + [{"role": "assistant", "content": raw},
                               {"role": "user", "content": f"That answer was not used ({problem}).{left_out} Reply again: each point "
                                                           "uses only words of the facts it cites, and cites facts no other point cites."}]
    return Checked(None, attempts, problem=problem)


def fills_structures(text_lm) -> bool:
    """Whether the model answers under a JSON-schema grammar (``generate_json``)."""
    return callable(getattr(text_lm, "generate_json", None))


def write_rationale(state, text_lm) -> Written:
    """The rationale of a decided state: the model's (checked, one regeneration) or the written explanation."""
    if text_lm is None:
        return Written(written(state), "template")
    if fills_structures(text_lm):
        prompt = load_prompt("rationale", STRUCTURED_PROMPT)
        got = structured_rationale(state, text_lm, prompt)
        return _written_from(got, state, prompt)
    prompt = load_prompt("rationale", FREE_TEXT_PROMPT)
    got = generate_checked(text_lm, prompt.messages(**_fields(state)), lambda t: check_all(t, state),
                           f"Rewrite it: explain why the image evokes {state.label}, using only the facts listed, "
                           "citing at least two ids like [C1] or [E1].")
    return _written_from(got, state, prompt)


def _written_from(got: Checked, state, prompt) -> Written:
    out = Written("", "template", prompt.ref, attempts=got.attempts)
    if got.text is not None:
        out.text, out.kind = got.text, "model"
        return out
    if got.error:
        out.notes.append(f"rationale model failed ({got.error}); the written explanation is used")
    else:
        out.notes.append(f"model rationale failed its check twice ({got.problem}); the written explanation is used")
    out.text = written(state)
    return out
