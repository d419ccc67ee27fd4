"""open_clip (CLIP, and SigLIP through open_clip names or ``hf-hub:``) as an Aligner.

``spec.model`` is the architecture (``"ViT-B-32"``, ``"ViT-B-16-SigLIP"``,
``"hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"``); ``spec.pretrained`` a tag (downloads),
``hf-hub:...``, a local checkpoint file, or None for random weights (tests).
Options: ``config_file`` (an extra open_clip model-config JSON, or a folder of them,
registered with ``open_clip.add_model_config``), ``device`` (default: cuda if available),
``batch_size`` (32).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kever.agent.models.spec import ModelSpec, require
from kever.agent.models.torch_utils import set_threads
from kever.errors import ModelUnavailable

log = logging.getLogger(__name__)


class OpenClipAligner:
    def __init__(self, spec: ModelSpec):
        try:
            import open_clip
            import torch
        except ImportError as e:
            from kever.errors import missing_package

            raise missing_package("open_clip_torch", "clip") from e
        require(spec, "model")
        self.spec = spec
        self.model_id = spec.label()
        self.threads = set_threads()
        cfg = spec.options.get("config_file")
        if cfg:
            open_clip.add_model_config(Path(cfg))
        self.device = spec.options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = int(spec.options.get("batch_size", 32))
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.model, pretrained=spec.pretrained, device=self.device
            )
            self.tokenizer = open_clip.get_tokenizer(spec.model)
        except RuntimeError as e:  # unknown arch / pretrained tag
            raise ModelUnavailable(f"open_clip cannot build '{spec.model}' / '{spec.pretrained}': {e}",
                                   "check the architecture and pretrained names") from e
        except Exception as e:  # network failures from hf_hub / urllib when weights are absent
            raise ModelUnavailable(
                f"open_clip weights for '{spec.model}' ({spec.pretrained}) are not available here: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                "run `kever models pull` with network, or use a local checkpoint file",
            ) from e
        if spec.pretrained is None:
            log.warning("open_clip %s with random weights (pretrained=None): for tests only", spec.model)
        self.model = model.eval()
        self.preprocess = preprocess
        self.dim = int(getattr(model.visual, "output_dim", 0) or 0)
        self.logit_scale = float(model.logit_scale.exp().item())
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = float(bias.item()) if bias is not None else 0.0

    def encode_images(self, images: list) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                batch = torch.stack([self.preprocess(im.convert("RGB")) for im in images[i : i + self.batch_size]])
                f = self.model.encode_image(batch.to(self.device), normalize=True)
                chunks.append(f.float().cpu().numpy())
        return _stack(chunks, self.dim)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                tok = self.tokenizer(list(texts[i : i + self.batch_size])).to(self.device)
                f = self.model.encode_text(tok, normalize=True)
                chunks.append(f.float().cpu().numpy())
        return _stack(chunks, self.dim)


def _stack(chunks: list[np.ndarray], dim: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, dim), np.float32)
    x = np.concatenate(chunks).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
