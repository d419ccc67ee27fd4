"""Real files for every bad-input case of issue 2, shared by the image and CLI tests."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png_header(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


def noise(size=(96, 64), seed=0) -> Image.Image:
    w, h = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")


#: (case made by make_error_cases, words its one-line error must contain)
ERROR_CASES = [
    ("missing", "no such file"),
    ("directory", "is a directory"),
    ("zero_byte", "empty file"),
    ("truncated", "truncated or corrupt"),
    ("non_image", "not an image"),
    ("huge_header", "above the limit"),
    ("fifo", "is a named pipe (FIFO), not an image file"),
    ("dev_zero_link", "is a character device (/dev/zero), not an image file"),
    ("symlink_loop", "symbolic link loop"),
    ("broken_link", "broken symbolic link (its target"),
]

#: the cases that are not regular files (issue 11): they must never be opened for reading
SPECIAL_CASES = ["fifo", "dev_zero_link", "symlink_loop", "broken_link"]


def make_error_cases(root: Path) -> dict[str, Path]:
    """name -> a path that must be refused with a one-line error."""
    root.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Path] = {"missing": root / "does-not-exist.jpg"}
    d = root / "a_directory.jpg"
    d.mkdir(exist_ok=True)
    cases["directory"] = d
    empty = root / "empty.jpg"
    empty.write_bytes(b"")
    cases["zero_byte"] = empty
    full = root / "full.jpg"
    noise((256, 256)).save(full, quality=95)
    data = full.read_bytes()
    trunc = root / "truncated.jpg"
    trunc.write_bytes(data[: len(data) // 2])
    cases["truncated"] = trunc
    fake = root / "not_an_image.jpg"
    fake.write_text("this is a text file pretending to be a JPEG\n" * 20)
    cases["non_image"] = fake
    cases["huge_header"] = huge_png_header(root / "huge_header.png")
    fifo = root / "pipe.jpg"
    if not fifo.exists():
        os.mkfifo(fifo)
    cases["fifo"] = fifo
    for name, target in (("zero.jpg", "/dev/zero"), ("loop_a.jpg", root / "loop_b.jpg"),
                         ("loop_b.jpg", root / "loop_a.jpg"), ("dangling.jpg", root / "gone.jpg")):
        if not (root / name).is_symlink():
            (root / name).symlink_to(target)
    cases["dev_zero_link"] = root / "zero.jpg"
    cases["symlink_loop"] = root / "loop_a.jpg"
    cases["broken_link"] = root / "dangling.jpg"
    return cases


def make_good_cases(root: Path) -> dict[str, tuple[Path, tuple[int, int]]]:
    """name -> (path, expected (width, height) after loading, orientation applied)."""
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, tuple[int, int]]] = {}
    base = noise((96, 64))
    p = root / "cmyk.jpg"
    base.convert("CMYK").save(p)
    out["cmyk"] = (p, (96, 64))
    p = root / "grey16.png"
    arr = np.random.default_rng(1).integers(0, 65535, (64, 96), dtype=np.uint16)
    img16 = Image.fromarray(arr)
    assert img16.mode == "I;16", img16.mode
    img16.save(p)
    out["16bit"] = (p, (96, 64))
    p = root / "palette.png"
    base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(p)
    out["palette"] = (p, (96, 64))
    p = root / "rgba.png"
    rgba = base.convert("RGBA")
    a = np.asarray(rgba).copy()
    a[:, :48, 3] = 0  # left half fully transparent -> white after compositing
    Image.fromarray(a, "RGBA").save(p)
    out["rgba"] = (p, (96, 64))
    p = root / "grey.png"
    base.convert("L").save(p)
    out["greyscale"] = (p, (96, 64))
    p = root / "animated.gif"
    frames = [Image.new("RGB", (96, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["animated_gif"] = (p, (96, 64))
    p = root / "exif_rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    base.save(p, exif=exif.tobytes())
    out["exif_rotated"] = (p, (64, 96))
    return out
