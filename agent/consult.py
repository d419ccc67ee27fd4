"""The knowledge agent: the ``consult`` node, a LangGraph tool loop between ``retrieve`` and
``align`` on the first pass.

    propose --(calls)--> tools (ToolNode) --(rounds left)--> propose ...
       |  ^                                 \\--(max_rounds)--> END
       |  +-- one corrected retry of an invalid reply
       +--(no calls / invalid twice / token budget spent)--> END

The model reads the cue list (ids and texts) and proposes calls of ``kb_search(query)``,
``emotions_of(concept)`` and ``define(label)`` (:mod:`kever.tools.kb.agent_tools`) through its
protocol (:mod:`kever.agent.tool_callers`). Every proposed call is validated (known tool,
pydantic arguments, the label enum); a reply with an invalid call gets one corrected retry,
after which the loop stops and the fixed pipeline stands for the rest (a warning says so).
Valid calls run in LangGraph's ToolNode; the model sees the hits (id, text, top emotions) and
may call again, within ``max_rounds`` replies of ``max_calls`` calls and ``max_new_tokens``
tokens each, ``max_total_tokens`` in all.

Interface to the decision: each call that returned hits with emotion weights becomes a cue
``Cue(id="C<n>", family="concept", text=<its query/concept>, source="agent:<model id>",
confidence=cfg.confidence)`` in ``state.cues`` and a ``CueHits`` in ``state.retrieved`` (the
``agent`` stream); ``define`` results are shown to the model but are not evidence. Every
proposed call, valid or not, is recorded in ``state.tool_calls`` (-> ``Judgment.tool_calls``).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, TypedDict

import yaml

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import ValidationError

from kever.agent.config import AgentConfig
from kever.agent.judgment import Cue, ToolCall
from kever.agent.state import CueHits, GraphState
from kever.agent.tool_callers import Proposed, caller_for
from kever.errors import ConfigError
from kever.prompts import load_prompt
from kever.tools.kb.agent_tools import make_kb_tools

log = logging.getLogger(__name__)

AGENT_SOURCE = "agent:"
RULES_FILE = Path(__file__).parent / "consult_rules.yaml"
#: errors of calls that parsed and validated but did not run
REPEAT = "repeats an earlier call; not run again"
OVER_LIMIT = "over the limit of {n} calls per reply"


def emotion_words(kb) -> frozenset[str]:
    """Words that name an emotion (consult_rules.yaml plus every taxonomy label of the KB)."""
    words = set(yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")).get("emotion_words") or [])
    for name in ("mikels8", "emotion6", "plutchik8", "sentiment"):
        try:
            words.update(kb.taxonomy(name).labels)
        except Exception:  # noqa: BLE001 - a KB without that taxonomy
            continue
    return frozenset(w.lower() for w in words)


class LoopState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    round: int  # replies accepted (rounds that called tools)
    retried: bool  # this round's reply was already corrected once
    tokens: int
    stop: str | None  # why the loop ended early (a warning)


@dataclass
class AgentRun:
    """What one consult produced."""

    calls: list[ToolCall] = field(default_factory=list)
    evidence: list[tuple[ToolCall, str, list]] = field(default_factory=list)  # (call, query/concept, hits)
    warnings: list[str] = field(default_factory=list)
    messages: list[AnyMessage] = field(default_factory=list)
    tokens: int = 0
    replies: int = 0
    seconds: float = 0.0


def _key(name: str, args: dict) -> tuple:
    return (name, tuple(sorted((k, " ".join(str(v).lower().split())) for k, v in args.items())))


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err.get("loc", ())) or "arguments"
    return f"{where}: {err.get('msg', 'invalid')}"


class ToolAgent:
    """A model that can call tools + the knowledge-base tools + the compiled loop; built once."""

    def __init__(self, model, kb, cfg: AgentConfig, *, taxonomy: str = "mikels8"):
        self.prompt = load_prompt("consult")
        self.caller = caller_for(model, self.prompt)
        if self.caller is None:
            raise ConfigError(f"the agent model {getattr(model, 'model_id', model)} cannot call tools",
                              "use a llamacpp, openai or transformers model whose chat template takes tools")
        self.model = model
        self.model_id = str(getattr(model, "model_id", "model"))
        self.cfg = cfg
        self.tools = make_kb_tools(kb, taxonomy=taxonomy, k=cfg.hits_per_call, shown=cfg.hits_shown)
        self.by_name = {t.name: t for t in self.tools}
        self.labels = list(kb.taxonomy(taxonomy).labels)
        self.emotion_words = emotion_words(kb)
        for t in self.tools:
            if t.name == "define":
                t.metadata = {"enum": {"label": self.labels}}
        self.graph = self._build()
        self.last_run: AgentRun | None = None  # the latest consult, messages included (for transcripts)

    @property
    def protocol(self) -> str:
        return self.caller.protocol

    # -- validation -------------------------------------------------------------------------
    def validate(self, p: Proposed) -> Proposed:
        """The call with cleaned arguments, or with ``error`` set."""
        if p.error:
            return p
        tool = self.by_name.get(p.name)
        if tool is None:
            return Proposed(p.name, p.arguments, p.id, f"unknown tool '{p.name}' (tools: {', '.join(self.by_name)})")
        try:
            args = tool.args_schema.model_validate(p.arguments).model_dump()
        except ValidationError as e:
            return Proposed(p.name, p.arguments, p.id, f"{p.name}: {_first_error(e)}")
        for name, values in ((tool.metadata or {}).get("enum") or {}).items():
            if args.get(name) not in values:
                return Proposed(p.name, p.arguments, p.id, f"{p.name}: '{args.get(name)}' is not one of {', '.join(values)}")
        return Proposed(p.name, args, p.id)

    # -- the loop ---------------------------------------------------------------------------
    def _build(self):
        cfg = self.cfg

        def propose(state: LoopState) -> dict:
            rnd = state.get("round", 0) + 1
            budget = cfg.max_total_tokens - state.get("tokens", 0)
            if budget < 16:
                return {"stop": f"token budget of {cfg.max_total_tokens} spent"}
            reply = self.caller.propose(state["messages"], self.tools, max_calls=cfg.max_calls,
                                        max_new_tokens=min(cfg.max_new_tokens, budget))
            tokens = state.get("tokens", 0) + reply.tokens
            checked = [self.validate(p) for p in reply.calls]
            over = checked[cfg.max_calls:]
            checked = checked[: cfg.max_calls]
            for p in over:
                p.error = p.error or OVER_LIMIT.format(n=cfg.max_calls)
            bad = [p for p in checked if p.error]
            if not reply.error and not bad:  # a call already made is not run again
                done = {_key(tc["name"], tc["args"]) for m in state["messages"] if isinstance(m, AIMessage) for tc in m.tool_calls}
                for p in checked:
                    if _key(p.name, p.arguments) in done:
                        p.error = REPEAT
                    done.add(_key(p.name, p.arguments))
            meta = {"kever_round": rnd, "kever_calls": [(p.name, p.arguments, p.error) for p in checked + over]}
            checked = [p for p in checked if not p.error] if not bad else checked
            if reply.error or bad:
                problem = reply.error or "; ".join(p.error for p in bad)
                msg = AIMessage(content=reply.raw, additional_kwargs={**meta, "kever_invalid": True})
                if not state.get("retried"):
                    fix = HumanMessage(content=self.prompt.part("repair", error=problem))
                    return {"messages": [msg, fix], "retried": True, "tokens": tokens}
                return {"messages": [msg], "tokens": tokens,
                        "stop": f"reply invalid twice in round {rnd} ({problem})"}
            ai = AIMessage(content=reply.raw, additional_kwargs=meta,
                           tool_calls=[{"name": p.name, "args": p.arguments, "id": p.id, "type": "tool_call"} for p in checked])
            return {"messages": [ai], "round": rnd if checked else state.get("round", 0), "retried": False, "tokens": tokens}

        def after_propose(state: LoopState) -> str:
            if state.get("stop"):
                return END
            if isinstance(state["messages"][-1], HumanMessage):  # a corrected retry
                return "propose"
            return tools_condition(state)

        def after_tools(state: LoopState) -> str:
            return "propose" if state.get("round", 0) < cfg.max_rounds else END

        g = StateGraph(LoopState)
        g.add_node("propose", propose)
        g.add_node("tools", ToolNode(self.tools))
        g.add_edge(START, "propose")
        g.add_conditional_edges("propose", after_propose, {"propose": "propose", "tools": "tools", END: END})
        g.add_conditional_edges("tools", after_tools, {"propose": "propose", END: END})
        return g.compile()

    def names_an_emotion(self, text: str) -> bool:
        words = re.findall(r"[a-z]+", text.lower())
        return bool(words) and all(w in self.emotion_words for w in words)

    def cue_lines(self, cues: list[Cue]) -> str:
        shown = sorted((c for c in cues if not c.source.startswith(AGENT_SOURCE)), key=lambda c: -c.confidence)
        shown = sorted(shown[: self.cfg.max_cues], key=lambda c: int(c.id[1:]) if c.id[1:].isdigit() else 0)
        return "\n".join(f"{c.id} {c.family}: {c.text}" for c in shown) or "(none)"

    def messages_for(self, cues: list[Cue]) -> list[AnyMessage]:
        fields = {"labels": ", ".join(self.labels), "max_calls": self.cfg.max_calls, "reply_shape": self.caller.reply_shape}
        sys_msg, user = self.prompt.messages(cues=self.cue_lines(cues), **fields)
        return [SystemMessage(content=sys_msg["content"]), HumanMessage(content=user["content"])]

    def run(self, cues: list[Cue]) -> AgentRun:
        t0 = time.perf_counter()
        start = {"messages": self.messages_for(cues), "round": 0, "retried": False, "tokens": 0, "stop": None}
        limit = 4 * self.cfg.max_rounds + 8
        out = self.graph.invoke(start, config={"recursion_limit": limit})
        run = self._collect(out["messages"])
        run.tokens = int(out.get("tokens", 0))
        run.seconds = time.perf_counter() - t0
        if out.get("stop"):
            kept = sum(1 for c in run.calls if c.ok)
            tail = f"; kept {kept} earlier call(s)" if kept else "; the fixed pipeline stands"
            run.warnings.append(f"knowledge agent: {out['stop']}{tail}")
        self.last_run = run
        return run

    def _collect(self, messages: list[AnyMessage]) -> AgentRun:
        run = AgentRun(messages=list(messages))
        pending: dict[str, ToolCall] = {}
        for m in messages:
            if isinstance(m, AIMessage):
                run.replies += 1
                rnd = int(m.additional_kwargs.get("kever_round", 1))
                if m.additional_kwargs.get("kever_invalid"):
                    for name, args, error in m.additional_kwargs.get("kever_calls", []):
                        run.calls.append(ToolCall(name=name, arguments=dict(args), ok=False, round=rnd,
                                                  error=error or "the reply was invalid"))
                    if not m.additional_kwargs.get("kever_calls"):
                        run.calls.append(ToolCall(name="(unparsed)", arguments={"raw": str(m.content)[:300]}, ok=False,
                                                  round=rnd, error="the reply did not parse"))
                    continue
                for name, args, error in m.additional_kwargs.get("kever_calls", []):
                    if error:  # over the per-reply limit
                        run.calls.append(ToolCall(name=name, arguments=dict(args), ok=False, round=rnd, error=error))
                for tc in m.tool_calls:
                    rec = ToolCall(name=tc["name"], arguments=dict(tc["args"]), ok=True, round=rnd)
                    pending[tc["id"]] = rec
                    run.calls.append(rec)
            elif isinstance(m, ToolMessage):
                rec = pending.get(m.tool_call_id)
                if rec is None:
                    continue
                res = m.artifact
                if m.status == "error" or res is None:
                    rec.ok, rec.error = False, str(m.content)[:300]
                    continue
                if res.error:
                    rec.ok, rec.error = False, res.error
                rec.hit_ids = [h.id for h in res.hits]
                if res.evidence and any(h.weights for h in res.hits):
                    run.evidence.append((rec, res.argument, res.hits))
        return run


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _next_id(cues: list[Cue]) -> int:
    nums = [int(c.id[1:]) for c in cues if c.id[:1] == "C" and c.id[1:].isdigit()]
    return max(nums, default=0) + 1


def consult(state: GraphState, agent: ToolAgent | None, enabled: bool = True) -> dict:
    """The graph node: run the agent on the cues; file its evidence as concept cues."""
    if agent is None or not enabled or not state.cues:
        return {}
    try:
        run = agent.run(state.cues)
    except Exception as e:  # a model or tool failure degrades to the fixed pipeline, never a crash
        log.warning("knowledge agent failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
        return {"warnings": state.warnings + [f"knowledge agent failed ({type(e).__name__}: {e}); the fixed pipeline stands"]}
    cues, retrieved = list(state.cues), list(state.retrieved)
    n = _next_id(cues)
    seen: dict[str, str] = {}
    own = {_words(c.text) for c in cues}
    for rec, text, hits in run.evidence:
        key = _words(text)
        if key in own:  # a cue's own text: the fixed pipeline searched it already, no new evidence
            continue
        if agent.names_an_emotion(text):  # the model naming an answer is not evidence about the photo
            continue
        if key in seen:  # the same concept asked twice (two tools): one cue, hits merged
            rec.cue_id = seen[key]
            hit_ids = {h.id for r in retrieved if r.cue_id == rec.cue_id for h in r.hits}
            for r in retrieved:
                if r.cue_id == rec.cue_id:
                    r.hits = r.hits + [h for h in hits if h.id not in hit_ids]
            continue
        cue_id = f"C{n}"
        n += 1
        seen[key] = cue_id
        rec.cue_id = cue_id
        cues.append(Cue(id=cue_id, family="concept", text=text, source=f"{AGENT_SOURCE}{agent.model_id}",
                        confidence=agent.cfg.confidence))
        retrieved.append(CueHits(cue_id=cue_id, hits=list(hits)))
    versions = dict(state.prompt_versions, consult=agent.prompt.ref)
    return {"cues": cues, "retrieved": retrieved, "tool_calls": state.tool_calls + run.calls,
            "warnings": state.warnings + run.warnings, "prompt_versions": versions}


__all__ = ["ToolAgent", "AgentRun", "consult", "AGENT_SOURCE"]
