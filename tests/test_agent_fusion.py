"""The decision function (agent/fusion.py) on scripted inputs: streams, label sets, neutral, the learned votes."""

from __future__ import annotations

import numpy as np
import pytest

from kever.agent.config import FusionConfig, load_fusion
from kever.agent.fusion import MIKELS8, AlignmentInput, decide, set_pushes, softmax
from kever.agent.judgment import Cue
from kever.agent.labels import LabelSet
from kever.agent.nodes import stream_of
from kever.agent.state import CueHits
from kever.tools.kb.models import Hit

MIKELS = LabelSet("mikels8", MIKELS8, np.eye(8))


def cue(i, family, conf=1.0, source="perception:x", entries=("e",)):
    return Cue(id=f"C{i}", family=family, text=f"{family} {i}", source=source, confidence=conf, kb_entries=list(entries))


def hit(id, score=1.0, **w):
    return Hit(id=id, source="curated", text=id, kind="cue", weights=w, score=score)


def scene(face_conf=0.9, object_conf=0.6):
    cues = [cue(1, "face", face_conf), cue(2, "object", object_conf), cue(3, "colour", 0.5)]
    retrieved = [CueHits(cue_id="C1", hits=[hit("face.happy", amusement=0.8, contentment=0.2)]),
                 CueHits(cue_id="C2", hits=[hit("imagenet.coffin", sadness=0.9, fear=0.2)]),
                 CueHits(cue_id="C3", hits=[hit("colour.warm", amusement=0.3, contentment=0.3)])]
    return cues, retrieved


def test_label_follows_the_evidence_and_contributions_add_up():
    cfg = load_fusion("untuned")
    cues, retrieved = scene()
    d = decide(cues, retrieved, None, cfg, MIKELS, stream_of=stream_of)
    assert d.label == "amusement"  # the confident happy face outweighs the weaker coffin
    Z = np.array(d.logits)
    # every item's contribution is exact: their sum is the decided label's centred log-score
    total = sum(it.contribution for it in d.items) + d.bias_contribution
    assert total == pytest.approx((Z[0] - Z.mean()) / cfg.temperature, abs=1e-3)
    assert all(it.contribution == it.set_pushes[d.label] for it in d.items)
    assert [it.contribution for it in d.items] == sorted((it.contribution for it in d.items), reverse=True)
    assert d.items[0].id == "face.happy" and d.items[-1].id == "imagenet.coffin"  # what pulled it down comes last
    assert d.items[-1].contribution < 0 and d.items[-1].points_to == "sadness"
    assert sum(d.scores.values()) == pytest.approx(1.0)
    # a stronger coffin flips it, and the stream weights decide between streams
    assert decide(*scene(face_conf=0.3, object_conf=1.0), None, cfg, MIKELS, stream_of=stream_of).label == "sadness"
    heavy = cfg.model_copy(update={"weights": dict(cfg.weights, objects=4.0)})
    assert decide(cues, retrieved, None, heavy, MIKELS, stream_of=stream_of).label == "sadness"


def test_uniform_evidence_and_empty_streams_change_nothing():
    cfg = load_fusion("untuned")
    cues, retrieved = scene()
    base = decide(cues, retrieved, None, cfg, MIKELS, stream_of=stream_of)
    flat = retrieved + [CueHits(cue_id="C4", hits=[hit("flat", **{m: 0.5 for m in MIKELS8})])]
    more = decide(cues + [cue(4, "scene")], flat, None, cfg, MIKELS, stream_of=stream_of)
    assert more.label == base.label
    assert np.allclose(more.streams["faces"], base.streams["faces"])


