"""Named label sets (data in ``labelsets.yaml``) and the one place a label list is resolved."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from kever.errors import ConfigError

_FILE = Path(__file__).parent / "labelsets.yaml"


@lru_cache(maxsize=1)
def label_sets() -> dict[str, list[str]]:
    data = yaml.safe_load(_FILE.read_text(encoding="utf-8"))
    return {k: [str(x) for x in v] for k, v in data.items()}


def resolve(spec: str | list[str]) -> tuple[str, list[str]]:
    """``"mikels8"`` or ``"a,b,c"`` or a list -> (name, labels)."""
    if isinstance(spec, list):
        labels = [s.strip().lower() for s in spec if s.strip()]
        name = "custom"
    elif spec in label_sets():
        return spec, list(label_sets()[spec])
    else:
        labels = [s.strip().lower() for s in spec.split(",") if s.strip()]
        name = "custom"
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ConfigError(f"label set {spec!r} must name at least two distinct labels",
                          f"use one of {', '.join(label_sets())} or a comma list")
    return name, labels
