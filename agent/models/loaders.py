"""Build models from specs, say whether their weights are here, and fetch them.

- ``load_vlm(spec)``, ``load_text_lm(spec)``, ``load_aligner(spec)``: construct once, pass in.
- ``weights_available(spec)``: are the weights on this machine (HF cache, local dir, pip
  package)? Never touches the network, except that for an ``openai`` spec it asks the
  configured server (1 s timeout) whether it answers. The ``auto`` preset uses it.
- ``pull(spec)``: download the weights (for users with network); a clear
  :class:`~kever.errors.ModelUnavailable` offline.
- ``model_status(spec)``: one row for ``kever models list``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import BaseModel

from kever.agent.models.base import VLM, Aligner, TextLM
from kever.agent.models.spec import ModelSpec, local_dir, require
from kever.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)

HF_CONFIG = "config.json"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


# --------------------------------------------------------------------------- loading
def load_vlm(spec: ModelSpec) -> VLM:
    if spec.backend == "transformers":
        from kever.agent.models.hf_vlm import HFVLM

        return HFVLM(spec)
    if spec.backend == "openai":
        from kever.agent.models.openai_vlm import OpenAIVLM

        return OpenAIVLM(spec)
    if spec.backend == "fake":
        from kever.agent.models.fakes import FakeVLM

        return FakeVLM(spec.options.get("responses", ()), default=spec.options.get("default", ""),
                       model_id=spec.model or "fake-vlm")
    raise ConfigError(f"backend '{spec.backend}' cannot serve as a VLM", "use transformers, openai or fake")


def load_text_lm(spec: ModelSpec) -> TextLM:
    if spec.backend in ("transformers", "transformers-gguf"):
        if spec.backend == "transformers-gguf" or spec.gguf_file:
            require(spec, "gguf_file")
        from kever.agent.models.hf_textlm import HFTextLM

        return HFTextLM(spec)
    if spec.backend == "llamacpp":
        from kever.agent.models.llamacpp import LlamaCppLM

        return LlamaCppLM(spec)
    if spec.backend == "openai":
        from kever.agent.models.openai_vlm import OpenAIVLM

        return OpenAIVLM(spec)
    if spec.backend == "fake":
        from kever.agent.models.fakes import FakeTextLM

        return FakeTextLM(spec.options.get("responses", ()), default=spec.options.get("default", ""),
                          model_id=spec.model or "fake-textlm")
    raise ConfigError(f"backend '{spec.backend}' cannot serve as a text LM",
                      "use transformers, transformers-gguf, llamacpp, openai or fake")


def load_aligner(spec: ModelSpec) -> Aligner:
    if spec.backend == "open_clip":
        from kever.agent.models.open_clip_aligner import OpenClipAligner

        return OpenClipAligner(spec)
    if spec.backend == "fake":
        from kever.agent.models.fakes import FakeAligner

        return FakeAligner(dim=int(spec.options.get("dim", 64)), model_id=spec.model or "fake-aligner")
    raise ConfigError(f"backend '{spec.backend}' cannot serve as an aligner", "use open_clip or fake")


# --------------------------------------------------------------------------- presence
def _hf_cached(repo_id: str, filename: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # noqa: BLE001 - malformed ids are simply "not cached"
        return None
    return found if isinstance(found, str) else None


def _open_clip_hub_file(spec: ModelSpec) -> tuple[str, str] | None:
    """(repo_id, filename) where the spec's open_clip weights live on the HF hub, if known."""
    name, tag = spec.model or "", spec.pretrained
    if tag and tag.startswith("hf-hub:"):
        return tag[len("hf-hub:"):], ""
    if name.startswith("hf-hub:"):
        return name[len("hf-hub:"):], ""
    if tag:
        try:
            import open_clip

            cfg = open_clip.get_pretrained_cfg(name, tag)
        except Exception:  # noqa: BLE001
            return None
        hf = (cfg or {}).get("hf_hub", "")
        if hf:
            if hf.endswith("/"):
                return hf.rstrip("/"), ""
            return os.path.split(hf)
    return None


def weights_available(spec: ModelSpec) -> bool:
    """True when loading ``spec`` would need no download."""
    try:
        if spec.backend == "fake":
            return True
        if spec.backend == "openai":
            return server_reachable(spec)
        if spec.backend == "llamacpp":
            return _gguf_present(spec)
        if spec.backend == "transformers-gguf" or (spec.backend == "transformers" and spec.gguf_file):
            from kever.agent.models.hf_textlm import gguf_source

            return gguf_source(spec).is_file()
        if spec.backend == "transformers":
            folder = local_dir(spec)
            if folder is not None:
                return (folder / HF_CONFIG).is_file()
            return bool(spec.model) and _hf_cached(spec.model, HF_CONFIG) is not None
        if spec.backend == "open_clip":
            if spec.pretrained is None:
                return not (spec.model or "").startswith("hf-hub:")  # random init (tests)
            if Path(spec.pretrained).expanduser().is_file():
                return True
            hub = _open_clip_hub_file(spec)
            if hub is None:
                return False
            repo, filename = hub
            names = [filename] if filename else list(OPEN_CLIP_WEIGHTS)
            if filename.endswith((".bin", ".pth")):
                names.insert(0, filename[:-4] + ".safetensors")
            return any(_hf_cached(repo, n) for n in names)
    except (ModelUnavailable, ConfigError):
        return False
    return False


