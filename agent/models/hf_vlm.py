"""A transformers image-text-to-text model as a VLM (SmolVLM/Idefics3, Qwen2.5-VL,
LLaVA-style): ``AutoProcessor`` + ``AutoModelForImageTextToText``, prompted through the
processor's chat template; optional bitsandbytes 4/8-bit and accelerate ``device_map``;
greedy by default; only the newly generated tokens are decoded."""

from __future__ import annotations

import logging

from kever.agent.models.base import Message, check_images
from kever.agent.models.spec import ModelSpec, local_dir, require
from kever.agent.models.torch_utils import (
    from_pretrained_kwargs,
    load_failed,
    generation_kwargs,
    model_device,
    set_threads,
)
from kever.errors import ModelUnavailable

log = logging.getLogger(__name__)


def to_parts(messages: list[Message]) -> list[Message]:
    """Messages with every content as a list of parts, the form processors' chat templates
    expect (``{"type": "text", "text": ...}`` / ``{"type": "image"}``)."""
    out = []
    for m in messages:
        c = m.get("content", "")
        if isinstance(c, str):
            parts = [{"type": "text", "text": c}]
        else:
            parts = []
            for p in c:
                if p.get("type") in ("image", "image_url"):
                    parts.append({"type": "image"})
                elif p.get("type") == "text":
                    parts.append({"type": "text", "text": p.get("text", "")})
        out.append({"role": m["role"], "content": parts})
    return out


class HFVLM:
    def __init__(self, spec: ModelSpec):
        require(spec, "model")
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as e:  # pragma: no cover
            from kever.errors import missing_package

            raise missing_package("transformers") from e
        self.spec = spec
        self.model_id = spec.label()
        self.threads = set_threads()
        source = str(local_dir(spec) or spec.model)
        kwargs = from_pretrained_kwargs(spec)
        try:
            self.processor = AutoProcessor.from_pretrained(source, **spec.options.get("processor", {}))
            self.model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        except OSError as e:
            raise load_failed("VLM", source, e) from e
        self.model.eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        if getattr(self.processor, "chat_template", None) is None:
            raise ModelUnavailable(f"VLM '{source}' has no chat template", "use an instruct checkpoint")

    def prompt(self, messages: list[Message]) -> str:
        return self.processor.apply_chat_template(to_parts(messages), add_generation_prompt=True, tokenize=False)

    def generate(
        self,
        messages: list[Message],
        images: list | None = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> str:
        import torch

        check_images(messages, images)
        text = self.prompt(messages)
        rgb = [im.convert("RGB") for im in images] if images else None
        # one prompt: a flat image list is what every processor family accepts
        enc = self.processor(text=[text], images=rgb, return_tensors="pt").to(model_device(self.model))
        if "pixel_values" in enc:  # match the vision tower's float dtype (bf16/fp16 models)
            float_dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
            enc["pixel_values"] = enc["pixel_values"].to(float_dtype)
        n_in = enc["input_ids"].shape[1]
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(self.tokenizer, "eos_token_id", None)
        with torch.inference_mode():
            out = self.model.generate(**enc, **generation_kwargs(max_new_tokens, temperature, pad, self.spec.options))
        self.last_new_tokens = int(out.shape[1] - n_in)
        return self.tokenizer.decode(out[0, n_in:], skip_special_tokens=True).strip()
