"""The transformers VLM backend on a tiny randomly initialised Idefics3 (SmolVLM
architecture) with the real SmolLM2 tokenizer: real processor, chat template and generate."""

from __future__ import annotations

import importlib.util

import pytest
from PIL import Image

from kever.agent.models import VLM, ModelSpec, load_vlm, weights_available
from kever.agent.models.tiny import build_tiny_idefics3
from kever.errors import InputError

pytestmark = pytest.mark.slow

ASK = [
    {"role": "system", "content": "You describe images."},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What mood does this photo have?"}]},
]


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny_idefics3"))


@pytest.fixture(scope="session")
def tiny_vlm(tiny_vlm_dir):
    return load_vlm(ModelSpec(backend="transformers", model=str(tiny_vlm_dir)))


def test_saved_model_is_a_loadable_folder(tiny_vlm_dir):
    assert (tiny_vlm_dir / "config.json").is_file()
    assert weights_available(ModelSpec(backend="transformers", model=str(tiny_vlm_dir)))


def test_prompt_uses_the_processor_chat_template(tiny_vlm):
    assert isinstance(tiny_vlm, VLM)
    text = tiny_vlm.prompt(ASK)
    assert text.startswith("<|im_start|>System: You describe images.<end_of_utterance>")
    assert "User:<image>What mood does this photo have?<end_of_utterance>" in text
    assert text.endswith("Assistant:")


def test_processor_expands_image_tokens(tiny_vlm, demo_image):
    proc = tiny_vlm.processor
    enc = proc(text=[tiny_vlm.prompt(ASK)], images=[[Image.open(demo_image)]], return_tensors="pt")
    image_id = proc.tokenizer.convert_tokens_to_ids("<image>")
    assert int((enc["input_ids"] == image_id).sum()) == proc.image_seq_len == 4
    assert enc["pixel_values"].shape[-2:] == (32, 32)


def test_generate_with_image_decodes_only_new_tokens_greedily(tiny_vlm, demo_image):
    im = Image.open(demo_image)
    a = tiny_vlm.generate(ASK, [im], max_new_tokens=12)
    b = tiny_vlm.generate(ASK, [im], max_new_tokens=12)
    assert isinstance(a, str) and a == b  # greedy by default
    assert 0 < tiny_vlm.last_new_tokens <= 12
    assert "What mood" not in a and "Assistant:" not in a
    # a different image changes the (random) model's conditional output: the pixels reach it
    other = tiny_vlm.generate(ASK, [Image.new("RGB", (64, 48), (250, 250, 0))], max_new_tokens=12)
    assert isinstance(other, str) and other and other != a


def test_generate_text_only_and_sampling(tiny_vlm):
    import torch

    msgs = [{"role": "user", "content": "Say something."}]
    out = tiny_vlm.generate(msgs, max_new_tokens=5)
    assert isinstance(out, str) and out and tiny_vlm.last_new_tokens <= 5
    assert tiny_vlm.generate(msgs, max_new_tokens=5) == out  # greedy: the same every time
    # temperature > 0 samples: the seed decides, so seeds differ and one seed repeats
    sampled = []
    for seed in range(4):
        torch.manual_seed(seed)
        sampled.append(tiny_vlm.generate(msgs, max_new_tokens=5, temperature=0.8))
        assert 0 < tiny_vlm.last_new_tokens <= 5
    assert len(set(sampled)) > 1, sampled
    torch.manual_seed(0)
    assert tiny_vlm.generate(msgs, max_new_tokens=5, temperature=0.8) == sampled[0]


def test_generate_mismatched_images_is_input_error(tiny_vlm):
    with pytest.raises(InputError):
        tiny_vlm.generate(ASK, [])


@pytest.mark.parametrize("bits", ["8bit", "4bit"])
def test_bitsandbytes_load_on_cpu(tiny_vlm_dir, demo_image, bits):
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed")
    # bitsandbytes >= 0.45 loads 8-bit and NF4 on the CPU: a failure here is a failure
    vlm = load_vlm(ModelSpec(backend="transformers", model=str(tiny_vlm_dir), quantization=bits))
    import bitsandbytes as bnb

    linear = {"8bit": bnb.nn.Linear8bitLt, "4bit": bnb.nn.Linear4bit}[bits]
    assert any(isinstance(m, linear) for m in vlm.model.modules())
    out = vlm.generate(ASK, [Image.open(demo_image)], max_new_tokens=4)
    assert isinstance(out, str) and vlm.last_new_tokens <= 4


def test_hub_ids_without_network_are_model_unavailable(tmp_path, monkeypatch):
    from pinning import pin_machine

    from kever.agent.models import load_text_lm

    pin_machine(monkeypatch, tmp_path / "hf_home")  # a machine whose cache holds SmolVLM must still refuse
    from kever.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="cannot load VLM"):
        load_vlm(ModelSpec(backend="transformers", model="HuggingFaceTB/SmolVLM-256M-Instruct"))
    with pytest.raises(ModelUnavailable, match="cannot load text model"):
        load_text_lm(ModelSpec(backend="transformers", model="Qwen/Qwen2.5-0.5B-Instruct"))
