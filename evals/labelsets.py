"""The label sets the harness scores with: the reasoner's named sets, with their labels in
the order the curated taxonomies give them (``knowledge/taxonomies.yaml``: the one place they
are defined). That order is the column order of every confusion matrix and distribution."""

from __future__ import annotations

from functools import lru_cache

from kever.agent.labels import NAMED


@lru_cache(maxsize=1)
def label_sets() -> dict[str, list[str]]:
    from kever.knowledge.loader import load_knowledge

    taxonomies = load_knowledge().taxonomies
    return {name: list(taxonomies[name].labels) for name in NAMED}
