"""Turn whatever a user hands kever (a path, bytes, a PIL image) into a clean RGB image.

Every failure is an :class:`~kever.errors.InputError` with one line saying what was wrong.
Handled: missing paths, directories, empty, truncated and non-image files, decompression
bombs (more than ``MAX_PIXELS`` pixels, override with ``KEVER_MAX_PIXELS``), CMYK, 16-bit,
palette, RGBA/LA (composited on white), greyscale, animated images (first frame), EXIF
orientation (applied).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kever.errors import InputError

#: Refuse images above this many pixels (default 64 megapixels, e.g. 8000 x 8000).
MAX_PIXELS = 64_000_000
#: Images are downscaled so their longer side is at most this for all processing.
WORKING_SIDE = 1024

ImageInput = Union[str, os.PathLike, bytes, Image.Image, "LoadedImage"]


def max_pixels() -> int:
    try:
        return int(os.environ.get("KEVER_MAX_PIXELS", MAX_PIXELS))
    except ValueError:
        return MAX_PIXELS


@dataclass
class LoadedImage:
    """An RGB image ready for every model, with where it came from."""

    image: Image.Image
    source: str
    #: (width, height) at full resolution, EXIF orientation applied (``image`` may be smaller).
    original_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    _sha1: str | None = None

    @property
    def rgb(self) -> np.ndarray:
        return np.asarray(self.image)

    @property
    def sha1(self) -> str:
        if self._sha1 is None:
            self._sha1 = hashlib.sha1(self.image.tobytes()).hexdigest()
        return self._sha1

    def jpeg_bytes(self, quality: int = 90) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()


def _open(data: bytes | Path, source: str) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, with a clear message
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    except UnidentifiedImageError:
        raise InputError(f"{source}: not an image file (unrecognised format)") from None
    except OSError as e:
        raise InputError(f"{source}: cannot read image ({e})") from None
    w, h = img.size
    if w * h > max_pixels():
        raise InputError(
            f"{source}: image is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels():,}",
            "downscale it, or raise KEVER_MAX_PIXELS if you trust the file",
        )
    if w == 0 or h == 0:
        raise InputError(f"{source}: image has no pixels ({w}x{h})")
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)
        img.load()
    except Exception as e:  # OSError, SyntaxError, EOFError, zlib.error...: all mean unreadable data
        if isinstance(e, MemoryError):
            raise
        raise InputError(f"{source}: image data is truncated or corrupt ({e})") from None
    return img


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    try:
        orientation = img.getexif().get(0x0112, 1)
        if orientation not in (None, 1):
            img = ImageOps.exif_transpose(img)
            notes.append(f"EXIF orientation {orientation} applied")
    except Exception:  # broken EXIF must not lose the image
        notes.append("EXIF orientation unreadable; used pixels as stored")
    if getattr(img, "n_frames", 1) > 1:
        notes.append(f"animated image: first of {img.n_frames} frames used")
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        scale = 255.0 / (65535.0 if hi > 255 else 255.0)
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
        notes.append(f"{mode} image scaled to 8 bits")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
        notes.append("floating-point image scaled to 8 bits")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGB" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
        notes.append("transparency composited on white")
    if img.mode == "CMYK":
        notes.append("CMYK converted to RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def _downscale(img: Image.Image, side: int) -> Image.Image:
    if max(img.size) <= side:
        return img
    out = img.copy()
    out.thumbnail((side, side), Image.Resampling.LANCZOS)
    return out


def load_image(item: ImageInput, *, source: str | None = None, working_side: int = WORKING_SIDE) -> LoadedImage:
    """Load and normalise one image; raise :class:`InputError` with a clear message if unusable."""
    if isinstance(item, LoadedImage):
        return item
    if isinstance(item, Image.Image):
        src = source or "<image>"
        notes: list[str] = []
        rgb = _to_rgb(item, notes)
        return LoadedImage(_downscale(rgb, working_side), src, rgb.size, notes)
    if isinstance(item, (bytes, bytearray)):
        src = source or "<bytes>"
        if len(item) == 0:
            raise InputError(f"{src}: empty file (0 bytes)")
        img = _open(bytes(item), src)
    elif isinstance(item, (str, os.PathLike)):
        path = Path(item).expanduser()
        src = source or str(item)
        if not path.exists():
            raise InputError(f"{src}: no such file", "check the path")
        if path.is_dir():
            raise InputError(f"{src}: is a directory, not an image file", "pass image files, e.g. DIR/*.jpg")
        try:
            size = path.stat().st_size
        except OSError as e:
            raise InputError(f"{src}: cannot read ({e.strerror})") from None
        if size == 0:
            raise InputError(f"{src}: empty file (0 bytes)")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputError(f"{src}: cannot read ({e.strerror})") from None
        img = _open(data, src)
    else:
        raise InputError(f"unsupported image input of type {type(item).__name__}", "pass a path, bytes or a PIL image")
    notes = []
    rgb = _to_rgb(img, notes)
    return LoadedImage(_downscale(rgb, working_side), src, rgb.size, notes)
