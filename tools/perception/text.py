"""Text in the image: rapidocr-onnxruntime (PP-OCRv4 detection + recognition, ONNX).

Made cheap: detection runs on a copy at most ``DET_SIDE`` pixels on its longer side, the
angle classifier is off (photos rarely hold upside-down text), and recognition only runs on
the boxes detection found (none found -> nothing more is run).
"""

from __future__ import annotations

import logging

import numpy as np

from kever.errors import missing_package
from kever.versions import package_version
from kever.tools.perception.schema import TextSpan

DET_SIDE = 640
MIN_SCORE = 0.5
MAX_SPANS = 20
#: Images thinner than this hold no legible text (and rapidocr would pad them to a huge canvas).
MIN_SIDE = 16


class TextReader:
    def __init__(self, threads: int | None = None):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise missing_package("rapidocr-onnxruntime") from None
        kwargs = {"det_limit_side_len": DET_SIDE, "det_limit_type": "max", "text_score": MIN_SCORE}
        if threads:
            kwargs["intra_op_num_threads"] = threads
        self._ocr = RapidOCR(**kwargs)
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        version = package_version("rapidocr-onnxruntime")
        self.model_id = f"rapidocr-onnxruntime-{version} PP-OCRv4 det+rec (ch/en), no angle classifier"

    def __call__(self, rgb: np.ndarray, scale: float = 1.0) -> list[TextSpan]:
        if min(rgb.shape[:2]) < MIN_SIDE:
            return []
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        result, _ = self._ocr(bgr, use_cls=False)
        spans = []
        for box, text, score in result or []:
            text = str(text).strip()
            if not text or float(score) < MIN_SCORE:
                continue
            pts = np.asarray(box, dtype=np.float64)
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            spans.append(
                TextSpan(
                    text=text,
                    score=round(min(1.0, float(score)), 4),
                    box=tuple(int(round(v * scale)) for v in (x0, y0, x1 - x0, y1 - y0)),
                )
            )
        return spans[:MAX_SPANS]
