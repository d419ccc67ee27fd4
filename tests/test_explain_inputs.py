"""``kever explain`` given files that are not images, and an empty ``--labels`` (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from badimages import ERROR_CASES, SPECIAL_CASES, make_error_cases
from kever.agent.labels import parse_labels
from kever.errors import InputError

WORDS = dict(ERROR_CASES)


def kever(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEVER_KB_LIMIT": "2000"}
    return subprocess.run([sys.executable, "-m", "kever", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def error_cases(tmp_path_factory):
    return make_error_cases(tmp_path_factory.mktemp("bad"))


def test_special_files_alone_are_refused_before_any_model_loads(error_cases):
    paths = [str(error_cases[c]) for c in SPECIAL_CASES]
    run = kever("explain", *paths, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    assert len(lines) == len(paths), run.stderr
    for case, path, line in zip(SPECIAL_CASES, paths, lines):
        assert line == f"kever: error: {path}: " + line.split(f"{path}: ", 1)[1]
        assert WORDS[case] in line and "no such file" not in line
    assert "auto:" not in run.stderr  # no preset was resolved, no model loaded


@pytest.mark.slow
def test_special_files_among_good_images(demo_image, error_cases):
    paths = [str(error_cases[c]) for c in SPECIAL_CASES]
    run = kever("explain", str(demo_image), *paths, "--preset", "fake", "--json", "--no-rationale")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    data = json.loads(run.stdout)
    assert data[0]["label"] and "error" not in data[0]
    for case, item in zip(SPECIAL_CASES, data[1:]):
        assert WORDS[case] in item["error"] and "empty file" not in item["error"], item
    lines = [x for x in run.stderr.splitlines() if x.startswith("kever: error: ")]
    assert len(lines) == len(paths) and all("empty file" not in x for x in lines)


def test_empty_labels_is_an_error_with_a_hint():
    for spec in ("", "   "):
        with pytest.raises(InputError, match="empty") as info:
            parse_labels(spec)
        assert info.value.hint and "mikels8" in info.value.hint
    assert parse_labels(None) == ("named", ["mikels8"])  # no --labels at all: the default


def test_empty_labels_on_the_command_line(demo_image):
    run = kever("explain", str(demo_image), "--labels", "", timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "--labels" in lines[0] and "empty" in lines[0], run.stderr
    assert "auto:" not in run.stderr
