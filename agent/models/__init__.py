"""Model backends for the reasoner: VLMs, text LMs and image-text aligners.

Protocols in :mod:`.base`, the preset-facing spec in :mod:`.spec`, one module per backend
(heavy libraries imported only when a backend is constructed), fakes in :mod:`.fakes`.
"""

from kever.agent.models import torch_utils as _torch_utils  # noqa: F401  (sets OMP_WAIT_POLICY early)
from kever.agent.models.base import VLM, Aligner, TextLM
from kever.agent.models.fakes import FakeAligner, FakePlainTextLM, FakeTextLM, FakeVLM
from kever.agent.models.loaders import (
    ModelStatus,
    load_aligner,
    load_text_lm,
    load_vlm,
    model_status,
    pull,
    weights_available,
)
from kever.agent.models.spec import ModelSpec

__all__ = [
    "VLM", "TextLM", "Aligner", "ModelSpec", "ModelStatus",
    "load_vlm", "load_text_lm", "load_aligner", "weights_available", "pull", "model_status",
    "FakeVLM", "FakeTextLM", "FakePlainTextLM", "FakeAligner",
]
