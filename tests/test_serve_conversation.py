"""The chat graph (kever.serve.conversation), its store, follow-up parsing and chat rendering, in-process."""

from __future__ import annotations

import pytest

from kever.agent.fake_reasoner import FakeReasoner
from kever.agent.judgment import Judgment
from kever.images import load_image
from kever.serve import openai_errors as oe
from kever.serve.conversation import Conversations
from kever.serve.intents import parse
from kever.serve.store import Limits, Store

MIKELS8 = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"]


class CountingReasoner(FakeReasoner):
    def __init__(self):
        super().__init__()
        self.explains = 0
        self.relabels = 0

    def explain(self, *a, **k):
        self.explains += 1
        return super().explain(*a, **k)

    def relabel(self, *a, **k):
        self.relabels += 1
        return super().relabel(*a, **k)


@pytest.mark.parametrize("text,kind,label,label_set", [
    ("why not fear?", "contrast", "fear", None),
    ("Why isn't it scary?", "contrast", "fear", None),
    ("what about anger", "contrast", "anger", None),
    ("What in the image made it awe?", "support", "awe", None),
    ("why?", "support", None, None),
    ("answer for Ekman's six instead", "relabel", None, "emotion6"),
    ("positive or negative?", "relabel", None, "sentiment"),
    ("labels: calm, tense, joy", "relabel", None, ["calm", "tense", "joy"]),
    ("how confident are you?", "scores", None, None),
    ("thanks!", "summary", None, None),
])
def test_intents(text, kind, label, label_set):
    intent = parse(text, MIKELS8)
    assert (intent.kind, intent.label, intent.label_set) == (kind, label, label_set)



def conversations(path, reasoner=None, **limits) -> Conversations:
    return Conversations(Store(path, Limits(**limits)), reasoner or CountingReasoner())


def test_turns_follow_ups_relabel_and_persistence(tmp_path, demo_image, image_factory):
    db = tmp_path / "c.sqlite"
    r = CountingReasoner()
    conv = conversations(db, r)
    events: list[dict] = []
    reply, j = conv.turn("c1", "what does it evoke?", load_image(demo_image), on_event=events.append)
    assert j is not None and f"**{j.label}**" in reply
    assert [e["node"] for e in events if e.get("status") == "end"][:2] == ["understand", "perceive"]
    other = next(x for x in MIKELS8 if x != j.label)
    reply, j2 = conv.turn("c1", f"why not {other}?", None)
    assert f"**{other}**" in reply and j2 == j
    reply, j3 = conv.turn("c1", "what about joy?", None)
    assert "'joy' is not in this judgment's labels" in reply
    reply, j4 = conv.turn("c1", "answer for Ekman's six instead", None)
    assert "joy" in j4.scores and (r.explains, r.relabels) == (1, 1)
    # the same image again is not judged again; a new one is
    conv.turn("c1", "and this?", load_image(demo_image))
    conv.turn("c1", "and this?", load_image(image_factory("x.png")))
    assert r.explains == 2
    conv.close()
    # a new process on the same database: the judgment is still there
    r2 = CountingReasoner()
    conv2 = conversations(db, r2)
    assert conv2.has_judgment("c1") and not conv2.has_judgment("c2")
    reply, _ = conv2.turn("c1", "show the scores", None)
    assert "Scores (mikels8" in reply and r2.explains == 0
    messages = conv2.store.messages("c1")
    assert len(messages) == 2 * 7 and [m["role"] for m in messages[:2]] == ["user", "assistant"]
    assert messages[0]["content"] == "what does it evoke?" and messages[-2]["content"] == "show the scores"
    conv2.close()


