"""Presets (model sets) and fusion settings, loaded from YAML files in this package.

A preset names one model spec per role (vlm, aligner, text_lm) and a fusion config. Model
ids are configuration: they live in ``presets/*.yaml``, never in code. ``${VAR:-default}``
in a preset file is expanded from the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kever.agent.fusion import KNOWLEDGE_STREAMS, VOTES
from kever.errors import ConfigError

PRESETS_DIR = Path(__file__).parent / "presets"
FUSION_DIR = Path(__file__).parent / "fusion_configs"
#: every stream a fusion config may weigh: the knowledge streams, the streams that come whole
#: from their nodes, and the learned table's votes (agent/fusion.py)
STREAMS = KNOWLEDGE_STREAMS + ("alignment", "deliberation", "direct_vlm", VOTES)
SYSTEMS_FILE = Path(__file__).parent / "systems.yaml"
#: the parts ``--ablate`` can switch off (kever explain, kever eval, the benchmarks)
ABLATIONS = ("kb", "clip", "vlm", "deliberate", "agent")


class FusionConfig(BaseModel):
    """Every constant of the decision (agent/fusion.py), fixed by design (see the comments of
    fusion_configs/*.yaml). What is fitted is the learned association table
    (knowledge/empirical/, knowledge/learn_associations.py), not this config."""

    version: str = "default"
    weights: dict[str, float] = Field(default_factory=dict, description="stream -> weight; a stream not named weighs 1")
    bias: list[float] | None = Field(None, description="per Mikels-8 label, added to the fused logits")
    temperature: float = Field(1.0, gt=0)
    floor: float = Field(0.1, gt=0, lt=1, description="added to an entry's normalised weights before the log")
    shrinkage: float = Field(1.0, gt=0, description="pseudo-strength a stream's mean of item profiles is shrunk by")
    alignment_scale: float = Field(20.0, gt=0, description="logits per unit of centred text-embedding cosine")
    text_weight_cap: float = Field(0.5, ge=0, le=1, description="text in the image: cap on its stream weight and on each OCR cue's confidence")
    deliberate_margin: float = Field(0.05, ge=0, le=1)
    deliberate_rounds: int = Field(1, ge=0, le=3)
    hits_per_cue: int = Field(5, ge=1, le=50)
    evidence_shown: int = Field(12, ge=1, le=100)
    fitted: dict[str, Any] = Field(default_factory=dict, description="what was fitted, on what, with which held-out figures")

    @field_validator("bias")
    @classmethod
    def _eight(cls, v):
        if v is not None and len(v) != 8:
            raise ValueError("needs one value per Mikels-8 label (8)")
        return v

    def weight(self, stream: str) -> float:
        return float(self.weights.get(stream, 1.0))


class AgentConfig(BaseModel):
    """The knowledge agent (the ``consult`` node): a model that reads the cues and calls the
    knowledge-base tools, within these bounds."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: dict[str, Any] | Literal["text_lm", "vlm"] = Field(
        "text_lm", description="the model that calls the tools: the preset's text_lm or vlm (the same instance), or a model spec")
    max_rounds: int = Field(2, ge=1, le=5, description="model replies that may call tools")
    max_calls: int = Field(3, ge=1, le=8, description="tool calls per reply")
    max_new_tokens: int = Field(96, ge=16, le=1024, description="tokens per reply")
    max_total_tokens: int = Field(400, ge=16, description="tokens over all replies of one image, retries included")
    confidence: float = Field(0.6, gt=0, le=1, description="confidence of the concept cues its evidence is filed under")
    max_cues: int = Field(12, ge=1, le=50, description="cues shown to the model (highest confidence first)")
    hits_per_call: int = Field(5, ge=1, le=20, description="hits kept as evidence per call")
    hits_shown: int = Field(3, ge=1, le=10, description="hits written into the text the model reads")


class Preset(BaseModel):
    name: str
    description: str = ""
    vlm: dict[str, Any] | None = None
    aligner: dict[str, Any] | None = None
    text_lm: dict[str, Any] | Literal["vlm"] | None = None
    agent: AgentConfig | None = None
    perception: Literal["real", "fake"] = "real"
    face_second_opinion: Literal["facex"] | None = Field(
        None, description="average the face model with facex (measured on dev: it hurt; see README)")
    embedder: Literal["real", "fake"] = "real"
    fusion: FusionConfig
    source: str = ""


_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _expand(text: str) -> str:
    return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), text)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(_expand(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_fusion(ref: str | dict | None, base_dir: Path = FUSION_DIR) -> FusionConfig:
    if isinstance(ref, dict):
        data = ref
    else:
        name = ref or "default"
        path = Path(name) if name.endswith((".yaml", ".yml")) else base_dir / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in FUSION_DIR.glob("*.yaml")))
            raise ConfigError(f"fusion config '{name}' not found", f"known: {known}, or a path to a .yaml file")
        data = _read_yaml(path)
    unknown = set(data.get("weights", {})) - set(STREAMS)
    if unknown:
        raise ConfigError(f"fusion config: unknown stream(s) {sorted(unknown)}", f"streams are {', '.join(STREAMS)}")
    try:
        return FusionConfig(**data)
    except ValidationError as e:
        raise ConfigError(f"fusion config invalid: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None


def load_preset(name_or_path: str) -> Preset:
    """A preset by name (``offline``, ``cpu``, ``gpu``, ``remote``, ``fake``) or a YAML path."""
    path = Path(name_or_path)
    if not name_or_path.endswith((".yaml", ".yml")):
        path = PRESETS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset '{name_or_path}'", f"choose one of: {', '.join(preset_names() + ['auto'])}, or a .yaml path")
    data = _read_yaml(path)
    data["fusion"] = load_fusion(data.get("fusion"), base_dir=FUSION_DIR)
    data["source"] = str(path)
    try:
        preset = Preset(**data)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    from kever.agent.models.spec import ModelSpec

    for role in ("vlm", "aligner", "text_lm"):  # a typo in a model entry: one line now, not a crash later
        if isinstance(getattr(preset, role), dict):
            ModelSpec.from_config(getattr(preset, role), where=f"{path}: {role}")
    if preset.agent is not None and isinstance(preset.agent.model, dict):
        ModelSpec.from_config(preset.agent.model, where=f"{path}: agent.model")
    return preset


class SystemConfig(BaseModel):
    """Switches that turn the full agent into a baseline or an ablation (systems.yaml)."""

    name: str = "full"
    description: str = ""
    requires: list[str] = Field(default_factory=list)
    use_kb: bool = True
    knowledge_prompts: bool = True
    use_vlm: bool = True
    use_aligner: bool = True
    deliberate: bool = True
    direct_vlm: bool = False
    use_agent: bool = True
    only_streams: list[str] | None = None

    def ablate(self, parts) -> "SystemConfig":
        parts = set(parts or ())
        unknown = parts - set(ABLATIONS)
        if unknown:
            raise ConfigError(f"unknown ablation(s) {sorted(unknown)}", f"choose from {', '.join(ABLATIONS)}")
        upd = {}
        if "kb" in parts:
            upd.update(use_kb=False, knowledge_prompts=False)
        if "clip" in parts:
            upd["use_aligner"] = False
        if "vlm" in parts:
            upd["use_vlm"] = False
        if "deliberate" in parts:
            upd["deliberate"] = False
        if "agent" in parts:
            upd["use_agent"] = False
        name = self.name + "".join(f"-no-{p}" for p in sorted(parts))
        return self.model_copy(update={**upd, "name": name})


def load_system(name: str = "full", ablate=()) -> SystemConfig:
    table = yaml.safe_load(SYSTEMS_FILE.read_text(encoding="utf-8"))
    if name not in table:
        raise ConfigError(f"unknown system '{name}'", f"choose one of: {', '.join(table)} (or 'majority' in kever eval)")
    return SystemConfig(name=name, **(table[name] or {})).ablate(ablate)
