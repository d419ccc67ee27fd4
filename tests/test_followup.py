"""Chat follow-ups answered by the preset's language model (agent/followup.py), checked, and
their place in a chat turn (serve/conversation.py): scripted FakeTextLM, real knowledge base."""

from __future__ import annotations

import re

import pytest

from kever.agent.config import load_preset, load_system
from kever.agent.followup import answer_followup, check_followup, facts
from kever.agent.judgment import Cue, Evidence, Judgment
from kever.agent.models import FakeTextLM
from kever.agent.nodes import Components
from kever.agent.reasoner import Reasoner
from kever.images import load_image
from kever.serve.conversation import Conversations
from kever.serve.store import Limits, Store
from kever.tools.kb import KnowledgeBase
from kever.tools.kb.embedder import FakeEmbedder
from kever.tools.perception import FakePerceiver

MIKELS8 = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"]


def judgment() -> Judgment:
    scores = dict.fromkeys(MIKELS8, 0.05)
    scores.update(sadness=0.45, fear=0.2)
    return Judgment(
        label="sadness", scores=scores, confidence=0.45, valence=-0.6, arousal=0.3,
        cues=[Cue(id="C1", family="event", text="funeral", source="perception:test", confidence=0.8),
              Cue(id="C2", family="lighting", text="overcast grey sky", source="perception:test", confidence=0.6)],
        evidence=[
            Evidence(id="event.funeral", ref="E1", source="curated", text="A funeral, burial or memorial: sadness.",
                     score=0.6, cue_ids=["C1"], stream="objects", points_to="sadness",
                     pushes={"sadness": 0.6, "fear": -0.05, "amusement": -0.2}),
            Evidence(id="lighting.overcast", ref="E2", source="curated", text="Overcast, grey sky: gloom and sadness.",
                     score=0.3, cue_ids=["C2"], stream="colour", points_to="sadness",
                     pushes={"sadness": 0.3, "fear": 0.1}),
        ],
    )


@pytest.mark.parametrize("text,failed", [
    ("Fear scored lower: the funeral [C1] speaks of sorrow [E1], not of anything frightening.", []),
    ("The image does not evoke fear: the funeral [C1] and the grey sky [E2] speak of sorrow.", []),
    ("It evokes fear because of the funeral [C1].", ["never says another label is evoked"]),
    ("Fear scored lower because of the funeral [C9] and the sky.", ["cites existing ids"]),
    ("Fear scored lower because of the funeral and the grey sky.", ["cites existing ids"]),
    ("The funeral [C1] and the grey sky [E2] point to sorrow.", ["names the asked label"]),
    ("Fear scored lower: the funeral [C1] has a hearse beside it [E1].", ["names nothing unseen"]),
    ("Fear scored lower [C1]. Fear scored lower [C1].", ["no repeats"]),
])
def test_the_checks_of_a_follow_up(text, failed):
    results = check_followup(text, judgment(), "fear")
    assert [name for name, p in results.items() if p] == failed, results


def test_facts_put_what_separates_the_two_labels_first():
    cues, evidence = facts(judgment(), "fear")
    # E1 moves sadness 0.6 and fear -0.05 (gap 0.65); E2 0.3 and 0.1 (gap 0.2)
    assert evidence.splitlines()[0].startswith("[E1]") and "favours sadness over fear" in evidence
    assert "[C1] event: funeral" in cues and "[C2] lighting: overcast grey sky" in cues


GOOD = "Fear scored lower: the funeral [C1] speaks of sorrow [E1], not of anything frightening."
BAD = "It evokes fear because of the funeral [C1]."


def test_one_regeneration_then_the_answer_is_kept():
    lm = FakeTextLM([BAD, GOOD])
    f = answer_followup(lm, judgment(), "why not fear?", "fear")
    assert f.text == GOOD and f.prompt_ref == "followup@v2"
    assert [a.failed for a in f.attempts] == [["never says another label is evoked"], []]
    # the regeneration was told what was wrong
    assert "says the image evokes 'fear'" in lm.calls[1].prompt
    # the model saw the facts and the question
    assert "why not fear?" in lm.calls[0].prompt and "[E1] A funeral" in lm.calls[0].prompt


