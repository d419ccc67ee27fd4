"""Shared test fixtures.

- every test gets its own kever home in a temp dir; derived artefacts (knowledge index,
  dequantised models) go to one cache per session (``KEVER_CACHE_DIR``); a test of cache
  behaviour points ``KEVER_CACHE_DIR`` at its own tmp_path;
- ``shared_data`` points at ../shared/data and skips where it is absent;
- ``demo_image`` is the photo the package ships;
- ``image_factory`` writes real image files of any mode/format for bad-input tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kever.paths import DEMO_IMAGE, shared_data_dir


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One cache of derived artefacts (knowledge index, dequantised models) per test session."""
    return tmp_path_factory.mktemp("kever_cache")


@pytest.fixture(scope="session", autouse=True)
def session_env(tmp_path_factory, session_cache):
    """Session- and module-scoped fixtures (models, indexes) are built before the per-test
    fixtures below: give the whole session a temp home, the session cache and offline hubs,
    so nothing a test builds lands in the real ~/.cache/kever."""
    mp = pytest.MonkeyPatch()
    mp.setenv("KEVER_HOME", str(tmp_path_factory.mktemp("kever_session_home")))
    mp.setenv("KEVER_CACHE_DIR", str(session_cache))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def kever_home(tmp_path_factory, monkeypatch, session_cache):
    home = tmp_path_factory.mktemp("kever_home")
    monkeypatch.setenv("KEVER_HOME", str(home))
    monkeypatch.setenv("KEVER_CACHE_DIR", str(session_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if root is None:
        pytest.skip("../shared/data is absent (development data; not on users' machines)")
    return root


@pytest.fixture(scope="session")
def flickr_dev(shared_data) -> Path:
    root = shared_data / "flickr_ldl_dev"
    if not (root / "ground_truth.txt").is_file():
        pytest.skip("flickr_ldl_dev is absent")
    return root


@pytest.fixture(scope="session")
def demo_image() -> Path:
    assert DEMO_IMAGE.is_file(), "the package must ship its demo image"
    return DEMO_IMAGE


@pytest.fixture
def image_factory(tmp_path):
    """make(name, mode='RGB', size=(64, 48), fmt=None, **save_kwargs) -> Path of a real image file."""

    def make(name: str, mode: str = "RGB", size=(64, 48), fmt: str | None = None, **save_kwargs) -> Path:
        rng = np.random.default_rng(0)
        w, h = size
        if mode in ("I;16",):
            arr = rng.integers(0, 65535, (h, w), dtype=np.uint16)
            img = Image.fromarray(arr)  # uint16 -> mode I;16
        else:
            base = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")
            img = base.convert(mode) if mode != "RGB" else base
        path = tmp_path / name
        img.save(path, format=fmt, **save_kwargs)
        return path

    return make
