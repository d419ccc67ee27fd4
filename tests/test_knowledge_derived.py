"""The derived ImageNet knowledge (knowledge/cues/imagenet.yaml): by rule, complete, reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest

from kever.knowledge.loader import load_knowledge
from kever.tools.perception.objects import imagenet_classes, imagenet_wnids


@pytest.fixture(scope="module")
def derived():
    return {e.id: e for e in load_knowledge().cue_files["cues/imagenet.yaml"].entries}


def test_every_entry_is_an_imagenet_class_with_bounded_weights(derived):
    wnids = set(imagenet_wnids())
    assert len(derived) >= 900  # the rules answer >= 90% of the 1,000 classes
    for id_, e in derived.items():
        assert id_.removeprefix("imagenet.") in wnids
        assert 0 < sum(e.weights.values()) <= 1.005  # the sum is the class's strength (3-decimal rounding)
        assert "miller1995wordnet" in e.sources and e.text


def by_name(derived, name):
    i = imagenet_classes().index(name)
    return derived[f"imagenet.{imagenet_wnids()[i]}"]


def test_classes_inherit_from_their_wordnet_ancestors(derived):
    tabby = by_name(derived, "tabby")
    assert "animal.kitten" in tabby.text  # by its own name
    sealyham = by_name(derived, "Sealyham terrier")  # no curated entry names it: inherits "dog"
    assert "animal.puppy" in sealyham.text and "levels up in WordNet" in sealyham.text
    assert max(by_name(derived, "alp").weights, key=by_name(derived, "alp").weights.get) == "awe"
    coffin = by_name(derived, "ashcan")
    assert max(coffin.weights, key=coffin.weights.get) == "disgust"


def test_the_committed_file_is_what_the_rules_derive():
    from kever.knowledge import derive_imagenet

    if not (Path("/usr/share/wordnet/data.noun").is_file() or Path(__import__("os").environ.get("WNSEARCHDIR", "/nonexistent"), "data.noun").is_file()):
        pytest.skip("WordNet 3.0 (Debian wordnet-base) is not installed: the derivation cannot be rerun here")
    assert derive_imagenet.main(["--check"]) == 0