def test_model_id_picks_the_label_set_mid_conversation(tmp_path, demo_image):
    r = CountingReasoner()
    conv = conversations(tmp_path / "c.sqlite", r)
    _, j = conv.turn("c1", "?", load_image(demo_image), model="kever", default_labels="mikels8")
    assert set(j.scores) == set(MIKELS8)
    reply, j = conv.turn("c1", "why?", None, model="kever-sentiment", default_labels="sentiment")
    assert set(j.scores) == {"positive", "negative"} and reply.startswith("(Re-scored over positive, negative for this model")
    reply, j = conv.turn("c1", "answer for Ekman's six instead", None, model="kever-sentiment", default_labels="sentiment")
    assert "joy" in j.scores  # asked for in words: that label set, for this model id ...
    _, j = conv.turn("c1", "why not joy?", None, model="kever-sentiment", default_labels="sentiment")
    assert "joy" in j.scores  # ... until the model id changes
    _, j = conv.turn("c1", "why?", None, model="kever", default_labels="mikels8")
    assert set(j.scores) == set(MIKELS8) and (r.explains, r.relabels) == (1, 3)


def used_bytes(path) -> int:
    """Bytes in use in a SQLite file (its pages less the free ones), read by a separate connection."""
    import sqlite3

    c = sqlite3.connect(str(path))
    try:
        pages = c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]
        return pages * c.execute("PRAGMA page_size").fetchone()[0]
    finally:
        c.close()


def test_storage_grows_linearly_each_turn_stored_once(tmp_path, demo_image):
    db = tmp_path / "c.sqlite"
    conv = conversations(db, max_message_chars=200_000)
    conv.turn("c1", "?", load_image(demo_image))
    sizes = []
    for i in range(12):
        conv.turn("c1", f"{i} " + "x" * 100_000 + " why?", None)
        sizes.append(used_bytes(db))
    steps = [b - a for a, b in zip(sizes, sizes[1:])]
    # each follow-up adds its own 100 kB text (and a short reply) once: the same step every turn
    assert all(90_000 < s < 130_000 for s in steps), steps
    conv.close()


def test_caps_refuse_long_messages_and_long_conversations(tmp_path, demo_image):
    conv = conversations(tmp_path / "c.sqlite", max_message_chars=1000, max_turns=3)
    with pytest.raises(oe.APIError) as e:
        conv.turn("c1", "x" * 1001, load_image(demo_image))
    assert (e.value.status, e.value.code) == (400, "message_too_long") and "1,001 characters" in e.value.message
    assert not conv.has_judgment("c1")  # nothing was run or stored
    for text in ("?", "why?", "show the scores"):
        conv.turn("c1", text, load_image(demo_image) if text == "?" else None)
    with pytest.raises(oe.APIError) as e:
        conv.turn("c1", "why not fear?", None)
    assert (e.value.status, e.value.code) == (400, "conversation_too_long") and "new conversation" in e.value.message
    assert conv.store.load("c1").turns == 3
    conv.close()


def test_retention_by_count_age_and_size(tmp_path, demo_image):
    import time

    img = load_image(demo_image)
    conv = conversations(tmp_path / "c.sqlite", max_conversations=3)
    for i in range(5):
        conv.turn(f"c{i}", "?", img)
    assert [conv.has_judgment(f"c{i}") for i in range(5)] == [False, False, True, True, True]
    conv.turn("c2", "why?", None)  # used again: now the most recent
    conv.turn("c5", "?", img)
    assert [conv.has_judgment(f"c{i}") for i in range(2, 6)] == [True, False, True, True]
    assert conv.store.stats()["conversations"] == 3 and conv.store.messages("c3") == []
    assert conv.store.prune(now=time.time() + 31 * 86400) == 3  # all unused for more than 30 days
    assert conv.store.stats()["conversations"] == 0
    conv.close()
    small = conversations(tmp_path / "s.sqlite", max_db_bytes=1 << 20, max_message_chars=200_000)
    for i in range(30):
        small.turn(f"c{i}", "x" * 100_000, img)
    stats = small.store.stats()
    assert stats["db_bytes"] <= 1 << 20 and 0 < stats["conversations"] < 30
    assert small.has_judgment("c29")
    small.close()


