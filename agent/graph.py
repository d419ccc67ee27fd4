"""The LangGraph reasoning graph (design.md), built once per Reasoner from its components.

    perceive -> describe_cues -> retrieve -> align -> reconcile --(close call)--> deliberate
                                                         |   ^                        |
                                                         |   +------ retrieve <-------+
                                                         v
                                                     rationale -> END
"""

from __future__ import annotations

import time
from typing import Callable

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from kever.agent.nodes import Components, Nodes
from kever.agent.state import GraphState

NODE_NAMES = ("perceive", "describe_cues", "retrieve", "align", "reconcile", "deliberate", "rationale")


def _timed(name: str, fn: Callable[[GraphState], dict]):
    def run(state: GraphState, config: RunnableConfig) -> dict:
        emit = (config.get("configurable") or {}).get("on_event")
        if emit:
            emit({"node": name, "status": "start"})
        t0 = time.perf_counter()
        update = fn(state) or {}
        dt = time.perf_counter() - t0
        timings = dict(update.get("timings", state.timings))
        timings[name] = round(timings.get(name, 0.0) + dt, 4)
        update["timings"] = timings
        if emit:
            emit({"node": name, "status": "end", "seconds": round(dt, 4)})
        return update

    run.__name__ = name
    return run


def build_graph(components: Components):
    nodes = Nodes(components)
    g = StateGraph(GraphState)
    for name in NODE_NAMES:
        g.add_node(name, _timed(name, getattr(nodes, name)))
    g.add_edge(START, "perceive")
    g.add_edge("perceive", "describe_cues")
    g.add_edge("describe_cues", "retrieve")
    g.add_conditional_edges(
        "retrieve", lambda s: "reconcile" if s.deliberation_rounds > 0 else "align", {"reconcile": "reconcile", "align": "align"}
    )
    g.add_edge("align", "reconcile")
    g.add_conditional_edges("reconcile", nodes.should_deliberate, {"deliberate": "deliberate", "rationale": "rationale"})
    g.add_edge("deliberate", "retrieve")
    g.add_edge("rationale", END)
    return g.compile()
