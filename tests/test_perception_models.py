"""The real packaged models, loaded once per session, on the shipped demo photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from kever.errors import InputError, KeverError
from kever.paths import ASSETS_DIR
from kever.tools.perception import Perceiver, Perception

pytestmark = pytest.mark.slow

CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}


@pytest.fixture(scope="session")
def perceiver(session_cache):
    # Session fixtures run before the function-scoped autouse home/cache fixture: point the
    # ONNX export at the session cache explicitly.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEVER_CACHE_DIR", str(session_cache))
        return Perceiver.load()


def test_astronaut_smiles(perceiver, demo_image):
    p = perceiver.perceive(demo_image)
    assert len(p.faces) >= 1
    face = p.largest_face()
    assert face.dominant == "happy"
    assert face.expressions.happy > 0.5
    assert sum(face.expressions.model_dump().values()) == pytest.approx(1.0, abs=0.01)
    x, y, w, h = face.box
    assert 0 <= x < p.width and 0 <= y < p.height and w > 30  # a real face, inside the image
    assert p.face_valence() == 1
    assert 0 < face.score <= 1


def test_objects_on_cat_and_coffee(perceiver):
    cat = perceiver.perceive(ASSETS_DIR / "chelsea.jpg")
    assert CATS & {o.label for o in cat.objects[:3]}
    coffee = perceiver.perceive(ASSETS_DIR / "coffee.jpg")
    assert coffee.objects[0].label == "espresso"
    scores = [o.score for o in coffee.objects]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5
    assert not cat.faces  # a cat is not a human face


def test_text_is_read(perceiver, tmp_path):
    img = Image.new("RGB", (640, 240), "white")
    ImageDraw.Draw(img).text((30, 80), "HELLO KEVER", fill="black", font=ImageFont.load_default(size=64))
    p = perceiver.perceive(img)
    assert [t.text for t in p.text] == ["HELLO KEVER"]
    assert p.text[0].score > 0.8
    assert perceiver.perceive(ASSETS_DIR / "coffee.jpg").text == []


def test_every_cue_says_which_model_made_it(perceiver, demo_image):
    p = perceiver.perceive(demo_image)
    assert set(p.models) == {"colour", "faces", "objects", "objects.efficientnet-lite2", "text"} == set(perceiver.models)
    assert "fer" in p.models["faces"] and "efficientnet-lite0" in p.models["objects"]
    assert "rapidocr" in p.models["text"]
    assert set(p.timings) >= {"colour", "faces", "objects", "text", "total"}


def test_batch_matches_single_and_keeps_errors_in_place(perceiver, demo_image, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really")
    items = [demo_image, bad, ASSETS_DIR / "coffee.jpg", str(tmp_path / "missing.png"), ASSETS_DIR / "chelsea.jpg"]
    out = perceiver.perceive_many(items, batch_size=2)
    assert [type(o).__name__ for o in out] == ["Perception", "InputError", "Perception", "InputError", "Perception"]
    assert all(isinstance(o, KeverError) for o in (out[1], out[3]))
    single = perceiver.perceive(ASSETS_DIR / "coffee.jpg")
    assert [o.label for o in out[2].objects] == [o.label for o in single.objects]
    assert out[2].objects[0].score == pytest.approx(single.objects[0].score, abs=1e-3)
    with pytest.raises(InputError):
        perceiver.perceive(bad)


def test_odd_inputs_perceived(perceiver, demo_image):
    p = perceiver.perceive(Image.open(demo_image).convert("RGBA"))
    assert "transparency composited on white" in p.notes and p.width == 512 and p.faces
    grey = perceiver.perceive(Image.open(demo_image).convert("L"))
    assert grey.saturation == 0.0 and grey.faces  # the face is still found in grey
    assert isinstance(perceiver.perceive(demo_image.read_bytes()), Perception)


def test_subset_of_extractors(demo_image):
    p = Perceiver.load(extractors=("colour",)).perceive(demo_image)
    assert p.brightness is not None and p.faces == [] and p.objects == [] and set(p.models) == {"colour"}


def test_onnx_export_is_cached_and_agrees_with_torch(perceiver, session_cache):
    from kever.tools.perception.objects import ObjectClassifier, onnx_path

    path = onnx_path()
    assert path.is_file() and str(path).startswith(str(session_cache))
    assert perceiver._objects.backend == "onnxruntime"
    torch_model = ObjectClassifier(backend="torch")
    rgb = np.asarray(Image.open(ASSETS_DIR / "coffee.jpg").convert("RGB"))
    a, b = perceiver._objects([rgb])[0], torch_model([rgb])[0]
    assert [o.label for o in a[:3]] == [o.label for o in b[:3]]
    assert a[0].score == pytest.approx(b[0].score, abs=1e-3)


def test_benchmark_script_writes_its_figures(flickr_dev, tmp_path, perceiver):
    import json
    import subprocess
    import sys

    from kever.paths import PACKAGE_DIR

    out = tmp_path / "perception.json"
    script = PACKAGE_DIR.parent / "benchmarks" / "perception_bench.py"
    if not script.is_file():
        pytest.skip("benchmarks/ is not beside the package (installed, not a checkout)")
    proc = subprocess.run(
        [sys.executable, str(script), "--data", str(flickr_dev), "--limit", "3", "--skip-cold-start", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["images"] == 3 and not data["errors"]
    assert set(data["median_s_per_image"]) == {"colour", "faces", "objects", "text"}
    assert data["end_to_end_median_s"] > 0 and data["peak_rss_mb"] > 0
    # the same three images (the first by number) through this session's perceiver
    rows = (flickr_dev / "ground_truth.txt").read_text().split("\n")[1:]
    names = sorted((r.split()[0] for r in rows if len(r.split()) == 9), key=lambda n: int(n.split(".")[0]))[:3]
    with_face = sum(bool(perceiver.perceive(flickr_dev / "images" / n).faces) for n in names)
    assert data["faces"]["images_with_face"] == with_face
    assert data["faces"]["share_with_face"] == round(with_face / 3, 3)
