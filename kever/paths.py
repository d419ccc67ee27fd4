"""Where kever keeps its cache (indexes, dequantised models). One place, overridable.

``KEVER_HOME`` wins; else ``$XDG_CACHE_HOME/kever``; else ``~/.cache/kever``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"
DEMO_IMAGE = ASSETS_DIR / "astronaut.jpg"


def home() -> Path:
    env = os.environ.get("KEVER_HOME")
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg) / "kever" if xdg else Path.home() / ".cache" / "kever"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(*parts: str) -> Path:
    """A sub-folder of kever's cache of derived artefacts (knowledge index, dequantised
    models), created on demand. ``KEVER_CACHE_DIR`` wins, else ``home()/cache``: tests share
    one cache per session while each test gets its own home."""
    env = os.environ.get("KEVER_CACHE_DIR")
    root = Path(env) if env else home() / "cache"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path | None:
    """../shared/data beside the checkout (development data), or KEVER_SHARED_DATA; None if absent."""
    env = os.environ.get("KEVER_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(PACKAGE_DIR.parent.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None