class GraphReasoner(FakeReasoner):
    """Runs its own (uncheckpointed) LangGraph graph, as the real Reasoner does."""

    def explain(self, image, labels=None, rationale=True, on_event=None):
        from typing import TypedDict

        from langgraph.graph import END, START, StateGraph

        class S(TypedDict):
            n: int

        g = StateGraph(S)
        g.add_node("perceive", lambda s: {"n": s["n"] + 1})
        g.add_edge(START, "perceive")
        g.add_edge("perceive", END)
        assert g.compile().invoke({"n": 0})["n"] == 1
        return super().explain(image, labels=labels, rationale=rationale, on_event=on_event)



def test_reasoner_graph_runs_inside_a_turn(tmp_path, demo_image):
    """The reasoner's own LangGraph graph runs inside a chat turn; only the turn is stored."""
    import sqlite3

    conv = conversations(tmp_path / "c.sqlite", GraphReasoner())
    conv.turn("c1", "?", load_image(demo_image))
    reply, j = conv.turn("c1", "answer for sentiment", None)
    assert set(j.scores) == {"positive", "negative"}
    conv.close()
    c = sqlite3.connect(str(tmp_path / "c.sqlite"))
    tables = {t for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    c.close()
    assert tables == {"conversations", "judgments", "messages", "evicted"}


def test_projected_label_sets_are_explained_honestly():
    from kever.agent.judgment import Evidence
    from kever.serve import answers

    j = Judgment(label="joy", scores={"joy": 0.7, "fear": 0.3}, confidence=0.7, valence=0.5, arousal=0.5,
                 evidence=[Evidence(id="k1", source="s", text="bright", weights={"amusement": 0.9}, score=0.5,
                                    pushes={"amusement": 0.6, "fear": -0.2})],
                 label_set="custom", canonical={"amusement": 0.6, "fear": 0.4}, cues=[])
    # the decided label: its evidence's exact contributions, whatever the label set
    assert "bright (push +0.50 on joy" in answers.support(j, "joy")
    # a label of the set with no Mikels-8 namesake: said to be a projection
    j2 = j.model_copy(update={"label": "fear", "scores": {"joy": 0.3, "fear": 0.7}})
    assert "weighted over the Mikels-8" in answers.support(j2, "joy")
    assert "weighted over the Mikels-8" not in answers.contrast(j, "fear")


def test_chat_text_renders_citations_as_numbered_sources():
    from kever.agent.judgment import Cue, Evidence
    from kever.serve import answers

    j = Judgment(label="sadness", scores={"sadness": 0.7, "fear": 0.3}, confidence=0.7, valence=-0.5, arousal=0.3,
                 cues=[Cue(id="C1", family="colour", text="dark, muted palette", source="perception:colour", confidence=0.8),
                       Cue(id="C2", family="people", text="a lone figure", source="perception:faces", confidence=0.6)],
                 evidence=[Evidence(id="cue:colour:dark", ref="E1", source="Valdez & Mehrabian 1994 (kever cues/colour.yaml)", text="dark colours feel sad",
                                    weights={"sadness": 0.9}, cue_ids=["C1"], score=0.9, pushes={"sadness": 0.9})],
                 rationale="The muted palette [C1][E1] and the lone figure [C2] evoke sadness; see [E1] [note].")
    text = answers.first_answer(j)
    assert "The muted palette¹,² and the lone figure³ evoke sadness; see² [note]." in text  # unknown [note] kept
    foot = text.split("**Sources**", 1)[1]
    assert "- ¹ Seen in the image: dark, muted palette (colour, confidence 0.80)" in foot
    assert "- ² Knowledge: dark colours feel sad — Valdez & Mehrabian 1994\n" in foot  # kever's file name left out
    assert "- ³ Seen in the image: a lone figure (people, confidence 0.60)" in foot
    support = answers.support(j, "sadness")
    assert "- Seen: “dark, muted palette”. dark colours feel sad (push +0.90 on sadness; Valdez & Mehrabian 1994)" in support
    assert "[" not in support


def test_progress_is_one_line_per_step():
    from kever.serve.render import Progress

    p = Progress()
    events = [{"node": "understand", "status": "end"}, {"node": "judge", "status": "start"},
              {"node": "perceive", "status": "start"}, {"node": "perceive", "status": "end", "seconds": 1.0},
              {"node": "retrieve", "status": "start"}, {"node": "retrieve", "status": "end"},
              {"node": "retrieve", "status": "start"}, {"node": "retrieve", "status": "end"},  # a second round
              {"node": "reconcile", "status": "end"},  # a reasoner that reports only ends
              {"node": "judge", "status": "end"}, {"node": "answer", "status": "end"}]
    lines = [x for x in map(p.line, events) if x]
    assert lines == ["Looking at the image: colour, faces, objects, text\n", "Looking up what is known about these cues\n",
                     "Looking up what is known about these cues\n", "Weighing the evidence\n"]


def test_a_database_of_the_earlier_server_is_said_to_be_left_behind(tmp_path, caplog):
    import sqlite3

    db = tmp_path / "old.sqlite"
    c = sqlite3.connect(str(db))
    c.execute("CREATE TABLE checkpoints (thread_id TEXT)")
    c.commit()
    c.close()
    with caplog.at_level("WARNING", logger="kever.serve"):
        Store(db).close()
    assert "not carried over" in caplog.text


def test_an_items_push_is_the_judgments_in_every_answer(monkeypatch):
    """The chat answers and the follow-up facts read an item's push on a label from the
    judgment (Judgment.push) and never show a difference of pushes as a push: the same item
    shows the same push on awe in the support answer and in "why not fear?"."""
    import re

    from kever.agent import followup
    from kever.agent.judgment import Evidence
    from kever.serve import answers

    ev = [Evidence(id=f"k{i}", ref=f"E{i}", source="s", text=f"item{i}", weights={"awe": 0.9}, score=s, points_to="awe",
                   pushes={"awe": s, "fear": f}) for i, (s, f) in enumerate([(1.44, -0.42), (0.8, 0.3), (0.5, -0.1)], 1)]
    j = Judgment(label="awe", scores={"awe": 0.6, "fear": 0.4}, confidence=0.6, valence=0.5, arousal=0.5, evidence=ev)

    def shown(text: str) -> dict[tuple[str, str], float]:
        out = {}
        for item, pushes in re.findall(r"(item\d) \(push ([^;)]*)", text):
            for value, label in re.findall(r"([+-]\d+\.\d\d) on (\w+)", pushes):
                out[(item, label)] = float(value)
        return out

    both = {**shown(answers.support(j, "awe")), **shown(answers.contrast(j, "fear"))}
    assert both[("item1", "awe")] == 1.44 and both[("item1", "fear")] == -0.42  # not +1.86, the difference
    for (item, label), value in shown(answers.support(j, "awe")).items():
        assert shown(answers.contrast(j, "fear")).get((item, label), value) == value
    # every push shown, and every fact's side, comes from Judgment.push: change it, and they follow
    table = {("k1", "awe"): -2.0, ("k1", "fear"): 1.0, ("k2", "awe"): 0.7, ("k2", "fear"): 0.1,
             ("k3", "awe"): 0.2, ("k3", "fear"): 0.0}
    monkeypatch.setattr(Judgment, "push", lambda self, e, label: table[(e.id, label)])
    assert shown(answers.contrast(j, "fear")) == {("item2", "awe"): 0.7, ("item2", "fear"): 0.1, ("item3", "awe"): 0.2,
                                                  ("item3", "fear"): 0.0, ("item1", "fear"): 1.0}
    _, ev_lines = followup.facts(j, "fear")
    assert "[E1] item1 (favours fear over awe)" in ev_lines and "[E2] item2 (favours awe over fear)" in ev_lines
