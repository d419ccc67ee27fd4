"""The LangGraph reasoning graph (README, "How it decides"), built once per Reasoner from its components.

    perceive -> describe_cues -> retrieve -> consult -> align -> reconcile --(close call)--> deliberate
                                                                    |   ^                        |
                                                                    |   +------ retrieve <-------+
                                                                    v
                                                                rationale -> END

``consult`` (the knowledge agent, agent/consult.py) runs on the first pass only, and does
nothing where the preset has no agent.
"""

from __future__ import annotations

import time
from typing import Callable

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from kever.agent.consult import consult
from kever.agent.nodes import Components, Nodes
from kever.agent.state import GraphState

NODE_NAMES = ("perceive", "describe_cues", "retrieve", "consult", "align", "reconcile", "deliberate", "rationale")


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
    fns = {name: getattr(nodes, name) for name in NODE_NAMES if name != "consult"}
    fns["consult"] = lambda state: consult(state, components.agent, components.system.use_agent)
    for name in NODE_NAMES:
        g.add_node(name, _timed(name, fns[name]))
    g.add_edge(START, "perceive")
    g.add_edge("perceive", "describe_cues")
    g.add_edge("describe_cues", "retrieve")
    g.add_conditional_edges(
        "retrieve", lambda s: "reconcile" if s.deliberation_rounds > 0 else "consult", {"reconcile": "reconcile", "consult": "consult"}
    )
    g.add_edge("consult", "align")
    g.add_edge("align", "reconcile")
    g.add_conditional_edges("reconcile", nodes.should_deliberate, {"deliberate": "deliberate", "rationale": "rationale"})
    g.add_edge("deliberate", "retrieve")
    g.add_edge("rationale", END)
    return g.compile()
