"""Small shared helpers for the transformers backends (torch imported lazily)."""

from __future__ import annotations

import os
from typing import Any

from kever.errors import ConfigError

# torch's OpenMP threads spin while waiting by default: on a shared or oversubscribed CPU
# that made SmolLM2 decoding ~6x slower at 2 threads (1.1 vs 6.5 tokens/s at load 10 on 2
# cores; benchmarks/models_bench.py). Only effective when set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def torch_dtype(name: str | None) -> Any:
    """``"float32"|"bfloat16"|"float16"|"auto"|None`` -> a torch dtype or ``"auto"``.
    None means float32 on CPU-only machines and ``"auto"`` (the checkpoint's) with CUDA."""
    import torch

    if name is None:
        return "auto" if torch.cuda.is_available() else torch.float32
    if name == "auto":
        return "auto"
    if name not in _DTYPES:
        raise ConfigError(f"unknown dtype '{name}'", f"use one of {sorted(set(_DTYPES.values()))} or auto")
    return getattr(torch, _DTYPES[name])


def set_threads() -> int:
    """Use the cores this process may run on (affinity-aware), capped by KEVER_TORCH_THREADS.
    torch's default counts every core of the host, which oversubscribes shared machines."""
    import torch

    env = os.environ.get("KEVER_TORCH_THREADS")
    try:
        n = int(env) if env else len(os.sched_getaffinity(0))
    except (AttributeError, ValueError):
        n = os.cpu_count() or 1
    n = max(1, n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def quantization_config(kind: str | None, compute_dtype: Any = None):
    if kind is None:
        return None
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as e:
        from kever.errors import missing_package

        raise missing_package("bitsandbytes", "gpu") from e
    import torch

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute_dtype if compute_dtype not in (None, "auto") else torch.float32,
    )


def model_device(model) -> Any:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        import torch

        return torch.device("cpu")


#: ``ModelSpec.options`` keys passed through to ``generate`` (e.g. ``repetition_penalty: 1.3``
#: keeps a small greedy model out of loops).
GENERATION_OPTIONS = ("repetition_penalty", "no_repeat_ngram_size")


def generation_kwargs(max_new_tokens: int, temperature: float, pad_token_id: int | None, options: dict | None = None) -> dict:
    kw: dict[str, Any] = {"max_new_tokens": int(max_new_tokens)}
    kw.update({k: v for k, v in (options or {}).items() if k in GENERATION_OPTIONS})
    if temperature and temperature > 0:
        kw.update(do_sample=True, temperature=float(temperature))
    else:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if pad_token_id is not None:
        kw["pad_token_id"] = pad_token_id
    return kw


def from_pretrained_kwargs(spec) -> dict:
    """dtype, bitsandbytes quantization and accelerate device_map for ``from_pretrained``,
    from a ModelSpec (plus its ``options.from_pretrained`` overrides)."""
    dtype = torch_dtype(spec.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    q = quantization_config(spec.quantization, dtype)
    if q is not None:
        kwargs["quantization_config"] = q
    if spec.device_map:
        kwargs["device_map"] = spec.device_map
    kwargs.update(spec.options.get("from_pretrained", {}))
    return kwargs


def load_failed(what: str, source: str, error: OSError):
    """The one-line ModelUnavailable for weights that ``from_pretrained`` could not load."""
    from kever.errors import ModelUnavailable

    return ModelUnavailable(
        f"cannot load {what} '{source}': {str(error).splitlines()[0]}",
        "run `kever models pull` with network, or pick the offline preset",
    )
