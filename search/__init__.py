"""Emotion search over a photo collection: ``kever index`` and ``kever search``.

    from kever.search import Index
    hits = Index.open("photos/.kever-index").search(emotion="awe", limit=10)

Modules: :mod:`walk` (which files are photos), :mod:`store` (the LanceDB table and the index
folder's manifest and lock), :mod:`build` (judging a folder into an index, incrementally),
:mod:`query` (turning a query into one vector and a filter), :mod:`index` (the ``Index`` API),
:mod:`results` (pydantic results), :mod:`cli` (the commands), ``gallery.html`` (the served page).
"""

from __future__ import annotations

__all__ = ["Index"]


def __getattr__(name: str):
    if name == "Index":  # lancedb is imported only when an index is opened
        from kever.search.index import Index

        return Index
    raise AttributeError(name)
