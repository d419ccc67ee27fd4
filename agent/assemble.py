"""Build the reasoner's components from a preset: every model loaded exactly once, here.

``auto`` picks the best preset whose weights are present (gpu on a CUDA machine, then cpu),
else ``offline``, and says why. ``remote`` is never chosen automatically: it needs a server
the user names. ``offline-llm`` is never chosen automatically either (its local LLM costs tens
of seconds per image on a small CPU); where its model file is present and verifies, the
reason says it can be asked for.
"""

from __future__ import annotations

import logging

from kever.agent.config import Preset, SystemConfig, load_preset
from kever.agent.nodes import Components
from kever.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)


class LazyTextLM:
    """Loads the text LM on first use, so runs without rationales never pay for it.
    If it cannot be loaded, generate() raises ModelUnavailable and rationales are templated."""

    def __init__(self, model_id: str, load):
        self.model_id = model_id
        self._load = load
        self._model = None
        self._error: ModelUnavailable | None = None

    def generate(self, messages, **kw) -> str:
        if self._model is None:
            if self._error is not None:
                raise self._error
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no "Loading weights" bar in the middle of a judgment
                self._model = self._load()
            except ModelUnavailable as e:
                self._error = e
                raise
            self.model_id = getattr(self._model, "model_id", self.model_id)
        return self._model.generate(messages, **kw)


def _spec(data: dict, where: str = "preset"):
    from kever.agent.models import ModelSpec

    return ModelSpec.from_config(data, where)


def choose_auto() -> tuple[Preset, str]:
    """(preset, reason)."""
    from kever.agent.models import weights_available

    reasons = []
    candidates = []
    try:
        import torch

        if torch.cuda.is_available():
            candidates.append("gpu")
        else:
            reasons.append("gpu: no CUDA device")
    except Exception:  # torch import problems must not break auto
        reasons.append("gpu: torch unavailable")
    candidates.append("cpu")
    for name in candidates:
        preset = load_preset(name)
        missing = [role for role in ("vlm", "aligner") if getattr(preset, role) and not weights_available(_spec(getattr(preset, role)))]
        if not missing:
            return preset, f"auto: chose '{name}' (weights present)"
        reasons.append(f"{name}: weights for {', '.join(missing)} not present (run `kever models pull --preset {name}` with network)")
    reason = "auto: chose 'offline' because " + "; ".join(reasons)
    llm = load_preset("offline-llm")
    if isinstance(llm.text_lm, dict) and weights_available(_spec(llm.text_lm)):
        reason += "; offline-llm's local LLM is present but slow, so not chosen (ask for it with --preset offline-llm)"
    return load_preset("offline"), reason


def resolve_preset(name: str) -> tuple[Preset, str | None]:
    if name == "auto":
        return choose_auto()
    return load_preset(name), None


def load_components(preset: Preset, system: SystemConfig) -> Components:
    missing = [r for r in system.requires if getattr(preset, r) is None]
    if missing:
        raise ConfigError(
            f"system '{system.name}' needs {' and '.join('an ' + m if m[0] in 'aeiou' else 'a ' + m for m in missing)}, which preset '{preset.name}' does not have",
            "use a preset with one (cpu, gpu, remote)",
        )
    from kever.agent.models import load_aligner, load_text_lm, load_vlm

    use_agent = preset.agent is not None and system.use_agent
    eager_lm = None
    if use_agent and preset.agent.model == "text_lm" and isinstance(preset.text_lm, dict):
        # the agent runs on every image: load its model now, once, for both roles, and
        # before anything slow, so a missing model file fails at once
        eager_lm = load_text_lm(_spec(preset.text_lm))
    if preset.embedder == "fake":
        from kever.tools.kb.embedder import FakeEmbedder

        embedder = FakeEmbedder()
    else:
        from kever.tools.kb.embedder import MiniLMEmbedder

        embedder = MiniLMEmbedder()
    if preset.perception == "fake":
        from kever.tools.perception import FakePerceiver

        perceiver = FakePerceiver()
    else:
        from kever.tools.perception import Perceiver

        perceiver = Perceiver.load(face_second_opinion=preset.face_second_opinion)
    associations = None
    if preset.fusion.weight("votes") > 0 and preset.perception != "fake":
        from kever.knowledge.empirical import load_associations

        associations = load_associations()
    from kever.tools.kb import KnowledgeBase

    kb = KnowledgeBase.open(embedder=embedder)
    vlm = load_vlm(_spec(preset.vlm)) if preset.vlm and system.use_vlm else None
    aligner = load_aligner(_spec(preset.aligner)) if preset.aligner and system.use_aligner else None
    text_lm = eager_lm
    if preset.text_lm == "vlm":
        text_lm = vlm
    elif isinstance(preset.text_lm, dict) and text_lm is None:
        spec = _spec(preset.text_lm)
        text_lm = LazyTextLM(spec.model or spec.backend, lambda: load_text_lm(spec))
    agent = None
    if use_agent:
        from kever.agent.consult import ToolAgent

        model = agent_model(preset, vlm, text_lm)
        if model is not None:
            agent = ToolAgent(model, kb, preset.agent)
    return Components(
        preset=preset, system=system, fusion=preset.fusion, perceiver=perceiver, kb=kb,
        embedder=embedder, vlm=vlm, aligner=aligner, text_lm=text_lm, agent=agent, associations=associations,
    )


def agent_model(preset: Preset, vlm, text_lm):
    """The model the preset's agent runs on (the text LM or VLM instance, or its own spec)."""
    from kever.agent.models import load_text_lm

    ref = preset.agent.model
    if ref == "vlm":
        return vlm
    if ref == "text_lm":
        if text_lm is None:
            raise ConfigError(f"preset '{preset.name}': agent.model is text_lm but the preset has no text_lm",
                              "set text_lm, or give agent.model a model spec")
        return text_lm
    return load_text_lm(_spec(ref))
