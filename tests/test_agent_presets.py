"""Presets end to end through ``Reasoner.from_preset``: the real ``offline`` models on a real
photo, and the ``cpu`` preset's code path (transformers VLM + open_clip) on tiny randomly
initialised models of the same architectures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pinning import pin_machine

from kever.agent.config import load_preset
from kever.agent.fusion import MIKELS8
from kever.agent.reasoner import Reasoner
from kever.errors import ConfigError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def pinned_machine(tmp_path_factory):
    """No CUDA device and an empty Hugging Face cache, on every machine: ``auto`` must not pick
    a preset from weights that happen to be cached here, nor models run on a GPU."""
    with pytest.MonkeyPatch.context() as mp:
        pin_machine(mp, tmp_path_factory.mktemp("hf_home"))
        yield


@pytest.fixture(scope="module")
def offline(pinned_machine):
    return Reasoner.from_preset("offline")


def test_offline_preset_on_a_real_photo(offline, flickr_dev):
    photo = sorted((flickr_dev / "images").glob("*.jpg"))[0]
    j = offline.explain(photo)
    assert j.label in MIKELS8 and abs(sum(j.scores.values()) - 1) < 1e-6
    assert j.models["preset"] == "offline"
    assert "text_lm" not in j.models  # offline writes its explanation without a language model
    assert j.models["embedder"].endswith("all-MiniLM-L6-v2") or "minilm" in j.models["embedder"].lower()
    assert j.cues and j.evidence
    assert j.rationale_kind == "template" and j.rationale.startswith(f"This image evokes {j.label} more than photos in general do")
    from kever.agent.rationale import check

    assert check(j.rationale, type("S", (), {**j.__dict__, "labels": offline.labelset(None)})()) is None
    assert set(j.streams) == {"votes"}  # the offline decision reads the learned table alone
    assert j.base_rates and j.label == max(j.lift, key=j.lift.get)
    again = offline.explain(photo)  # on a pinned CPU: the same words every time
    assert (again.label, again.rationale_kind, again.rationale) == (j.label, j.rationale_kind, j.rationale)


def test_offline_demo_image_is_positive(offline, demo_image):
    """The smiling astronaut: the face and warm colours must pull to a positive emotion."""
    j = offline.explain(demo_image, rationale=False)
    assert j.valence > 0
    assert j.label in ("amusement", "awe", "contentment", "excitement")
    assert any(c.family == "face" and "happy" in c.text for c in j.cues)


def test_auto_preset_falls_back_to_offline_and_says_so(demo_image):
    r = Reasoner.from_preset("auto")
    assert r.preset == "offline"
    j = r.explain(demo_image, rationale=False)
    (why,) = [w for w in j.warnings if w.startswith("auto: chose 'offline'")]
    assert "gpu: no CUDA device" in why and "cpu: weights for vlm, aligner not present" in why


@pytest.fixture(scope="module")
def tiny_cpu_preset(tmp_path_factory):
    from kever.agent.models.tiny import write_tiny_cpu_preset

    return write_tiny_cpu_preset(tmp_path_factory.mktemp("tiny"))


def test_cpu_preset_code_path_on_tiny_models(tiny_cpu_preset, demo_image):
    r = Reasoner.from_preset(str(tiny_cpu_preset))
    assert r.c.vlm is not None and r.c.aligner is not None and r.c.text_lm is r.c.vlm
    j = r.explain(demo_image)
    # random weights: the VLM's cue JSON is noise, so the graph must repair once, then fall
    # back to perception cues, and template the rationale after one regeneration
    assert "describe_cues" in j.prompt_versions
    assert any("perception cues used alone" in w or "repaired" in w for w in j.warnings)
    assert "alignment" in j.streams  # open_clip scored the label prompts
    assert j.rationale and j.label in MIKELS8
    assert j.models["vlm"] and j.models["aligner"]


def test_explain_cli_offline_json(demo_image):
    run = subprocess.run(
        [sys.executable, "-m", "kever", "explain", str(demo_image), "--preset", "offline", "--json", "--no-rationale"],
        capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(run.stdout)
    for key in ("label", "scores", "confidence", "valence", "arousal", "cues", "evidence", "rationale", "models", "timings"):
        assert key in data
    assert all({"id", "source", "text", "weights"} <= set(e) for e in data["evidence"])


def test_a_typo_in_a_user_preset_is_one_clear_line(tmp_path, demo_image):
    """A misspelt field of a model entry in a user's preset file is reported where it is, in
    one line, before anything loads (not "internal error ... a bug in kever")."""
    bad = tmp_path / "mine.yaml"
    bad.write_text("name: mine\ntext_lm:\n  backend: llamacpp\n  modle: qwen2.5-coder-1.5b-instruct-q4_k_m\nfusion: default\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: text_lm: invalid model entry \(modle: Extra inputs"):
        load_preset(str(bad))
    run = subprocess.run([sys.executable, "-m", "kever", "explain", str(demo_image), "--preset", str(bad), "--no-rationale"],
                         capture_output=True, text=True, timeout=300)
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and "internal error" not in run.stderr
    assert len(lines) == 1 and "text_lm: invalid model entry (modle:" in lines[0], run.stderr