def test_a_searched_cue_spreads_one_vote_and_shrinkage_bounds_a_stream():
    cfg = load_fusion("untuned")
    one = [cue(1, "object", 1.0, entries=())]
    five = CueHits(cue_id="C1", hits=[hit(f"h{i}", score=1.0, fear=1.0) for i in range(5)])
    single = CueHits(cue_id="C1", hits=[hit("h0", score=1.0, fear=1.0)])
    z5 = decide(one, [five], None, cfg, MIKELS, stream_of=stream_of).logits
    z1 = decide(one, [single], None, cfg, MIKELS, stream_of=stream_of).logits
    assert np.allclose(z5, z1, atol=1e-4)  # five hits of one searched cue weigh as one
    # a loaded entry's full vote moves its stream by a / (shrinkage + a) of its profile
    zmax = np.log(1 + cfg.floor) - np.log(cfg.floor)
    assert np.ptp(z1) == pytest.approx(zmax * 1.0 / (cfg.shrinkage + 1.0), rel=1e-3)


def test_text_in_the_image_is_capped():
    cfg = load_fusion("untuned").model_copy(update={"weights": {"text": 50.0}})
    cues = [cue(1, "face", 0.9), cue(2, "text", 1.0, source="perception:text", entries=())]
    retrieved = [CueHits(cue_id="C1", hits=[hit("face.happy", amusement=0.8)]),
                 CueHits(cue_id="C2", hits=[hit("emolex:rage", anger=1.0)])]
    d = decide(cues, retrieved, None, cfg, MIKELS, stream_of=stream_of)
    assert d.label == "amusement"  # a stream weight of 50 is held at the cap
    text_item = next(it for it in d.items if it.stream == "text")
    assert text_item.strength == pytest.approx(cfg.text_weight_cap)


def test_alignment_items_are_per_cue_and_shown():
    cfg = load_fusion("untuned")
    rows = np.full((2, 8), 0.3)
    rows[0, 1] = 0.5  # cue C1 reads as awe
    rows[1, 7] = 0.32
    al = AlignmentInput(rows=rows.tolist(), cue_ids=["C1", "C2"], weights=[1.0, 0.2], scale=20.0, source="test")
    d = decide([cue(1, "object"), cue(2, "object")], [], al, cfg, MIKELS, stream_of=stream_of)
    assert d.label == "awe" and d.items[0].id == "align:C1"
    assert set(d.streams) == {"alignment"}


EMOTION6 = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")


def emotion6():
    M = np.zeros((7, 8))
    M[3, :4] = 1.0  # joy gathers the four positive Mikels emotions
    M[5, 1], M[5, 3] = 0.4, 0.25  # surprise: part of awe and excitement
    M[3, 1], M[3, 3] = 0.6, 0.75
    for t, m in ((0, 4), (1, 5), (2, 6), (4, 7)):
        M[t, m] = 1.0
    return LabelSet("emotion6", EMOTION6, M / M.sum(axis=0, keepdims=True))


class Vote:
    """A scripted votes item (knowledge.empirical.Item's fields)."""

    def __init__(self, id, logits, neutral=0.0):
        self.id, self.text, self.support, self.rule, self.value, self.cue_ids = id, id, 10, "", 1.0, []
        self.logits = np.array(list(logits) + [neutral], dtype=float)


class Head:
    """A scripted table head: no set bias, uniform base rates unless given."""

    def __init__(self, prior=None):
        self._prior = prior

    def bias(self, labels):
        return None

    def prior(self, labels, cfg):
        n = len(labels.labels)
        return np.asarray(self._prior, dtype=float) if self._prior is not None else np.full(n, 1.0 / n)


def test_no_label_wins_because_the_set_maps_several_emotions_onto_it():
    cfg = load_fusion("default")
    # every Mikels emotion about equally likely, fear a little more: in Emotion6 fear must win,
    # not joy (which gathers four emotions: summing them gave joy 4x the mass)
    z = [0.0] * 8
    z[6] = 0.3
    d = decide([], [], None, cfg, emotion6(), stream_of=stream_of, votes=[Vote("v", z, neutral=-3.0)], head=Head())
    assert d.label == "fear" and max(d.scores, key=d.scores.get) == "fear"
    # and joy does win when a positive emotion stands out
    z = [0.0] * 8
    z[0] = 1.0
    d = decide([], [], None, cfg, emotion6(), stream_of=stream_of, votes=[Vote("v", z, neutral=-3.0)], head=Head())
    assert d.label == "joy"


