"""Loaders on fixtures written in each published format, and Flickr_LDL's real dev split."""

from __future__ import annotations

import pytest
from eval_helpers import make_class_folders, make_csv, make_emoset, make_emotion6, make_flickr, make_twitter

from kever.errors import InputError
from kever.evals.datasets import load_dataset


def test_flickr_ldl_votes_ties_and_prior(tmp_path):
    root = make_flickr(tmp_path, [[0, 0, 0, 0, 0, 0, 2, 9], [3, 0, 1, 0, 0, 1, 2, 4], [4, 4, 3, 0, 0, 0, 0, 0]])
    ds = load_dataset("flickr_ldl", root)
    assert ds.label_set == "mikels8" and [s.id for s in ds.samples] == ["1.jpg", "2.jpg", "3.jpg"]
    s1, s2, s3 = ds.samples
    assert s1.truth.label == "sadness" and s1.truth.distribution["fear"] == pytest.approx(2 / 11)
    assert s2.truth.label == "sadness"
    assert s3.truth.label is None and s3.truth.labels == ["amusement", "awe"]
    assert s1.image.endswith("images/1.jpg")
    prior = ds.prior()
    assert sum(prior.values()) == pytest.approx(1.0)
    assert prior["sadness"] == pytest.approx((9 + 4) / 33)
    with pytest.raises(InputError, match="no splits"):
        load_dataset("flickr_ldl", root, split="test")


def test_flickr_dev_real_split(flickr_dev):
    ds = load_dataset("flickr_ldl", flickr_dev)
    assert len(ds.samples) == 350
    assert sum(s.truth.label is None for s in ds.samples) == 38
    assert sum(s.truth.label == "contentment" for s in ds.samples) == 166
    assert all(s.truth.distribution and abs(sum(s.truth.distribution.values()) - 1) < 1e-9 for s in ds.samples)


def test_emotion6_distribution_and_valence_arousal(tmp_path):
    ds = load_dataset("emotion6", make_emotion6(tmp_path))
    assert ds.labels == ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
    by = {s.id: s for s in ds.samples}
    assert by["anger/1.jpg"].truth.label == "anger" and by["anger/1.jpg"].truth.valence == 3.1
    assert by["joy/2.jpg"].truth.arousal == 5.0
    assert by["fear/3.jpg"].truth.label is None and by["fear/3.jpg"].truth.labels == ["fear", "surprise"]
    assert by["joy/2.jpg"].image.endswith("images/joy/2.jpg")


def test_emoset_splits_and_attributes(tmp_path):
    root = make_emoset(tmp_path)
    test = load_dataset("emoset", root)
    assert test.split == "test" and [s.truth.label for s in test.samples] == ["amusement", "awe", "sadness"]
    assert test.samples[0].attributes["scene"] == "beach"
    assert [s.id for s in load_dataset("emoset", root, "train").samples] == ["awe_00001", "fear_00002"]
    with pytest.raises(InputError):
        load_dataset("emoset", root, "nosuch")


@pytest.mark.parametrize("name", ["fi", "artphoto"])
def test_fi_and_artphoto_folders(tmp_path, name):
    root = make_class_folders(tmp_path, {"awe": 2, "fear": 1, "sadness": 3})
    ds = load_dataset(name, root)
    assert ds.labels[0] == "amusement" and len(ds.samples) == 6
    assert {s.id: s.truth.label for s in ds.samples}["fear/fear_0000.jpg"] == "fear"


def test_fi_rejects_unknown_class_folder(tmp_path):
    make_class_folders(tmp_path, {"awe": 1, "happiness": 1})
    with pytest.raises(InputError, match="happiness"):
        load_dataset("fi", tmp_path)


def test_generic_folder_custom_labels(tmp_path):
    ds = load_dataset("folder", make_class_folders(tmp_path, {"calm": 1, "dread": 2}, prefix_class=False))
    assert ds.label_set == "custom" and ds.labels == ["calm", "dread"]
    assert [s.truth.label for s in ds.samples] == ["calm", "dread", "dread"]


def test_twitter_lists(tmp_path):
    root = make_twitter(tmp_path, [("a.jpg", 1), ("b.jpg", 0)])
    make_twitter(root, [("a.jpg", 1)], list_name="3agree")
    with pytest.raises(InputError, match="--split"):
        load_dataset("twitter", root)
    ds = load_dataset("twitter", root, "5agree")
    assert ds.labels == ["positive", "negative"]  # the taxonomy order (knowledge/taxonomies.yaml)
    assert {s.id: s.truth.label for s in ds.samples} == {"a.jpg": "positive", "b.jpg": "negative"}


def test_twitter_bad_line(tmp_path):
    root = make_twitter(tmp_path, [("a.jpg", 1)])
    (root / "5agree.txt").write_text("a.jpg 7\n")
    with pytest.raises(InputError, match="line 1"):
        load_dataset("twitter", root)


def test_csv_manifest_with_distribution(tmp_path):
    ds = load_dataset("csv", make_csv(tmp_path))
    assert ds.labels == ["joy", "calm", "dread"] and ds.label_set == "custom"
    x1, x2 = ds.samples
    assert x1.truth.label == "joy" and x1.truth.valence == 0.5
    assert x2.truth.label is None and x2.truth.labels == ["calm", "dread"]
    assert x2.image.endswith("sub/b.jpg")


def test_unknown_dataset_and_missing_root(tmp_path):
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset("nope", tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        load_dataset("fi", tmp_path / "missing")
    with pytest.raises(InputError, match="ground_truth"):
        load_dataset("flickr_ldl", tmp_path)
