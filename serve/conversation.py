"""One chat turn as a LangGraph graph, checkpointed in SQLite per conversation.

Graph: ``understand`` -> (``judge`` | ``relabel`` | ``answer``) -> ``answer``.
- ``judge`` runs the reasoner on a new image (the only node that runs perception);
- ``relabel`` re-fuses the stored cues/evidence over another label set (``Reasoner.relabel``);
- ``answer`` writes the reply from the stored judgment (scores, cues, evidence).

The checkpointed state holds only plain data (the judgment as its JSON dict, texts, ids), and
the checkpointer's serializer is strict: msgpack revives only LangGraph's built-in safe types,
so a tampered database cannot make the server import and call arbitrary code. The image and
the reasoner travel in the run's context, which is never stored.
"""

from __future__ import annotations

import contextvars
import operator
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, TypedDict

from kever.agent.judgment import Judgment
from kever.images import LoadedImage
from kever.serve import answers
from kever.serve.intents import Intent, parse


class TurnState(TypedDict, total=False):
    text: str  # this turn's user text
    image_key: str | None  # this turn's new image (sha1), if any
    judged_key: str | None  # the image the stored judgment is about
    label_set: Any  # str name or list of labels
    default_labels: str  # label set for a new image when the turn asks for none (from the model name)
    replayed: bool  # the image came from earlier in the history (no judgment was stored for it)
    judgment: dict | None
    intent: dict
    reply: str
    turns: Annotated[list[dict], operator.add]


@dataclass
class TurnContext:
    reasoner: Any
    image: LoadedImage | None = None
    on_event: Callable[[dict], None] | None = None
    model_lock: threading.Lock = field(default_factory=threading.Lock)
    rationale: bool = True


def _isolated(fn: Callable, *args, **kwargs):
    """Call the reasoner outside this graph's run context. The reasoner runs its own LangGraph
    graph; called plainly from inside a node, LangGraph would treat it as a subgraph and
    checkpoint its state (images, model outputs) into the conversation database."""
    return contextvars.Context().run(fn, *args, **kwargs)


def _emit(ctx: TurnContext, node: str, status: str = "end", **extra) -> None:
    if ctx.on_event:
        ctx.on_event({"node": node, "status": status, **extra})


def build_graph():
    from langgraph.graph import END, START, StateGraph
    from langgraph.runtime import Runtime

    def understand(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
        j = state.get("judgment")
        labels = list(j["scores"]) if j else []
        intent = parse(state.get("text", ""), labels)
        _emit(runtime.context, "understand", intent=intent.kind)
        return {"intent": intent.model_dump(), "turns": [{"role": "user", "content": state.get("text", ""),
                                                          "image_key": state.get("image_key")}]}

    def route(state: TurnState) -> str:
        intent = Intent.model_validate(state["intent"])
        same_image = state.get("image_key") and state.get("image_key") == state.get("judged_key") and state.get("judgment")
        if state.get("image_key") and not same_image:
            return "judge"  # a new image starts a new judgment
        if state.get("judgment") and intent.kind == "relabel":
            return "relabel"
        return "answer"

    def judge(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
        ctx = runtime.context
        intent = Intent.model_validate(state["intent"])
        labels = intent.label_set if intent.kind == "relabel" else state.get("default_labels") or "mikels8"
        assert ctx.image is not None, "judge needs the turn's image"
        _emit(ctx, "judge", "start")
        with ctx.model_lock:
            j = _isolated(ctx.reasoner.explain, ctx.image, labels=labels, rationale=ctx.rationale, on_event=ctx.on_event)
        _emit(ctx, "judge")
        keep = state.get("replayed") and intent.kind not in ("relabel",)
        return {"judgment": j.model_dump(mode="json"), "judged_key": state["image_key"], "label_set": labels,
                "intent": state["intent"] if keep else Intent(kind="summary").model_dump()}

    def relabel(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
        ctx = runtime.context
        intent = Intent.model_validate(state["intent"])
        fn = getattr(ctx.reasoner, "relabel", None)
        if fn is None:
            return {"intent": Intent(kind="summary").model_dump()}
        _emit(ctx, "relabel", "start")
        with ctx.model_lock:
            j = _isolated(fn, Judgment.model_validate(state["judgment"]), intent.label_set)
        _emit(ctx, "relabel")
        return {"judgment": j.model_dump(mode="json"), "label_set": intent.label_set}

    def answer(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
        raw = state.get("judgment")
        intent = Intent.model_validate(state["intent"])
        if not raw:
            reply = answers.no_image()
        else:
            j = Judgment.model_validate(raw)
            if intent.kind == "relabel":
                reply = answers.relabeled(j)
            elif intent.kind == "contrast" and intent.label:
                reply = answers.contrast(j, intent.label)
            elif intent.kind == "support":
                reply = answers.support(j, intent.label)
            elif intent.kind == "scores":
                reply = answers.scores(j)
            else:
                reply = answers.first_answer(j)
        _emit(runtime.context, "answer")
        return {"reply": reply, "turns": [{"role": "assistant", "content": reply}]}

    g = StateGraph(TurnState, context_schema=TurnContext)
    g.add_node("understand", understand)
    g.add_node("judge", judge)
    g.add_node("relabel", relabel)
    g.add_node("answer", answer)
    g.add_edge(START, "understand")
    g.add_conditional_edges("understand", route, ["judge", "relabel", "answer"])
    g.add_edge("judge", "answer")
    g.add_edge("relabel", "answer")
    g.add_edge("answer", END)
    return g


def strict_serde():
    """The checkpointer's serializer: JSON+msgpack, msgpack revival limited to LangGraph's safe types."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=None)


class Conversations:
    """The compiled chat graph over a SQLite checkpointer; thread-safe per conversation."""

    def __init__(self, db: Path, reasoner: Any, model_lock: threading.Lock | None = None):
        from langgraph.checkpoint.sqlite import SqliteSaver

        db.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(db), check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self.saver = SqliteSaver(self._conn, serde=strict_serde())
        self.saver.setup()
        self.graph = build_graph().compile(checkpointer=self.saver)
        self.reasoner = reasoner
        self.model_lock = model_lock or threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, cid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(cid, threading.Lock())

    def has_judgment(self, cid: str) -> bool:
        snap = self.graph.get_state({"configurable": {"thread_id": cid}})
        return bool(snap.values.get("judgment"))

    def turn(self, cid: str, text: str, image: LoadedImage | None, *, default_labels: str = "mikels8",
             replayed: bool = False, on_event: Callable[[dict], None] | None = None) -> tuple[str, Judgment | None]:
        """Run one chat turn; ``image``: a new image (starts a new judgment), else a follow-up."""
        ctx = TurnContext(reasoner=self.reasoner, image=image, on_event=on_event, model_lock=self.model_lock)
        inp: TurnState = {"text": text, "image_key": image.sha1 if image is not None else None,
                          "default_labels": default_labels, "replayed": replayed}
        with self._lock(cid):
            out = self.graph.invoke(inp, {"configurable": {"thread_id": cid}}, context=ctx)
        raw = out.get("judgment")
        return out["reply"], (Judgment.model_validate(raw) if raw else None)

    def close(self) -> None:
        self._conn.close()
