"""The decision function (agent/fusion.py) and its fitting (evals/fitting.py), on scripted inputs."""

from __future__ import annotations

import numpy as np
import pytest

from kever.agent.config import FusionConfig, load_fusion
from kever.agent.fusion import MIKELS8, AlignmentInput, decide, fuse, softmax
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


def test_calibration_keeps_the_label_in_the_asked_label_set():
    # a 2-label set (positive, negative) carried from Mikels 8, and a prior that favours negative
    M = np.zeros((2, 8))
    M[0, :4] = 1
    M[1, 4:] = 1
    labels = LabelSet("sentiment", ("positive", "negative"), M)
    prior = [0.01, 0.01, 0.01, 0.01, 0.24, 0.24, 0.24, 0.24]
    cfg = load_fusion("untuned").model_copy(update={"prior": prior, "prior_mix": 0.95})
    cues, retrieved = scene(face_conf=0.5, object_conf=0.4)
    d = decide(cues, retrieved, None, cfg, labels, stream_of=stream_of)
    assert d.label == max(d.scores, key=d.scores.get)  # the label is still the arg-max after mixing
    assert d.scores[d.label] < max(d.uncalibrated)  # yet the prior moved the distribution


def test_fuse_is_what_decide_does_and_works_on_rows():
    cfg = load_fusion("untuned").model_copy(update={"temperature": 0.7, "prior": [1 / 8] * 8, "prior_mix": 0.3})
    cues, retrieved = scene()
    d = decide(cues, retrieved, None, cfg, MIKELS, stream_of=stream_of)
    z = {s: np.log(np.array(q)) for s, q in d.streams.items()}
    _, _, _, reported, y = fuse(z, cfg)
    assert MIKELS8[y] == d.label and np.allclose(reported, list(d.scores.values()), atol=1e-6)
    rows = {s: np.stack([v, v[::-1]]) for s, v in z.items()}
    _, _, _, rep2, y2 = fuse(rows, cfg)
    assert y2[0] == y and np.allclose(rep2[0], reported)


def test_fitting_weighs_a_signal_stream_over_noise():
    from kever.evals.fitting import Logged, cross_validate, fit_decision, full_procedure, predict

    rng = np.random.default_rng(0)
    n = 240
    truth = rng.integers(0, 8, n)
    t = np.full((n, 8), 0.02)
    t[np.arange(n), truth] = 0.86
    z = []
    for y in truth:
        good = rng.normal(0, 1, 8)
        good[y] += 2.0
        z.append({"objects": good - good.mean(), "colour": rng.normal(0, 1, 8)})
    data = Logged([str(i) for i in range(n)], z, t, [{}] * n)
    cfg = fit_decision(data, FusionConfig(weights={"objects": 1.0, "colour": 1.0}), ["objects", "colour"], lam=0.001)
    assert cfg.weight("objects") > 3 * cfg.weight("colour")
    y, P, _ = predict(data, cfg)
    assert (y == truth).mean() > 0.5 and np.allclose(P.sum(axis=1), 1)
    res = cross_validate(data, full_procedure(FusionConfig(weights={"objects": 1.0, "colour": 1.0})), folds=3, repeats=1)
    assert res["mean"]["balanced_accuracy"] > 0.5  # held out: the signal transfers
    assert res["predictions"][0].shape == (n,)


def test_softmax_rows():
    x = np.array([[1.0, 2.0], [3.0, 3.0]])
    assert np.allclose(softmax(x), [[1 / (1 + np.e), np.e / (1 + np.e)], [0.5, 0.5]])
