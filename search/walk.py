"""Which files in a folder tree are photos kever can judge.

Recursive, sorted, symlinks to files followed but not to folders (no loops); hidden files and
folders (``.thumbnails``, ``.git``, the index itself) are left out. HEIC/HEIF is read where the
optional ``pillow-heif`` plug-in is installed (``pip install 'kever[search]'``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BASE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".gif")
HEIF_EXTS = (".heic", ".heif")


def heif_supported() -> bool:
    """Register pillow-heif with Pillow when it is installed; whether HEIC can be read."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def image_exts() -> tuple[str, ...]:
    return BASE_EXTS + (HEIF_EXTS if heif_supported() else ())


@dataclass(frozen=True)
class PhotoFile:
    rel: str  # posix path relative to the root: the photo's key in the index
    path: Path
    size: int
    mtime_ns: int


@dataclass
class Walk:
    photos: list[PhotoFile]
    others: int  # files that are not photos by their extension
    unsupported_heif: int  # .heic/.heif files seen without pillow-heif


def walk(root: Path, skip: Path | None = None) -> Walk:
    root = Path(root)
    exts = image_exts()
    skip_real = skip.resolve() if skip is not None else None
    photos: list[PhotoFile] = []
    others = heif = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (skip_real is None or (here / d).resolve() != skip_real))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = here / name
            ext = p.suffix.lower()
            if ext not in exts:
                others += 1
                heif += ext in HEIF_EXTS
                continue
            try:
                st = p.stat()
            except OSError:  # a dangling link: judged (and reported) like any unreadable file
                photos.append(PhotoFile(p.relative_to(root).as_posix(), p, -1, 0))
                continue
            if not p.is_file():
                continue
            photos.append(PhotoFile(p.relative_to(root).as_posix(), p, st.st_size, st.st_mtime_ns))
    return Walk(photos, others, heif)
