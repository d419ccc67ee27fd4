"""The chat graph (kever.serve.conversation) and follow-up parsing, in-process."""

from __future__ import annotations

import pytest

from kever.agent.fake_reasoner import FakeReasoner
from kever.agent.judgment import Judgment
from kever.images import load_image
from kever.serve.conversation import Conversations, strict_serde
from kever.serve.intents import parse

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


def test_turns_follow_ups_relabel_and_persistence(tmp_path, demo_image, image_factory):
    db = tmp_path / "c.sqlite"
    r = CountingReasoner()
    conv = Conversations(db, r)
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
    conv2 = Conversations(db, r2)
    assert conv2.has_judgment("c1") and not conv2.has_judgment("c2")
    reply, _ = conv2.turn("c1", "show the scores", None)
    assert "Scores (mikels8" in reply and r2.explains == 0
    conv2.close()


def test_checkpointer_serde_is_strict(tmp_path):
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    conv = Conversations(tmp_path / "c.sqlite", FakeReasoner())
    assert conv.saver.serde._allowed_msgpack_modules is None  # only LangGraph's built-in safe types
    # a blob naming a class (as a tampered database could) is not revived into that class
    j = Judgment(label="awe", scores={"awe": 1.0}, confidence=1.0, valence=0.0, arousal=0.0)
    blob = JsonPlusSerializer(allowed_msgpack_modules=True).dumps_typed({"j": j})
    out = strict_serde().loads_typed(blob)["j"]
    assert not isinstance(out, Judgment) and isinstance(out, dict) and out["label"] == "awe"
    conv.close()


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


def test_reasoner_graph_is_not_checkpointed_as_a_subgraph(tmp_path, demo_image):
    conv = Conversations(tmp_path / "c.sqlite", GraphReasoner())
    conv.turn("c1", "?", load_image(demo_image))
    conv.turn("c1", "answer for sentiment", None)
    namespaces = {ns for (ns,) in conv._conn.execute("SELECT DISTINCT checkpoint_ns FROM checkpoints")}
    assert namespaces == {""}
    conv.close()


def test_projected_label_sets_are_explained_honestly():
    from kever.agent.judgment import Evidence
    from kever.serve import answers

    j = Judgment(label="joy", scores={"joy": 0.7, "fear": 0.3}, confidence=0.7, valence=0.5, arousal=0.5,
                 evidence=[Evidence(id="k1", source="s", text="bright", weights={"amusement": 0.9})],
                 label_set="custom", canonical={"amusement": 0.6, "fear": 0.4})
    assert "weighted over the Mikels-8" in answers.support(j, "joy")
    assert "weighted over the Mikels-8" not in answers.contrast(j, "fear")