def test_every_emotion6_label_is_reachable_surprise_and_neutral_included():
    cfg = load_fusion("default")
    won = set()
    for m in range(8):
        z = [0.0] * 8
        z[m] = 3.0
        won.add(decide([], [], None, cfg, emotion6(), stream_of=stream_of, votes=[Vote("v", z, neutral=-5.0)], head=Head()).label)
    # little emotional evidence: the neutral logit leads
    won.add(decide([], [], None, cfg, emotion6(), stream_of=stream_of, votes=[Vote("v", [0.0] * 8, neutral=2.0)], head=Head()).label)
    assert won == set(EMOTION6)
    # without the learned table, flat evidence reads as neutral, and strong evidence as itself
    flat = decide([], [], None, load_fusion("untuned"), emotion6(), stream_of=stream_of)
    assert flat.label == "neutral"
    cues, retrieved = scene(face_conf=0.3, object_conf=1.0)
    strong = load_fusion("untuned").model_copy(update={"weights": {"objects": 3.0}})
    assert decide(cues, retrieved, None, strong, emotion6(), stream_of=stream_of).label == "sadness"


def test_the_label_is_what_the_photo_evokes_more_than_photos_in_general():
    cfg = load_fusion("default")
    z = [0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 1.0]  # contentment likelier than sadness ...
    prior = [0.4 / 6] * 2 + [0.5] + [0.4 / 6] * 4 + [0.1]  # ... but contentment is what photos usually evoke
    d = decide([], [], None, cfg, MIKELS, stream_of=stream_of, votes=[Vote("v", z)], head=Head(prior))
    assert max(d.scores, key=d.scores.get) == "contentment"
    assert d.label == "sadness" and d.label == max(d.lift, key=d.lift.get)
    assert d.lift["sadness"] == pytest.approx(d.scores["sadness"] / 0.1, rel=1e-3)
    assert sum(d.scores.values()) == pytest.approx(1.0)  # the scores are p itself: no prior mixed in


def test_votes_items_sum_exactly_and_set_pushes_are_computed_in_one_place():
    cfg = load_fusion("default")
    rng = np.random.default_rng(1)
    votes = [Vote(f"v{i}", rng.normal(0, 0.3, 8), neutral=rng.normal(0, 0.2)) for i in range(60)]
    d = decide([], [], None, cfg, MIKELS, stream_of=stream_of, votes=votes, head=Head())
    assert len(d.items) == 41 and [it.id for it in d.items].count("votes:rest") == 1  # 40 shown one by one, the rest summed
    Z = np.array(d.logits)
    assert np.allclose(Z, np.sum([np.asarray(it.parts[:8]) for it in d.items], axis=0), atol=1e-4)
    y = MIKELS8.index(d.label)
    assert sum(it.contribution for it in d.items) == pytest.approx(Z[y] - Z.mean(), abs=1e-3)
    # in another label set the same parts give the same pushes through the one function
    e6 = emotion6()
    d6 = decide([], [], None, cfg, e6, stream_of=stream_of, votes=votes, head=Head())
    for it in d6.items:
        assert it.set_pushes == set_pushes(e6, np.array(d6.logits), cfg, it.parts)
    assert d6.neutral_logit == pytest.approx(sum(it.parts[8] for it in d6.items), abs=1e-4)


def test_softmax_rows():
    x = np.array([[1.0, 2.0], [3.0, 3.0]])
    assert np.allclose(softmax(x), [[1 / (1 + np.e), np.e / (1 + np.e)], [0.5, 0.5]])
