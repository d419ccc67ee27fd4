"""``kever perceive`` as a user runs it: a subprocess, real files, real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from badimages import ERROR_CASES, make_error_cases, make_good_cases


def kever(*args: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kever", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_clean_failure(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("kever: error: ")
    for w in words:
        assert w in lines[0]


@pytest.fixture(scope="module")
def error_cases(tmp_path_factory):
    return make_error_cases(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def good_cases(tmp_path_factory):
    return make_good_cases(tmp_path_factory.mktemp("good"))


@pytest.mark.parametrize("case, words", ERROR_CASES)
def test_bad_file_one_line_error(error_cases, case, words):
    path = str(error_cases[case])
    proc = kever("perceive", path)
    assert_clean_failure(proc, words, path)
    assert proc.stdout.strip() == ""


def test_bad_file_json_names_source_and_error(error_cases):
    path = str(error_cases["non_image"])
    proc = kever("perceive", "--json", path)
    assert proc.returncode != 0
    assert json.loads(proc.stdout) == {"source": path, "error": f"{path}: not an image file (unrecognised format)"}


def test_decompression_bomb_limit_via_env(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "white").save(path)
    proc = kever("perceive", "-e", "colour", str(path), env={"KEVER_MAX_PIXELS": "1000"})
    assert_clean_failure(proc, "above the limit of 1,000")


def test_unknown_extractor_is_a_clean_error(demo_image):
    proc = kever("perceive", "-e", "colour,pose", str(demo_image))
    assert_clean_failure(proc, "unknown perception extractor", "pose")


@pytest.mark.slow
def test_odd_formats_and_one_bad_file_in_one_run(good_cases, error_cases):
    """All odd-but-valid formats with all-bad files between them, in one run: every good result
    is kept, in order; the bad ones are reported one line each; the exit is non-zero."""
    names = list(good_cases)
    args = []
    for name in names:
        args.append(str(good_cases[name][0]))
    bad = [str(error_cases[c]) for c in ("truncated", "missing")]
    args.insert(2, bad[0])
    args.append(bad[1])
    proc = kever("perceive", "--json", "--batch-size", "4", *args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err_lines) == 2 and all(line.startswith("kever: error: ") for line in err_lines), proc.stderr
    out = json.loads(proc.stdout)
    assert [item["source"] for item in out] == args
    by_source = {item["source"]: item for item in out}
    for b in bad:
        assert "error" in by_source[b]
    for name in names:
        path, (w, h) = good_cases[name]
        item = by_source[str(path)]
        assert "error" not in item, name
        assert (item["width"], item["height"]) == (w, h), name  # EXIF-rotated: sizes swapped
        for key in ("brightness", "colorfulness", "faces", "objects", "text", "models", "timings", "notes"):
            assert key in item, (name, key)
        assert len(item["objects"]) == 5
    assert any("first of 3 frames" in n for n in by_source[str(good_cases["animated_gif"][0])]["notes"])


@pytest.mark.slow
def test_demo_image_readable_and_json(demo_image):
    proc = kever("perceive", str(demo_image))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""  # no INFO lines from TF Lite, no warnings
    assert "face 1" in proc.stdout and "happy" in proc.stdout
    proc = kever("perceive", "--json", str(demo_image))
    assert proc.returncode == 0, proc.stderr
    item = json.loads(proc.stdout)
    assert isinstance(item, dict) and item["source"] == str(demo_image)
    assert item["faces"] and item["faces"][0]["dominant"] == "happy"
    assert set(item["models"]) == {"colour", "faces", "objects", "objects.efficientnet-lite2", "text"}


@pytest.mark.slow
def test_several_good_images_give_a_list(demo_image):
    other = Path(demo_image).with_name("coffee.jpg")
    proc = kever("perceive", "--json", "-e", "colour,objects", str(demo_image), str(other))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [o["source"] for o in out] == [str(demo_image), str(other)]
    assert out[1]["objects"][0]["label"] == "espresso"
    assert out[0]["faces"] == [] and "faces" not in out[0]["models"]


def test_special_files_among_good_images(demo_image, error_cases):
    """A FIFO, /dev/zero behind a link, a link loop and a dangling link between good images:
    each gets its own line (not "empty file"), the good ones are still measured, nothing blocks."""
    from badimages import SPECIAL_CASES

    bad = [str(error_cases[c]) for c in SPECIAL_CASES]
    args = [str(demo_image), *bad, str(demo_image)]
    proc = kever("perceive", "--json", "-e", "colour", *args, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err_lines) == len(bad), proc.stderr
    words = dict(ERROR_CASES)
    for case, path, line in zip(SPECIAL_CASES, bad, err_lines):
        assert line.startswith(f"kever: error: {path}: ") and words[case] in line
        assert "empty file" not in line and "no such file" not in line
    out = json.loads(proc.stdout)
    assert [o["source"] for o in out] == args
    assert "error" not in out[0] and "error" not in out[-1] and out[0]["brightness"] is not None
