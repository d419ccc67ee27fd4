"""Build models from specs, say whether their weights are here, and fetch them.

- ``load_vlm(spec)``, ``load_text_lm(spec)``, ``load_aligner(spec)``: construct once, pass in.
- ``weights_available(spec)``: are the weights on this machine (HF cache, local dir, pip
  package)? Never touches the network, except that for an ``openai`` spec it asks the
  configured server (1 s timeout) whether it answers. The ``auto`` preset uses it.
- ``pull(spec)``: download the weights (for users with network); a clear
  :class:`~kever.errors.ModelUnavailable` offline.
- ``model_status(spec)``: one row for ``kever models list``.

Each backend is one :class:`Backend` entry in :data:`BACKENDS` (the built-in ones at the end of
this file): the roles it can serve, and how to tell whether its weights are here, fetch them and
say where they are. A new backend is one file that calls :func:`register_backend`.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from kever.agent.models.base import VLM, Aligner, TextLM
from kever.agent.models.spec import ModelSpec, local_dir, require
from kever.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)

HF_CONFIG = "config.json"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


# --------------------------------------------------------------------------- the registry
Loader = Callable[[ModelSpec], Any]


@dataclass(frozen=True)
class Backend:
    """What one backend can do. Each role it serves is a loader, ``spec -> model`` (or
    ``"module:attr"``, imported only when the role is loaded); ``present(spec)`` says whether
    loading would need no download, ``pull(spec, progress)`` fetches the weights (returns where
    they are), ``where(spec)`` says where they are (no network)."""

    name: str
    vlm: Loader | str | None = None
    text_lm: Loader | str | None = None
    aligner: Loader | str | None = None
    present: Callable[[ModelSpec], bool] = lambda spec: False
    pull: Callable[..., str] | None = None
    where: Callable[[ModelSpec], str | None] = lambda spec: None


#: backend name -> Backend; a new backend is one file that calls :func:`register_backend`
BACKENDS: dict[str, Backend] = {}
ROLES = {"vlm": "a VLM", "text_lm": "a text LM", "aligner": "an aligner"}


def register_backend(backend: Backend) -> Backend:
    BACKENDS[backend.name] = backend
    return backend


def backend_of(spec: ModelSpec) -> Backend:
    try:
        return BACKENDS[spec.backend]
    except KeyError:
        raise ConfigError(f"unknown backend '{spec.backend}'", f"known: {', '.join(BACKENDS)}") from None


def _load(role: str, spec: ModelSpec):
    loader = getattr(backend_of(spec), role)
    if loader is None:
        able = [b.name for b in BACKENDS.values() if getattr(b, role) is not None]
        raise ConfigError(f"backend '{spec.backend}' cannot serve as {ROLES[role]}", f"use {', '.join(able)}")
    if isinstance(loader, str):
        module, _, attr = loader.partition(":")
        loader = getattr(importlib.import_module(module), attr)
    return loader(spec)


def load_vlm(spec: ModelSpec) -> VLM:
    return _load("vlm", spec)


def load_text_lm(spec: ModelSpec) -> TextLM:
    return _load("text_lm", spec)


def load_aligner(spec: ModelSpec) -> Aligner:
    return _load("aligner", spec)


def _hf_text_lm(spec: ModelSpec) -> TextLM:
    if spec.backend == "transformers-gguf" or spec.gguf_file:
        require(spec, "gguf_file")
    from kever.agent.models.hf_textlm import HFTextLM

    return HFTextLM(spec)


def _fake_vlm(spec: ModelSpec):
    from kever.agent.models.fakes import FakeVLM

    return FakeVLM(spec.options.get("responses", ()), default=spec.options.get("default", ""), model_id=spec.model or "fake-vlm")


def _fake_text_lm(spec: ModelSpec):
    from kever.agent.models.fakes import FakeTextLM

    return FakeTextLM(spec.options.get("responses", ()), default=spec.options.get("default", ""),
                      model_id=spec.model or "fake-textlm")


def _fake_aligner(spec: ModelSpec):
    from kever.agent.models.fakes import FakeAligner

    return FakeAligner(dim=int(spec.options.get("dim", 64)), model_id=spec.model or "fake-aligner")


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
        return bool(backend_of(spec).present(spec))
    except (ModelUnavailable, ConfigError):
        return False


def _gguf_file_present(spec: ModelSpec) -> bool:
    from kever.agent.models.hf_textlm import gguf_source

    return gguf_source(spec).is_file()


def _transformers_present(spec: ModelSpec) -> bool:
    if spec.gguf_file:
        return _gguf_file_present(spec)
    folder = local_dir(spec)
    if folder is not None:
        return (folder / HF_CONFIG).is_file()
    return bool(spec.model) and _hf_cached(spec.model, HF_CONFIG) is not None


def _open_clip_present(spec: ModelSpec) -> bool:
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
    backend = backend_of(spec)
    if backend.pull is None:
        raise ConfigError(f"backend '{spec.backend}' has nothing to pull")
    return backend.pull(spec, progress)


def _pull_openai(spec: ModelSpec, progress=None) -> str:
    if not server_reachable(spec, timeout_s=5.0):
        raise ModelUnavailable(f"model server {spec.base_url} does not answer", "start it or fix base_url")
    return spec.base_url or ""


def _pull_llamacpp(spec: ModelSpec, progress=None) -> str:
    from kever.agent.models.gguf_parts import pull_model

    entry = _registry_entry(spec)
    if entry is None:
        if not Path(spec.model).expanduser().is_file():
            raise ModelUnavailable(f"GGUF file not found: {spec.model}", "fix 'model' in the preset")
        return spec.model
    return str(pull_model(entry, progress=progress))


def _pull_gguf(spec: ModelSpec, progress=None) -> str:
    from kever.agent.models.hf_textlm import dequantise

    return str(dequantise(spec))


def _pull_transformers(spec: ModelSpec, progress=None) -> str:
    if spec.gguf_file:
        return _pull_gguf(spec, progress)
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


def _pull_open_clip(spec: ModelSpec, progress=None) -> str:
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
        return backend_of(spec).where(spec)
    except (ModelUnavailable, ConfigError):
        return None


def _where_llamacpp(spec: ModelSpec) -> str | None:
    entry = _registry_entry(spec)
    return str(entry.path()) if entry is not None else spec.model


def _where_gguf(spec: ModelSpec) -> str | None:
    from kever.agent.models.hf_textlm import dequantised_dir, gguf_source, is_dequantised

    return str(dequantised_dir(spec) if is_dequantised(spec) else gguf_source(spec))


def _where_transformers(spec: ModelSpec) -> str | None:
    if spec.gguf_file:
        return _where_gguf(spec)
    folder = local_dir(spec)
    if folder is not None:
        return str(folder)
    found = _hf_cached(spec.model, HF_CONFIG) if spec.model else None
    return str(Path(found).parent) if found else None


def _where_open_clip(spec: ModelSpec) -> str | None:
    folder = local_dir(spec)
    if folder is not None:
        return str(folder)
    return spec.pretrained if spec.pretrained and Path(spec.pretrained).expanduser().is_file() else None


def model_status(role: str, spec: ModelSpec) -> ModelStatus:
    return ModelStatus(role=role, backend=spec.backend, id=spec.label(),
                       available=weights_available(spec), location=where(spec))


# --------------------------------------------------------------------------- the built-in backends
register_backend(Backend("transformers", vlm="kever.agent.models.hf_vlm:HFVLM", text_lm=_hf_text_lm,
                         present=_transformers_present, pull=_pull_transformers, where=_where_transformers))
register_backend(Backend("transformers-gguf", text_lm=_hf_text_lm, present=_gguf_file_present, pull=_pull_gguf,
                         where=_where_gguf))
register_backend(Backend("llamacpp", text_lm="kever.agent.models.llamacpp:LlamaCppLM", present=_gguf_present,
                         pull=_pull_llamacpp, where=_where_llamacpp))
register_backend(Backend("openai", vlm="kever.agent.models.openai_vlm:OpenAIVLM", text_lm="kever.agent.models.openai_vlm:OpenAIVLM",
                         present=server_reachable, pull=_pull_openai, where=lambda spec: spec.base_url))
register_backend(Backend("open_clip", aligner="kever.agent.models.open_clip_aligner:OpenClipAligner",
                         present=_open_clip_present, pull=_pull_open_clip, where=_where_open_clip))
register_backend(Backend("fake", vlm=_fake_vlm, text_lm=_fake_text_lm, aligner=_fake_aligner,
                         present=lambda spec: True, pull=lambda spec, progress=None: "fake"))
