"""Load and validate the curated knowledge files; a broken file is a ConfigError naming
file, entry and field, never a traceback."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kever.errors import ConfigError
from kever.knowledge.schema import (
    CueFile,
    Mapping,
    MappingsFile,
    SourcesFile,
    TaxonomiesFile,
    TaxonomyDef,
)

#: SenticNet 6 mood tags (Hourglass of Emotions), the "from" side of one mapping.
SENTICNET_MOODS = ("joy", "eagerness", "pleasantness", "calmness", "sadness", "fear", "anger", "disgust")
CANONICAL = "mikels8"


def knowledge_dir() -> Path:
    env = os.environ.get("KEVER_KNOWLEDGE_DIR")
    return Path(env) if env else Path(__file__).resolve().parent


@dataclass
class Knowledge:
    root: Path
    sources: dict[str, str]
    taxonomies: dict[str, TaxonomyDef]
    mappings: dict[tuple[str, str], Mapping]
    cue_files: dict[str, CueFile] = field(default_factory=dict)  # relative path -> file

    def files(self) -> list[Path]:
        return curated_files(self.root)


def curated_files(root: Path) -> list[Path]:
    return sorted([*root.glob("*.yaml"), *root.glob("cues/*.yaml")])


def curated_hash(root: Path | None = None) -> str:
    root = root or knowledge_dir()
    h = hashlib.sha256()
    for p in curated_files(root):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _read_yaml(path: Path, root: Path) -> Any:
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"curated knowledge file {rel} is missing", f"restore it under {root}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"curated knowledge file {rel} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None


def _validate(model: type[BaseModel], data: Any, path: Path, root: Path) -> Any:
    rel = path.relative_to(root).as_posix()
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = list(err["loc"])
        entry = ""
        if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data, dict):
            items = data.get(loc[0]) or []
            item = items[loc[1]] if loc[1] < len(items) else None
            ident = None
            if isinstance(item, dict):
                ident = item.get("id") or item.get("name") or item.get("label") or item.get("key")
            entry = f" entry {ident!r}" if ident else f" entry #{loc[1] + 1}"
            loc = loc[2:]
        fld = ".".join(str(x) for x in loc) or "(top level)"
        more = f" (+{len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
        raise ConfigError(
            f"curated knowledge file {rel}{entry} field {fld!r}: {err['msg']}{more}",
            "fix the file (see kever.knowledge.schema)",
        ) from None


def _fail(rel: str, entry: str, fld: str, msg: str) -> ConfigError:
    return ConfigError(f"curated knowledge file {rel} entry {entry!r} field {fld!r}: {msg}", "fix the file (see kever.knowledge.schema)")


def load_knowledge(root: Path | None = None) -> Knowledge:
    root = Path(root) if root else knowledge_dir()
    if not root.is_dir():
        raise ConfigError(f"knowledge folder {root} does not exist", "unset KEVER_KNOWLEDGE_DIR or point it at a copy of kever/knowledge")
    sf = _validate(SourcesFile, _read_yaml(root / "sources.yaml", root), root / "sources.yaml", root)
    sources = {s.key: s.cite for s in sf.sources}

    def check_sources(rel: str, entry: str, keys: list[str]) -> None:
        for k in keys:
            if k not in sources:
                raise _fail(rel, entry, "sources", f"unknown source key {k!r} (not in sources.yaml)")

    tf = _validate(TaxonomiesFile, _read_yaml(root / "taxonomies.yaml", root), root / "taxonomies.yaml", root)
    taxonomies = {t.name: t for t in tf.taxonomies}
    for t in tf.taxonomies:
        check_sources("taxonomies.yaml", t.name, t.sources)
        for e in t.emotions:
            check_sources("taxonomies.yaml", f"{t.name}.{e.label}", e.sources)
    if CANONICAL not in taxonomies:
        raise ConfigError(f"taxonomies.yaml must define {CANONICAL!r}")
    canon = set(taxonomies[CANONICAL].labels)

    mf = _validate(MappingsFile, _read_yaml(root / "mappings.yaml", root), root / "mappings.yaml", root)
    label_sets = {n: set(t.labels) for n, t in taxonomies.items()}
    label_sets["senticnet"] = set(SENTICNET_MOODS)
    mappings: dict[tuple[str, str], Mapping] = {}
    for m in mf.mappings:
        name = f"{m.from_}->{m.to}"
        check_sources("mappings.yaml", name, m.sources)
        for side in (m.from_, m.to):
            if side not in label_sets:
                raise _fail("mappings.yaml", name, "from/to", f"unknown taxonomy {side!r}")
        for src, row in m.table.items():
            if src not in label_sets[m.from_]:
                raise _fail("mappings.yaml", name, f"table.{src}", f"{src!r} is not a {m.from_} label")
            for dst in row:
                if dst not in label_sets[m.to]:
                    raise _fail("mappings.yaml", name, f"table.{src}.{dst}", f"{dst!r} is not a {m.to} label")
        mappings[(m.from_, m.to)] = m

    cue_files: dict[str, CueFile] = {}
    ids: dict[str, str] = {}
    for path in sorted((root / "cues").glob("*.yaml")):
        rel = path.relative_to(root).as_posix()
        cf = _validate(CueFile, _read_yaml(path, root), path, root)
        check_sources(rel, "(file)", cf.sources)
        for e in cf.entries:
            check_sources(rel, e.id, e.sources)
            for label in e.weights:
                if label not in canon:
                    raise _fail(rel, e.id, f"weights.{label}", f"{label!r} is not a {CANONICAL} label ({', '.join(sorted(canon))})")
            if e.id in ids:
                raise _fail(rel, e.id, "id", f"duplicate id, also in {ids[e.id]}")
            ids[e.id] = rel
        cue_files[rel] = cf
    return Knowledge(root=root, sources=sources, taxonomies=taxonomies, mappings=mappings, cue_files=cue_files)
