"""Versioned prompt files. ``load_prompt("rationale")`` returns the newest version; a
judgment records ``prompt.ref`` (``name@version``) for every prompt that produced it.

Each file ``NAME.vN.yaml`` holds ``system`` and ``user`` templates (``str.format`` fields),
and optionally more named templates under ``parts`` (e.g. a follow-up turn), read with
``prompt.part(name, **fields)``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel

from kever.errors import ConfigError

PROMPTS_DIR = Path(__file__).parent
_FILE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>\d+)\.yaml$")


class Prompt(BaseModel):
    name: str
    version: int
    system: str
    user: str
    parts: dict[str, str] = {}

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def messages(self, **fields) -> list[dict]:
        try:
            return [
                {"role": "system", "content": self.system.format(**fields).strip()},
                {"role": "user", "content": self.user.format(**fields).strip()},
            ]
        except KeyError as e:
            raise ConfigError(f"prompt {self.ref} needs field {e}") from None

    def part(self, name: str, **fields) -> str:
        if name not in self.parts:
            raise ConfigError(f"prompt {self.ref} has no part '{name}'", f"parts: {', '.join(self.parts) or 'none'}")
        try:
            return self.parts[name].format(**fields).strip()
        except KeyError as e:
            raise ConfigError(f"prompt {self.ref} part '{name}' needs field {e}") from None


@lru_cache(maxsize=None)
def load_prompt(name: str, version: int | None = None) -> Prompt:
    found = {}
    for path in PROMPTS_DIR.glob(f"{name}.v*.yaml"):
        m = _FILE.match(path.name)
        if m and m.group("name") == name:
            found[int(m.group("version"))] = path
    if not found:
        raise ConfigError(f"no prompt named '{name}' in {PROMPTS_DIR}")
    v = version if version is not None else max(found)
    if v not in found:
        raise ConfigError(f"prompt '{name}' has no version {v}", f"versions: {sorted(found)}")
    data = yaml.safe_load(found[v].read_text(encoding="utf-8"))
    return Prompt(name=name, version=v, system=data["system"], user=data["user"], parts=data.get("parts") or {})
