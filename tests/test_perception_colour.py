"""Colour and light statistics on images whose answers are known, and the shipped fake."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kever.errors import ConfigError, InputError, KeverError
from kever.tools.perception import FakePerceiver, Perception
from kever.tools.perception.colour import measure, palette
from kever.tools.perception.perceiver import check_extractors


def solid(rgb, size=(64, 48)) -> np.ndarray:
    return np.asarray(Image.new("RGB", size, rgb))


def test_pure_red_is_warm_saturated_and_named_red():
    m = measure(solid((210, 25, 25)))
    assert m["warmth"] > 0.9
    assert m["saturation"] > 0.8
    assert m["colours"][0].name == "red" and m["colours"][0].share == 1.0
    assert m["contrast"] == 0.0


def test_pure_blue_is_cool():
    m = measure(solid((30, 70, 210)))
    assert m["warmth"] < -0.9
    assert m["colours"][0].name == "blue"


def test_grey_has_no_colour():
    m = measure(solid((128, 128, 128)))
    assert m["saturation"] == 0.0 and m["colorfulness"] == 0.0 and m["warmth"] == 0.0
    assert m["colours"][0].name == "grey"


def test_brightness_and_contrast_ranges():
    assert measure(solid((0, 0, 0)))["brightness"] == 0.0
    assert measure(solid((255, 255, 255)))["brightness"] == 1.0
    half = np.zeros((48, 64, 3), np.uint8)
    half[:, 32:] = 255
    m = measure(half)
    assert m["brightness"] == pytest.approx(0.5, abs=0.01)
    assert m["contrast"] == pytest.approx(0.5, abs=0.01)  # the largest RMS contrast possible
    assert {c.name for c in m["colours"]} == {"black", "white"}


def test_colourful_noise_beats_pale_noise():
    rng = np.random.default_rng(0)
    vivid = rng.integers(0, 255, (48, 64, 3)).astype(np.uint8)
    pale = (200 + rng.integers(0, 20, (48, 64, 3))).astype(np.uint8)
    a, b = measure(vivid), measure(pale)
    assert a["colorfulness"] > 0.5 > b["colorfulness"]
    assert a["colorfulness_raw"] > 75  # Hasler-Suesstrunk "quite colourful" and beyond
    assert 0 <= b["colorfulness"] <= 1


def test_palette_is_data_with_unique_names():
    names, rgb, lab = palette()
    assert len(names) == len(set(names)) >= 12
    assert rgb.shape == lab.shape == (len(names), 3)


def test_extractor_names_are_checked():
    assert check_extractors(["Colour", "ocr", "faces", "colour"]) == ("colour", "text", "faces")
    with pytest.raises(ConfigError, match="pose"):
        check_extractors(["pose"])


def test_fake_perceiver_has_the_same_interface(demo_image, tmp_path):
    fake = FakePerceiver.load(extractors=("colour", "faces", "objects", "text"), faces=True, text="SALE")
    p = fake.perceive(demo_image)
    assert isinstance(p, Perception)
    assert p.faces and p.faces[0].dominant in p.faces[0].expressions.model_dump()
    assert p.text[0].text == "SALE" and p.objects and p.brightness is not None
    assert p == fake.perceive(demo_image)  # deterministic
    assert set(fake.models) == {"colour", "faces", "objects", "text"}
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with pytest.raises(InputError):
        fake.perceive(bad)
    out = fake.perceive_many([demo_image, bad, demo_image])
    assert isinstance(out[1], KeverError) and out[0] == out[2]


def test_perception_json_has_the_promised_keys(demo_image):
    data = FakePerceiver().perceive(demo_image).model_dump(mode="json")
    for key in ("source", "width", "height", "brightness", "saturation", "colorfulness", "warmth", "contrast",
                "colours", "faces", "objects", "text", "models", "timings", "notes"):
        assert key in data
    assert Perception.model_validate(data).source == str(demo_image)
