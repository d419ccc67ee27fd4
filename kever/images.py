"""Turn whatever a user hands kever (a path, bytes, a PIL image) into a clean RGB image.

Every failure is an :class:`~kever.errors.InputError` with one line saying what was wrong.
Handled: missing paths, directories, FIFOs, devices, sockets, symlink loops and dangling
links (each named for what it is, and never opened for reading), empty, truncated and
non-image files, decompression
bombs (more than ``MAX_PIXELS`` pixels, override with ``KEVER_MAX_PIXELS``), CMYK, 16-bit,
palette, RGBA/LA (composited on white), greyscale, animated images (first frame), EXIF
orientation (applied).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
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


_KINDS = ((stat.S_ISFIFO, "is a named pipe (FIFO)"), (stat.S_ISCHR, "is a character device"),
          (stat.S_ISBLK, "is a block device"), (stat.S_ISSOCK, "is a socket"))


def _not_a_file(src: str, mode: int, target: str | None) -> InputError:
    for test, what in _KINDS:
        if test(mode):
            where = f" ({target})" if target else ""
            return InputError(f"{src}: {what}{where}, not an image file", "pass image files such as JPEG or PNG")
    return InputError(f"{src}: not a regular file", "pass image files such as JPEG or PNG")


def check_path(item: str | os.PathLike, source: str | None = None) -> None:
    """Raise the :class:`InputError` that :func:`load_image` would for a path that is not a
    readable regular file (missing, a directory, a FIFO, a device, a symlink loop or a dangling
    link, unreadable, empty), without opening it; return None for a regular file."""
    _stat(Path(item).expanduser(), source or str(item))
    return None


def _stat(path: Path, src: str) -> os.stat_result:
    try:
        st = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(f"{src}: broken symbolic link (its target {os.readlink(path)} does not exist)",
                             "point it at an image file") from None
        raise InputError(f"{src}: no such file", "check the path") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"{src}: symbolic link loop (too many levels of symbolic links)",
                             "point the link at an image file") from None
        raise InputError(f"{src}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{src}: is a directory, not an image file", "pass image files, e.g. DIR/*.jpg")
    if not stat.S_ISREG(st.st_mode):
        raise _not_a_file(src, st.st_mode, os.path.realpath(path) if path.is_symlink() else None)
    if st.st_size == 0:
        raise InputError(f"{src}: empty file (0 bytes)")
    return st


def read_file(item: str | os.PathLike, src: str) -> bytes:
    """The bytes of a regular file. Anything else is refused before a byte is read; the file is
    opened non-blocking and checked again on the open descriptor, so a path swapped for a FIFO
    in between cannot block."""
    path = Path(item).expanduser()
    _stat(path, src)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise InputError(f"{src}: cannot read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_a_file(src, st.st_mode, None)
        try:
            data = fh.read()
        except OSError as e:
            raise InputError(f"{src}: cannot read ({e.strerror})") from None
    if not data:
        raise InputError(f"{src}: empty file (0 bytes)")
    return data


#: an image with a side shorter than this, or fewer pixels than SMALL_AREA, is judged with a warning
SMALL_SIDE = 16
SMALL_AREA = 32 * 32


def size_note(size: tuple[int, int]) -> str | None:
    """The warning a judgment of a very small or very thin image carries (None when it needs none)."""
    w, h = size
    if min(w, h) >= SMALL_SIDE and w * h >= SMALL_AREA:
        return None
    return (f"the image is only {w}x{h} pixels: so little can show almost nothing (no faces, objects or text), "
            "so this judgment rests on little more than its colours; read it as weak")


def _loaded(rgb: Image.Image, src: str, notes: list[str], working_side: int) -> LoadedImage:
    note = size_note(rgb.size)
    return LoadedImage(_downscale(rgb, working_side), src, rgb.size, notes + ([note] if note else []))


def load_image(item: ImageInput, *, source: str | None = None, working_side: int = WORKING_SIDE) -> LoadedImage:
    """Load and normalise one image; raise :class:`InputError` with a clear message if unusable."""
    if isinstance(item, LoadedImage):
        return item
    if isinstance(item, Image.Image):
        src = source or "<image>"
        notes: list[str] = []
        rgb = _to_rgb(item, notes)
        return _loaded(rgb, src, notes, working_side)
    if isinstance(item, (bytes, bytearray)):
        src = source or "<bytes>"
        if len(item) == 0:
            raise InputError(f"{src}: empty file (0 bytes)")
        img = _open(bytes(item), src)
    elif isinstance(item, (str, os.PathLike)):
        src = source or str(item)
        img = _open(read_file(item, src), src)
    else:
        raise InputError(f"unsupported image input of type {type(item).__name__}", "pass a path, bytes or a PIL image")
    notes = []
    rgb = _to_rgb(img, notes)
    return _loaded(rgb, src, notes, working_side)
