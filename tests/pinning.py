"""Pin what a test's answer must not depend on: a CUDA device, and weights that happen to sit
in this machine's Hugging Face cache.

Without the pin, ``auto`` picks ``gpu`` or ``cpu`` on a machine that has a GPU or cached
SmolVLM/CLIP weights, "not available" checks answer True there, and models run on the GPU with
other numerics. ``pin_machine`` makes every machine look like the CPU-only build machines with
an empty cache: ``torch.cuda.is_available()`` is False (and ``CUDA_VISIBLE_DEVICES`` is empty
for subprocesses), and huggingface_hub and transformers look in an empty cache folder (their
cache paths are read at import, so the module constants are patched as well as the env).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def pin_machine(mp: pytest.MonkeyPatch, hf_root: Path) -> Path:
    hub = Path(hf_root) / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    mp.setenv("CUDA_VISIBLE_DEVICES", "")
    mp.setenv("HF_HOME", str(hf_root))
    mp.setenv("HF_HUB_CACHE", str(hub))
    mp.setenv("HUGGINGFACE_HUB_CACHE", str(hub))
    mp.setenv("HF_HUB_OFFLINE", "1")
    import torch

    mp.setattr(torch.cuda, "is_available", lambda: False)
    mp.setattr(torch.cuda, "device_count", lambda: 0)
    import huggingface_hub.constants as hf_constants

    mp.setattr(hf_constants, "HF_HOME", str(hf_root))
    mp.setattr(hf_constants, "HF_HUB_CACHE", str(hub))
    mp.setattr(hf_constants, "HUGGINGFACE_HUB_CACHE", str(hub), raising=False)
    mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    hub_mod = sys.modules.get("transformers.utils.hub")
    if hub_mod is None:
        import transformers.utils.hub as hub_mod
    for name in ("TRANSFORMERS_CACHE", "HF_HUB_CACHE", "PYTORCH_PRETRAINED_BERT_CACHE", "PYTORCH_TRANSFORMERS_CACHE"):
        if hasattr(hub_mod, name):
            mp.setattr(hub_mod, name, str(hub))
    return hub