def test_two_failures_keep_the_composed_answer():
    f = answer_followup(FakeTextLM([BAD, BAD]), judgment(), "why not fear?", "fear")
    assert f.text is None and len(f.attempts) == 2 and "failed its check twice" in f.notes[0]


def test_a_model_failure_keeps_the_composed_answer():
    class Broken(FakeTextLM):
        def generate(self, *a, **k):
            raise RuntimeError("out of memory")

    f = answer_followup(Broken(), judgment(), "why not fear?", "fear")
    assert f.text is None and "RuntimeError" in f.notes[0]


# ---------------------------------------------------------------- in a chat turn


def scripted(messages, images) -> str:
    """A fake model that answers a follow-up from the facts it was given (the first two ids,
    the asked label), and anything else (the rationale) with a line the checks refuse."""
    user = messages[1]["content"]
    if "Question:" not in user:
        return "ok."
    ids = re.findall(r"\[([CE]\d+)\]", user)[:2]
    asked = re.search(r"; (\w+) scored", user).group(1)
    return f"{asked.capitalize()} scored lower: what was seen [{ids[0]}] and what is known [{ids[1]}] point elsewhere."


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEVER_CACHE_DIR", str(tmp_path_factory.mktemp("kbcache")))
        yield KnowledgeBase.open(embedder=FakeEmbedder(), progress=False, limit=3000)


def reasoner(kb, text_lm) -> Reasoner:
    preset = load_preset("offline")
    return Reasoner(Components(preset=preset, system=load_system("full", ()), fusion=preset.fusion,
                               perceiver=FakePerceiver(), kb=kb, embedder=kb.embedder, text_lm=text_lm))


def test_a_chat_follow_up_is_answered_by_the_model_then_the_numbers(kb, tmp_path, demo_image):
    lm = FakeTextLM(respond=scripted)
    conv = Conversations(Store(tmp_path / "c.sqlite", Limits()), reasoner(kb, lm))
    _, j = conv.turn("c1", "what does it evoke?", load_image(demo_image))
    other = next(lab for lab in sorted(j.scores, key=lambda k: -j.scores[k]) if lab != j.label)
    events: list[dict] = []
    reply, _ = conv.turn("c1", f"why not {other}?", None, on_event=events.append)
    head, _, rest = reply.partition("\n\n")
    # the model's answer leads, its ids rendered as numbered sources, then the composed answer
    assert head.startswith(f"{other.capitalize()} scored lower:") and "[" not in head and "¹" in head
    assert f"**{other}** scored" in rest and "**Sources**" in rest
    assert {"node": "followup", "status": "start"} in events
    # the label is the numbers' and the follow-up did not change the stored judgment
    assert conv.load("c1").judgment.label == j.label
    conv.close()


def test_without_a_text_model_the_composed_answer_stands(kb, tmp_path, demo_image):
    conv = Conversations(Store(tmp_path / "c.sqlite", Limits()), reasoner(kb, None))
    _, j = conv.turn("c1", "what does it evoke?", load_image(demo_image))
    other = next(lab for lab in j.scores if lab != j.label)
    events: list[dict] = []
    reply, _ = conv.turn("c1", f"why not {other}?", None, on_event=events.append)
    assert reply.startswith(f"**{other}** scored") and not [e for e in events if e["node"] == "followup"]
    conv.close()


def test_a_refused_model_answer_leaves_only_the_composed_one(kb, tmp_path, demo_image):
    conv = Conversations(Store(tmp_path / "c.sqlite", Limits()), reasoner(kb, FakeTextLM(default="I cannot say.")))
    _, j = conv.turn("c1", "what does it evoke?", load_image(demo_image))
    other = next(lab for lab in j.scores if lab != j.label)
    reply, _ = conv.turn("c1", f"why not {other}?", None)
    assert reply.startswith(f"**{other}** scored") and "I cannot say" not in reply
    conv.close()
