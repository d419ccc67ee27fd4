"""The knowledge base as the agent's tools: LangChain tools with pydantic argument schemas,
bound to one KnowledgeBase, run by LangGraph's ToolNode in the consult loop
(:mod:`kever.agent.consult`).

- ``kb_search(query)``: entries about a cue, object, scene or situation (curated cues,
  SenticNet concepts, NRC EmoLex words; emotion definitions are left to ``define``);
- ``emotions_of(concept)``: what a concept evokes, with the entries it rests on;
- ``define(label)``: what an emotion label of the taxonomy means (shown to the model, never
  evidence).

Each tool answers ``(content, artifact)``: ``content`` is the short text the model reads
(id, text, top emotions per hit), ``artifact`` a :class:`ToolResult` with the full
:class:`~kever.tools.kb.models.Hit` objects, which become the judgment's evidence.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kever.errors import KeverError

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from kever.tools.kb.knowledge_base import KnowledgeBase

SEARCH_KINDS = ("cue", "concept", "lexicon")


_CUE_ID = re.compile(r"\b[CE]\d+\b")


def _phrase(v: str) -> str:
    v = " ".join(str(v).split())
    if not v:
        raise ValueError("must not be empty")
    if _CUE_ID.search(v):
        raise ValueError("write words about the photo, not cue or evidence ids")
    return v


class SearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(max_length=80, description="a cue, object, scene or situation, in a few words (e.g. 'funeral')")

    @field_validator("query")
    @classmethod
    def _clean(cls, v: str) -> str:
        return _phrase(v)


class EmotionsOfArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concept: str = Field(max_length=60, description="one concept, e.g. 'thunderstorm', 'smiling face', 'funeral'")

    @field_validator("concept")
    @classmethod
    def _clean(cls, v: str) -> str:
        return _phrase(v)


class DefineArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(max_length=30, description="an emotion label of the taxonomy, e.g. 'awe'")

    @field_validator("label")
    @classmethod
    def _clean(cls, v: str) -> str:
        return _phrase(v).lower()


class ToolResult(BaseModel):
    """What a tool call returned, beyond the text the model reads."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    tool: str
    argument: str
    hits: list[Any] = Field(default_factory=list)  # kever.tools.kb.Hit
    evidence: bool = Field(False, description="whether the hits are evidence for the decision (define's are not)")
    error: str | None = None


def _top(weights: dict[str, float], n: int = 2) -> str:
    top = sorted(((k, v) for k, v in weights.items() if v > 0), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{k} {v:.2f}" for k, v in top) or "no emotion"


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def make_kb_tools(kb: "KnowledgeBase", *, taxonomy: str = "mikels8", k: int = 5, shown: int = 3) -> list["BaseTool"]:
    """The three tools over ``kb``. ``k`` hits are kept per search (evidence), ``shown`` of
    them are written into the text the model reads."""
    from langchain_core.tools import StructuredTool

    labels = list(kb.taxonomy(taxonomy).labels)

    def lines(hits) -> str:
        return "; ".join(f"{h.id}: {_short(h.text)} ({_top(h.weights)})" for h in hits[:shown])

    def kb_search(query: str) -> tuple[str, ToolResult]:
        try:
            hits = [h for h in kb.search(query, k=k, kinds=list(SEARCH_KINDS)) if h.weights]
        except KeverError as e:
            return f"error: {e}", ToolResult(tool="kb_search", argument=query, error=str(e))
        text = lines(hits) if hits else "no entries"
        return text, ToolResult(tool="kb_search", argument=query, hits=hits, evidence=True)

    def emotions_of(concept: str) -> tuple[str, ToolResult]:
        try:
            p = kb.emotions_of(concept, taxonomy)
        except KeverError as e:
            return f"error: {e}", ToolResult(tool="emotions_of", argument=concept, error=str(e))
        hits = [h for h in p.evidence if h.weights][:k]
        if p.match == "none" or not hits:
            return "unknown concept", ToolResult(tool="emotions_of", argument=concept, evidence=True)
        text = f"{_top(p.distribution, 3)} (from {', '.join(h.id for h in hits[:shown])})"
        return text, ToolResult(tool="emotions_of", argument=concept, hits=hits, evidence=True)

    def define(label: str) -> tuple[str, ToolResult]:
        if label not in labels:
            msg = f"'{label}' is not a label; labels: {', '.join(labels)}"
            return f"error: {msg}", ToolResult(tool="define", argument=label, error=msg)
        d = kb.define(label, taxonomy)
        return f"{label}: {_short(d.definition, 160)}", ToolResult(tool="define", argument=label)

    specs = [
        (kb_search, SearchArgs, "Search the affective knowledge base for entries about a cue, object, scene "
         "or situation; each hit has an id, a text and the emotions it is associated with."),
        (emotions_of, EmotionsOfArgs, "Which emotions a concept evokes, with the knowledge entries it rests on."),
        (define, DefineArgs, f"What an emotion label means (labels: {', '.join(labels)})."),
    ]
    return [
        StructuredTool.from_function(func=fn, name=fn.__name__, description=desc, args_schema=schema,
                                     response_format="content_and_artifact")
        for fn, schema, desc in specs
    ]
