"""The knowledge base as LangChain tools (pydantic argument schemas), bound to one
KnowledgeBase instance. Outputs are JSON-able dicts that carry entry ids and sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from kever.errors import KeverError

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from kever.tools.kb.knowledge_base import KnowledgeBase


class SearchArgs(BaseModel):
    query: str = Field(description="words or a short phrase describing a visual cue, object, scene or situation")
    k: int = Field(default=8, ge=1, le=50, description="how many entries to return")
    kinds: list[str] | None = Field(default=None, description="restrict to entry kinds: cue, concept, definition, lexicon")


class EmotionsOfArgs(BaseModel):
    concept: str = Field(description="a concept, e.g. 'thunderstorm', 'smiling face', 'funeral'")
    taxonomy: str = Field(default="mikels8", description="mikels8, emotion6, sentiment or plutchik8")


class ExpandArgs(BaseModel):
    concept: str = Field(description="a concept to find related concepts for")
    n: int = Field(default=5, ge=1, le=30)


class DefineArgs(BaseModel):
    label: str = Field(description="an emotion label, e.g. 'awe'")
    taxonomy: str = Field(default="mikels8", description="mikels8, emotion6, sentiment or plutchik8")


def _hit(h) -> dict:
    return h.model_dump(include={"id", "source", "text", "kind", "family", "name", "weights", "valence", "arousal", "score"})


def _guard(fn):
    """User-fixable errors become an {'error': ...} result the agent can read, not an exception."""

    def run(**kwargs):
        try:
            return fn(**kwargs)
        except KeverError as e:
            return {"error": str(e)}

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def make_kb_tools(kb: "KnowledgeBase") -> list["BaseTool"]:
    from langchain_core.tools import StructuredTool

    def kb_search(query: str, k: int = 8, kinds: list[str] | None = None) -> dict:
        return {"query": query, "hits": [_hit(h) for h in kb.search(query, k=k, kinds=kinds)]}

    def kb_emotions_of(concept: str, taxonomy: str = "mikels8") -> dict:
        p = kb.emotions_of(concept, taxonomy)
        return {
            "concept": p.concept, "taxonomy": p.taxonomy, "match": p.match,
            "distribution": {k: round(v, 4) for k, v in p.distribution.items()},
            "valence": p.valence, "arousal": p.arousal, "evidence": [_hit(h) for h in p.evidence[:8]],
        }

    def kb_expand(concept: str, n: int = 5) -> dict:
        return {"concept": concept, "related": kb.expand(concept, n=n)}

    def kb_define(label: str, taxonomy: str = "mikels8") -> dict:
        return kb.define(label, taxonomy).model_dump(exclude={"citations"})

    specs = [
        (kb_search, SearchArgs, "Search kever's affective knowledge base (curated visual-cue associations, "
         "SenticNet, NRC EmoLex) for entries about a cue; each hit has an id, source, text and emotion weights."),
        (kb_emotions_of, EmotionsOfArgs, "What emotions a concept evokes: a distribution over the taxonomy's "
         "labels, valence/arousal, and the cited entries it rests on."),
        (kb_expand, ExpandArgs, "Related concepts (curated aliases, SenticNet's concept graph)."),
        (kb_define, DefineArgs, "Definition, appraisal pattern and typical valence/arousal of an emotion label, with its source."),
    ]
    return [
        StructuredTool.from_function(func=_guard(fn), name=fn.__name__, description=desc, args_schema=schema)
        for fn, schema, desc in specs
    ]