def _registry_entry(spec: ModelSpec):
    """The gguf_models.yaml entry a llamacpp spec names, or None for a plain file path."""
    from kever.agent.models.gguf_parts import lookup

    require(spec, "model")
    if spec.model.endswith(".gguf") or "/" in spec.model:
        return None
    return lookup(spec.model)


def _gguf_present(spec: ModelSpec) -> bool:
    """The file is there and verifies (by its stamp, else by hashing it)."""
    from kever.agent.models.gguf_parts import is_present

    entry = _registry_entry(spec)
    if entry is None:
        return Path(spec.model).expanduser().is_file()
    return is_present(entry)


def server_reachable(spec: ModelSpec, timeout_s: float = 1.0) -> bool:
    if not spec.base_url:
        return False
    import httpx

    headers = {}
    if spec.api_key_env and os.environ.get(spec.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[spec.api_key_env]}"
    try:
        r = httpx.get(spec.base_url.rstrip("/") + "/models", timeout=timeout_s, headers=headers)
    except httpx.HTTPError:
        return False
    return r.status_code < 500


# --------------------------------------------------------------------------- pulling
def _offline(spec: ModelSpec, e: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        f"cannot download {spec.label()}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
        "this needs network access to huggingface.co; the offline preset needs no download",
    )


def pull(spec: ModelSpec, progress=None) -> str:
    """Fetch the spec's weights; return where they are (a folder, file or URL).
    ``progress(message)`` hears about long pulls (the GGUF parts)."""
    if spec.backend == "fake":
        return "fake"
    if spec.backend == "openai":
        if not server_reachable(spec, timeout_s=5.0):
            raise ModelUnavailable(f"model server {spec.base_url} does not answer", "start it or fix base_url")
        return spec.base_url or ""
    if spec.backend == "llamacpp":
        from kever.agent.models.gguf_parts import pull_model

        entry = _registry_entry(spec)
        if entry is None:
            if not Path(spec.model).expanduser().is_file():
                raise ModelUnavailable(f"GGUF file not found: {spec.model}", "fix 'model' in the preset")
            return spec.model
        return str(pull_model(entry, progress=progress))
    if spec.backend == "transformers-gguf" or spec.gguf_file:
        from kever.agent.models.hf_textlm import dequantise

        return str(dequantise(spec))
    if spec.backend == "transformers":
        folder = local_dir(spec)
        if folder is not None:
            if not (folder / HF_CONFIG).is_file():
                raise ModelUnavailable(f"{folder} holds no {HF_CONFIG}", "point 'model' at a saved model folder")
            return str(folder)
        require(spec, "model")
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(spec.model)
        except Exception as e:  # noqa: BLE001 - hub errors come in many types
            raise _offline(spec, e) from e
    if spec.backend == "open_clip":
        if spec.pretrained is None and not (spec.model or "").startswith("hf-hub:"):
            return "random-init"
        if spec.pretrained and Path(spec.pretrained).expanduser().is_file():
            return spec.pretrained
        hub = _open_clip_hub_file(spec)
        try:
            if hub is not None:
                from huggingface_hub import snapshot_download

                return snapshot_download(hub[0])
            import open_clip

            cfg = open_clip.get_pretrained_cfg(spec.model, spec.pretrained)
            if not cfg:
                raise ModelUnavailable(f"open_clip knows no pretrained '{spec.pretrained}' for {spec.model}",
                                       "see open_clip.list_pretrained()")
            return open_clip.download_pretrained(cfg)
        except ModelUnavailable:
            raise
        except Exception as e:  # noqa: BLE001
            raise _offline(spec, e) from e
    raise ConfigError(f"unknown backend '{spec.backend}'")


# --------------------------------------------------------------------------- listing
class ModelStatus(BaseModel):
    role: str
    backend: str
    id: str
    available: bool
    location: str | None = None


def where(spec: ModelSpec) -> str | None:
    """Where the weights are (or would be), without network."""
    try:
        if spec.backend == "openai":
            return spec.base_url
        if spec.backend == "llamacpp":
            entry = _registry_entry(spec)
            return str(entry.path()) if entry is not None else spec.model
        if spec.backend == "transformers-gguf" or spec.gguf_file:
            from kever.agent.models.hf_textlm import dequantised_dir, gguf_source, is_dequantised

            return str(dequantised_dir(spec) if is_dequantised(spec) else gguf_source(spec))
        folder = local_dir(spec)
        if folder is not None:
            return str(folder)
        if spec.backend == "transformers" and spec.model:
            found = _hf_cached(spec.model, HF_CONFIG)
            return str(Path(found).parent) if found else None
        if spec.backend == "open_clip" and spec.pretrained and Path(spec.pretrained).expanduser().is_file():
            return spec.pretrained
    except (ModelUnavailable, ConfigError):
        return None
    return None


def model_status(role: str, spec: ModelSpec) -> ModelStatus:
    return ModelStatus(role=role, backend=spec.backend, id=spec.label(),
                       available=weights_available(spec), location=where(spec))
