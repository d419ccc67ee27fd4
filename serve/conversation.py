"""One chat turn as a LangGraph graph over a stored conversation (:mod:`kever.serve.store`).

Graph: ``understand`` -> (``judge`` | ``relabel`` | ``answer``) -> ``answer``.
- ``judge`` runs the reasoner on a new image (the only node that runs perception);
- ``relabel`` re-fuses the stored cues/evidence over another label set (``Reasoner.relabel``):
  when the turn asks for one, or when the request's model id names another label set than
  the stored judgment's model id did (the model id always picks the label set);
- ``answer`` writes the reply from the judgment (scores, cues, evidence); for a follow-up
  ("why not fear?") the preset's language model, where it has one, answers first from the
  same judgment, checked (:mod:`kever.agent.followup`).

The graph holds no checkpointer: the turn's input is loaded from the store, and the store
writes the turn once when it is answered (a LangGraph checkpointer would snapshot the whole
state at every step). The image and the reasoner travel in the run's context.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, TypedDict

from kever.agent.judgment import Judgment
from kever.images import LoadedImage
from kever.serve import answers
from kever.serve import openai_errors as oe
from kever.serve.intents import Intent, parse
from kever.serve.store import Conversation, Store

log = logging.getLogger("kever.serve")


class TurnState(TypedDict, total=False):
    text: str  # this turn's user text
    image_key: str | None  # this turn's new image (sha1), if any
    judged_key: str | None  # the image the stored judgment is about
    label_set: Any  # the stored judgment's label set (name or list)
    default_labels: str  # the label set the request's model id picks
    model_changed: bool  # the model id differs from the one that last spoke in this conversation
    replay_labels: Any  # for an image replayed from the history: the label set the history asked for
    replayed: bool  # the image came from earlier in the history (no judgment was stored for it)
    judgment: dict | None
    judgment_changed: bool
    intent: dict
    why: str
    reply: str


@dataclass
class TurnContext:
    reasoner: Any
    image: LoadedImage | None = None
    on_event: Callable[[dict], None] | None = None
    model_lock: threading.Lock = field(default_factory=threading.Lock)
    rationale: bool = True


def _isolated(fn: Callable, *args, **kwargs):
    """Call the reasoner outside this graph's run context (the reasoner runs its own LangGraph
    graph, which must not become a subgraph of this one)."""
    return contextvars.Context().run(fn, *args, **kwargs)


def _emit(ctx: TurnContext, node: str, status: str = "end", **extra) -> None:
    if ctx.on_event:
        ctx.on_event({"node": node, "status": status, **extra})


def _model_followup(ctx: TurnContext, j: Judgment, question: str, label: str | None, composed: str) -> str:
    """The reasoner's language model answers the follow-up from the stored judgment, where the
    preset has one and the label's evidence is weighted over it (not a projected label set); its
    answer leads only if it passed its checks, else the composed answer stands alone."""
    asked = label or j.label
    if not getattr(ctx.reasoner, "writes_followups", False) or asked not in j.scores or answers.projected(j, asked):
        return composed
    _emit(ctx, "followup", "start")
    with ctx.model_lock:
        f = _isolated(ctx.reasoner.followup, j, question, asked)
    _emit(ctx, "followup")
    for note in f.notes:
        log.info("follow-up: %s", note)
    return composed if f.text is None else answers.with_model_answer(j, f.text, composed)


def build_graph():
    from langgraph.graph import END, START, StateGraph
    from langgraph.runtime import Runtime

    def understand(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
        j = state.get("judgment")
        labels = list(j["scores"]) if j else []
        intent = parse(state.get("text", ""), labels)
        _emit(runtime.context, "understand", intent=intent.kind)
        return {"intent": intent.model_dump()}

    def route(state: TurnState) -> str:
        intent = Intent.model_validate(state["intent"])
        same_image = state.get("image_key") and state.get("image_key") == state.get("judged_key") and state.get("judgment")
        if state.get("image_key") and not same_image:
            return "judge"  # a new image starts a new judgment
        if state.get("judgment") and intent.kind == "relabel":
            return "relabel"
        if state.get("judgment") and state.get("model_changed") and state.get("label_set") != state.get("default_labels"):
            return "relabel"  # the client switched model ids: that model's label set
        return "answer"

    def judge(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
        ctx = runtime.context
        intent = Intent.model_validate(state["intent"])
        # a new image is judged over the model id's label set, whatever the prompt's wording
        # ("positive or negative?" to kever-emotion6); a replayed history keeps what it asked
        # for, its last message included (a follow-up of the image it replays)
        if state.get("replayed") and intent.kind == "relabel":
            labels = intent.label_set
        else:
            labels = state.get("replay_labels") or state.get("default_labels") or "mikels8"
        assert ctx.image is not None, "judge needs the turn's image"
        _emit(ctx, "judge", "start")
        with ctx.model_lock:
            j = _isolated(ctx.reasoner.explain, ctx.image, labels=labels, rationale=ctx.rationale, on_event=ctx.on_event)
        _emit(ctx, "judge")
        keep = state.get("replayed") and intent.kind != "relabel"
        return {"judgment": j.model_dump(mode="json"), "judged_key": state["image_key"], "label_set": labels,
                "judgment_changed": True, "intent": state["intent"] if keep else Intent(kind="summary").model_dump()}

    def relabel(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
        ctx = runtime.context
        intent = Intent.model_validate(state["intent"])
        asked = intent.kind == "relabel"
        target = intent.label_set if asked else state["default_labels"]
        fn = getattr(ctx.reasoner, "relabel", None)
        if fn is None:
            return {"intent": Intent(kind="summary").model_dump()}
        _emit(ctx, "relabel", "start")
        with ctx.model_lock:
            j = _isolated(fn, Judgment.model_validate(state["judgment"]), target)
        _emit(ctx, "relabel")
        out = {"judgment": j.model_dump(mode="json"), "label_set": target, "judgment_changed": True}
        if not asked:
            out["why"] = f" for this model ({target})"
            if intent.kind == "summary":
                out["intent"] = Intent(kind="relabel", label_set=target).model_dump()
        return out

    def answer(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
        raw = state.get("judgment")
        intent = Intent.model_validate(state["intent"])
        if not raw:
            reply = answers.no_image()
        else:
            j = Judgment.model_validate(raw)
            if intent.kind == "relabel":
                reply = answers.relabeled(j, state.get("why", ""))
            elif intent.kind == "contrast" and intent.label:
                reply = _model_followup(runtime.context, j, state.get("text", ""), intent.label,
                                        answers.contrast(j, intent.label))
            elif intent.kind == "support":
                reply = _model_followup(runtime.context, j, state.get("text", ""), intent.label,
                                        answers.support(j, intent.label))
            elif intent.kind == "scores":
                reply = answers.scores(j)
            else:
                reply = answers.first_answer(j)
            if state.get("why") and intent.kind != "relabel":
                reply = f"(Re-scored over {', '.join(j.scores)}{state['why']}; perception not re-run.)\n\n" + reply
        _emit(runtime.context, "answer")
        return {"reply": reply}

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


class Conversations:
    """The compiled chat graph over the store; turns of one conversation run one at a time."""

    STRIPES = 64  # per-conversation locks, hashed onto a fixed set (memory does not grow with conversations)

    def __init__(self, store: Store, reasoner: Any, model_lock: threading.Lock | None = None):
        self.store = store
        self.graph = build_graph().compile()
        self.reasoner = reasoner
        self.model_lock = model_lock or threading.Lock()
        self._locks = [threading.Lock() for _ in range(self.STRIPES)]

    def _lock(self, cid: str) -> threading.Lock:
        return self._locks[zlib.crc32(cid.encode()) % self.STRIPES]

    def check(self, text: str, conv: Conversation) -> None:
        """Refuse a turn over the store's limits (before any work is done)."""
        lim = self.store.limits
        if len(text) > lim.max_message_chars:
            raise oe.bad_request(f"the message is {len(text):,} characters, above this server's limit of "
                                 f"{lim.max_message_chars:,}; send a shorter message", "message_too_long", "messages")
        if self.store.too_large(conv, text):
            raise oe.bad_request(f"this conversation holds {conv.stored_chars:,} characters, near its share of this "
                                 f"server's storage ({lim.max_db_bytes / 2**20:g} MB database); start a new conversation "
                                 "(a new conversation id)", "conversation_too_large", "messages")
        if conv.turns >= lim.max_turns:
            raise oe.bad_request(f"this conversation has reached this server's limit of {lim.max_turns} turns; "
                                 "start a new conversation (a new conversation id)", "conversation_too_long", "messages")

    def load(self, cid: str) -> Conversation:
        return self.store.load(cid)

    @staticmethod
    def refuse_evicted(conv: Conversation) -> None:
        """A turn without an image on a conversation the retention policy deleted: say so (409)."""
        if conv.model is None and conv.evicted:
            import datetime

            at = datetime.datetime.fromtimestamp(conv.evicted["at"], datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            raise oe.APIError(409, f"conversation {conv.id} was deleted by this server at {at} ({conv.evicted['reason']}); "
                                   "its judgment is gone: send the image again to start over",
                              "invalid_request_error", "conversation_evicted", "messages")

    def has_judgment(self, cid: str) -> bool:
        return self.store.load(cid).judgment is not None

    def turn(self, cid: str, text: str, image: LoadedImage | None, *, model: str = "kever", default_labels: str = "mikels8",
             replay_labels: Any = None, replayed: bool = False, rationale: bool = True,
             on_event: Callable[[dict], None] | None = None) -> tuple[str, Judgment | None]:
        """Run and store one chat turn; ``image``: a new image (starts a new judgment), else a follow-up.
        ``rationale=False``: a label-only answer, the judgment written without its rationale."""
        ctx = TurnContext(reasoner=self.reasoner, image=image, on_event=on_event, model_lock=self.model_lock,
                          rationale=rationale)
        with self._lock(cid):
            conv = self.store.load(cid)
            self.check(text, conv)
            inp: TurnState = {
                "text": text, "image_key": image.sha1 if image is not None else None, "default_labels": default_labels,
                "model_changed": conv.model is not None and conv.model != model, "replay_labels": replay_labels,
                "replayed": replayed, "judgment": conv.judgment.model_dump(mode="json") if conv.judgment else None,
                "judged_key": conv.judged_key, "label_set": conv.label_set, "judgment_changed": False,
            }
            out = self.graph.invoke(inp, context=ctx)
            raw = out.get("judgment")
            j = Judgment.model_validate(raw) if raw else None
            self.store.save_turn(conv, model, text, inp["image_key"], out["reply"], j, out.get("judged_key"),
                                 out.get("label_set"), bool(out.get("judgment_changed")))
        return out["reply"], j

    def close(self) -> None:
        self.store.close()
