"""Colour and light: brightness, saturation, colourfulness, warmth, contrast, named colours.

Pure pixel statistics (numpy + OpenCV), no model; ranges are documented in ``schema.py``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from kever.tools.perception.schema import NamedColour

PALETTE_FILE = Path(__file__).parent / "colours.yaml"
MODEL_ID = "kever-colour/1 (pixel statistics; Hasler-Suesstrunk colourfulness; named colours in CIE Lab)"
#: Pixels are measured on a copy at most this many pixels on its longer side.
STATS_SIDE = 256
#: colorfulness = M / COLOURFULNESS_SCALE, clipped (M >= 109 is "extremely colourful").
COLOURFULNESS_SCALE = 150.0
#: warmth = (warm - cool) / max(warm + cool, WARMTH_FLOOR * pixels), where warm/cool sum the
#: saturation x value of warm-hued (red..yellow) and cool-hued (cyan..blue) pixels.
WARMTH_FLOOR = 0.25


@lru_cache(maxsize=1)
def palette() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, rgb uint8 [n,3], Lab float [n,3]) from colours.yaml."""
    import cv2

    data = yaml.safe_load(PALETTE_FILE.read_text(encoding="utf-8"))
    names = list(data)
    rgb = np.array([data[n] for n in names], dtype=np.uint8)
    lab = cv2.cvtColor(rgb.reshape(1, -1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    return names, rgb, lab


def _small(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = STATS_SIDE / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def measure(rgb: np.ndarray, *, top: int = 5, min_share: float = 0.03) -> dict:
    """Colour and light statistics of an RGB uint8 array [h, w, 3]; keys as in ``Perception``."""
    import cv2

    small = _small(np.ascontiguousarray(rgb))
    f = small.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    luma = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hue = hsv[..., 0] * (360.0 / 256.0)
    sat = hsv[..., 1] / 255.0
    val = hsv[..., 2] / 255.0

    # Hasler & Suesstrunk (2003): opponent channels rg = R - G, yb = (R + G)/2 - B.
    rg = r - g
    yb = 0.5 * (r + g) - b
    m = float(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))

    # Warm (red..yellow, and magenta-red) vs cool (cyan..blue) hue mass, weighted by colour strength.
    weight = sat * val
    warm = ((hue < 70) | (hue >= 330)) * weight
    cool = ((hue >= 160) & (hue < 260)) * weight
    w_sum, c_sum = float(warm.sum()), float(cool.sum())
    floor = WARMTH_FLOOR * weight.size  # little saturated colour -> warmth near 0
    warmth = (w_sum - c_sum) / max(w_sum + c_sum, floor)

    return {
        "brightness": round(float(luma.mean()), 4),
        "saturation": round(float(sat.mean()), 4),
        "colorfulness": round(min(1.0, m / COLOURFULNESS_SCALE), 4),
        "colorfulness_raw": round(m, 2),
        "warmth": round(float(np.clip(warmth, -1.0, 1.0)), 4),
        "contrast": round(float(np.clip(luma.std(), 0.0, 1.0)), 4),
        "colours": dominant_colours(small, top=top, min_share=min_share),
    }


def dominant_colours(rgb: np.ndarray, *, top: int = 5, min_share: float = 0.03) -> list[NamedColour]:
    """The named colours covering the most pixels (nearest palette entry in Lab), largest first."""
    import cv2

    names, pal_rgb, pal_lab = palette()
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    d = ((lab[:, None, :] - pal_lab[None, :, :]) ** 2).sum(-1)
    counts = np.bincount(d.argmin(1), minlength=len(names)) / max(1, lab.shape[0])
    order = np.argsort(-counts)[:top]
    return [
        NamedColour(name=names[i], share=round(float(counts[i]), 4), rgb=tuple(int(v) for v in pal_rgb[i]))
        for i in order
        if counts[i] >= min_share
    ]
