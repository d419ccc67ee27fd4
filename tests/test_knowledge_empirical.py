"""The learned association table (knowledge/empirical.py): its shipped data, exact items, features."""

from __future__ import annotations

import numpy as np
import pytest

from kever.knowledge.empirical import COLUMNS, N_IMAGENET, Associations, feature_names, features, load_associations
from kever.tools.perception.objects import imagenet_classes, imagenet_wnids
from kever.tools.perception.schema import Expressions, Face, Perception


def perception(faces=1, seed=0) -> Perception:
    rng = np.random.default_rng(seed)
    dense = {m: rng.dirichlet(np.full(1000, 0.05)).astype(np.float32) for m in ("efficientnet-lite0", "efficientnet-lite2")}
    fs = [Face(box=(0, 0, 50 + i, 50), score=0.9, expressions=Expressions(happy=0.7, neutral=0.3), dominant="happy",
               dominant_score=0.7) for i in range(faces)]
    return Perception(source="x.jpg", width=100, height=100, brightness=0.4, saturation=0.3, colorfulness=0.2,
                      warmth=0.1, contrast=0.5, faces=fs, imagenet=dense)


def test_the_shipped_table_loads_and_says_what_it_was_fitted_on():
    a = load_associations()
    assert a.W.shape == (len(feature_names()), len(COLUMNS)) and a.Z_train.shape[1] == len(COLUMNS)
    assert set(a.meta["fitted_on"]) == {"flickr_ldl", "emotion6", "twitter1"}
    assert set(a.label_sets) == {"mikels8", "emotion6", "sentiment"}
    # every ImageNet row names the rule that was its prior, where a rule spoke
    assert sum(1 for r in a.rule_ids[:N_IMAGENET] if r.startswith("imagenet.")) > 1500
    assert a.rule_ids[N_IMAGENET + 1 + 3] == "face.happy"


def test_items_sum_exactly_to_the_logits():
    a = load_associations()
    x = features(perception())
    items = a.items(x, imagenet_classes(), imagenet_wnids())
    assert len(items) == 1000 + (len(feature_names()) - N_IMAGENET) + 1
    assert np.allclose(np.sum([it.logits for it in items], axis=0), a.logits(x), atol=1e-6)
    happy = next(it for it in items if it.id == "votes:face.happy")
    assert happy.text.startswith("largest face happy") and happy.rule == "face.happy"
    bare = a.items(features(perception(faces=0)), imagenet_classes(), imagenet_wnids())
    no_face = next(it for it in bare if it.id == "votes:face.happy")
    assert no_face.text == "no happy face"


def test_features_need_both_imagenet_models():
    p = perception()
    assert features(p).shape == (len(feature_names()),)
    p.imagenet.pop("efficientnet-lite2")
    assert features(p) is None


def test_round_trip(tmp_path):
    a = load_associations()
    b_path = tmp_path / "t.npz"
    a.save(b_path)
    b = Associations.load(b_path)
    assert np.allclose(a.W, b.W, atol=1e-6) and b.meta["lambda"] == a.meta["lambda"]
    with pytest.raises(Exception, match="missing"):
        Associations.load(tmp_path / "absent.npz")
