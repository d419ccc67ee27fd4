"""Rationales as a reader gets them: the written explanation, SmolLM2 and the local LLM, on dev photos.

    .venv/bin/python benchmarks/rationale_bench.py --limit 100 \\
        --presets offline benchmarks/presets/offline-smollm2.yaml offline-llm
    # -> benchmarks/results/rationale.json

Each preset runs in its own process (so peak RSS and cold start are its own) over the first
``--limit`` photos of ../shared/data/flickr_ldl_dev in id order, with rationales. Per preset:
the share of rationales passing each check of ``agent/rationale.py`` (for a model: its first
attempt, and the final text after one regeneration and the fallback), the share naming
something no cue or evidence mentions, how often the model's text was kept, median words,
median seconds of the rationale node and of the whole judgment, new tokens per second, cold
start (building the Reasoner), peak RSS, and the load average. For a preset with a language
model, each judgment also gets the chat follow-up "why not <runner-up>?" answered by that
model (agent/followup.py): share passing its checks first time, kept after one regeneration,
median seconds. Ten rationales each, chosen by
a fixed rule (the first ten photos), are kept verbatim. A preset whose model is not available
is reported as skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from kever.paths import shared_data_dir


def dev_images(limit: int) -> list[Path]:
    root = shared_data_dir()
    if root is None:
        return []
    names = [r.split()[0] for r in (root / "flickr_ldl_dev" / "ground_truth.txt").read_text().splitlines()[1:] if r.strip()]
    names.sort(key=lambda n: int(re.sub(r"\D", "", n) or 0))
    return [root / "flickr_ldl_dev" / "images" / n for n in names[:limit]]


class CallTap:
    """Records every chat call of a llama.cpp model (kever.agent.models.llamacpp.LlamaCppLM):
    what it was for (the knowledge agent, the rationale, a follow-up: read from the system
    prompt), prompt tokens, how many came from the cache, generated tokens, and milliseconds."""

    def __init__(self, lm):
        self.lm, self.calls = lm, []
        inner = lm.chat

        def chat(body, _inner=inner):
            out = _inner(body)
            system = next((m["content"] for m in body.get("messages", []) if m["role"] == "system"), "")
            purpose = "agent" if "affective knowledge" in system[:120] else "rationale" if "why" in system[:200].lower() else "other"
            st = lm.last
            self.calls.append({"purpose": purpose, "prompt_tokens": st.prompt_tokens, "cached_tokens": st.cached_tokens,
                               "new_prompt_tokens": st.prompt_tokens - st.cached_tokens,
                               "completion_tokens": st.completion_tokens, "prompt_ms": round(st.prompt_ms, 1),
                               "completion_ms": round(st.completion_ms, 1), "finish": st.finish_reason})
            return out

        lm.chat = chat

    def take(self) -> list[dict]:
        out, self.calls = self.calls, []
        return out


def _real_lm(r):
    lm = r.c.text_lm
    lm = getattr(lm, "_model", None) or lm  # a lazily loaded one: its model
    return lm if callable(getattr(lm, "chat", None)) and hasattr(lm, "last") else None


def _per_purpose(calls: list[dict]) -> dict:
    out = {}
    for c in calls:
        d = out.setdefault(c["purpose"], {"calls": 0, "prompt_tokens": 0, "new_prompt_tokens": 0, "completion_tokens": 0,
                                          "prompt_s": 0.0, "completion_s": 0.0})
        d["calls"] += 1
        for k in ("prompt_tokens", "new_prompt_tokens", "completion_tokens"):
            d[k] += c[k]
        d["prompt_s"] = round(d["prompt_s"] + c["prompt_ms"] / 1000, 3)
        d["completion_s"] = round(d["completion_s"] + c["completion_ms"] / 1000, 3)
    return out


def one(preset: str, limit: int, ablate: tuple[str, ...] = (), followups: bool = True, free_text: bool = False,
        paired_free_text: int = 0, partial: Path | None = None) -> dict:
    from kever.agent.followup import CHECKS as FOLLOWUP_CHECKS
    from kever.agent.rationale import CHECKS, check_all
    from kever.agent.reasoner import Reasoner
    from kever.errors import KeverError

    images = dev_images(limit)
    if free_text:  # the free-text rationale (prompt v3, checked, one regeneration) even for a model with a grammar
        import kever.agent.rationale as rationale_module

        rationale_module.fills_structures = lambda lm: False
    t0 = time.perf_counter()
    try:
        r = Reasoner.from_preset(preset, ablate=ablate)
    except KeverError as e:
        return {"preset": preset, "skipped": str(e)}
    cold = time.perf_counter() - t0
    lm = _real_lm(r)
    tap = CallTap(lm) if lm is not None else None
    rows, follow, paired, before = [], [], [], None

    def summarise(complete: bool) -> dict:
        n = len(rows)
        model_rows = [x for x in rows if x["first_failed"] is not None]

        def share(pred, among):
            return round(sum(map(pred, among)) / len(among), 3) if among else None

        out = {
            "complete": complete, "preset": preset, "ablate": list(ablate), "images": n, "models": r.models, "cold_start_s": round(cold, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_average": os.getloadavg(),
            "final": {c: share(lambda x, c=c: c not in x["final_failed"], rows) for c in CHECKS},
            "final_all_checks": share(lambda x: not x["final_failed"], rows),
            "kinds": {k: sum(x["kind"] == k for x in rows) for k in ("model", "template")},
            "median_words": float(np.median([x["words"] for x in rows])) if rows else None,
            "median_s_rationale": round(float(np.median([x["s_rationale"] for x in rows])), 4) if rows else None,
            "median_s_total": round(float(np.median([x["s_total"] for x in rows])), 3) if rows else None,
        }
        if model_rows:
            toks = sum(x["tokens"] for x in model_rows)
            secs = sum(x["s_generating"] for x in model_rows)
            out["model_first_attempt"] = {c: share(lambda x, c=c: c not in x["first_failed"], model_rows) for c in CHECKS}
            out["model_first_attempt_all_checks"] = share(lambda x: not x["first_failed"], model_rows)
            out["model_kept_after_regeneration"] = share(lambda x: x["kind"] == "model", model_rows)
            out["names_something_unseen_first_attempt"] = share(lambda x: "names nothing unseen" in x["first_failed"], model_rows)
            out["tokens_per_s"] = round(toks / secs, 2) if secs else None
        if tap is not None:
            out["where_the_time_goes"] = _time_split(rows)
            out["labels_vs_llm_agent_bench"] = _labels_vs_earlier(rows)
        if paired:
            med = lambda xs: round(float(np.median(xs)), 3)  # noqa: E731
            out["paired_before"] = {
                "photos": len(paired), "what": "each of these photos judged twice in the same process, one after the other: "
                "now (this preset as it is) and before (the knowledge agent with 2 rounds, the free-text rationale of prompt v3, "
                "checked, one regeneration): the settings of the last commit before the structured rationale",
                "kept_before": sum(p["kind"] == "model" for p in paired), "kept_now": sum(x["kind"] == "model" for x in rows[:len(paired)]),
                "same_label": sum(p["label"] == p["now"]["label"] for p in paired),
                "median_s_total": {"before": med([p["s_total"] for p in paired]), "now": med([p["now"]["s_total"] for p in paired])},
                "median_s_consult": {"before": med([p["s_consult"] for p in paired]), "now": med([p["now"]["s_consult"] for p in paired])},
                "median_s_rationale": {"before": med([p["s_rationale"] for p in paired]), "now": med([p["now"]["s_rationale"] for p in paired])},
                "rows": paired}
        if follow:
            out["followup"] = {
                "asked": len(follow), "question": "why not <runner-up>?",
                "first_attempt_all_checks": share(lambda x: not x["first_failed"], follow),
                "kept_after_regeneration": share(lambda x: x["answer"] is not None, follow),
                "first_failed_counts": {c: sum(c in (x["first_failed"] or []) for x in follow) for c in FOLLOWUP_CHECKS},
                "median_s": round(float(np.median([x["s"] for x in follow])), 2),
                "ten": follow[:10],
            }
        out["ten"] = [{k: x[k] for k in ("image", "label", "kind", "rationale", "first_text", "first_failed")} for x in rows[:10]]
        if tap is not None:  # every output, to be read
            out["all"] = [{k: x[k] for k in ("image", "label", "kind", "rationale", "first_text", "first_failed", "attempts",
                                              "s_total", "s_consult", "s_rationale", "llm", "notes", "answers")} for x in rows]
        return out

    for path in images:
        j = r.explain(path, rationale=True)
        calls = tap.take() if tap else []
        if len(rows) < paired_free_text:  # the same photo judged as before: 2 agent rounds, free-text rationale
            import kever.agent.rationale as rationale_module

            if before is None:
                before = _before(r)
            structured, rationale_module.fills_structures = rationale_module.fills_structures, lambda lm: False
            try:
                b = before.explain(path, rationale=True)
            finally:
                rationale_module.fills_structures = structured
            paired.append({"image": path.name, "label": b.label, "kind": b.rationale_kind, "rationale": b.rationale,
                           "attempts": [a.failed for a in b.rationale_attempts], "s_total": b.timings.get("total", 0.0),
                           "s_consult": b.timings.get("consult", 0.0), "s_rationale": b.timings.get("rationale", 0.0),
                           "llm": _per_purpose(tap.take() if tap else []),
                           "now": {"label": j.label, "s_total": j.timings.get("total", 0.0),
                                   "s_consult": j.timings.get("consult", 0.0), "s_rationale": j.timings.get("rationale", 0.0)}})
            print(f"  before: {b.rationale_kind} {b.timings.get('total', 0):.1f}s (consult {b.timings.get('consult', 0):.1f}s, "
                  f"rationale {b.timings.get('rationale', 0):.1f}s)", file=sys.stderr, flush=True)
        state = _State(j, r.labelset(None))
        final = check_all(j.rationale, state)
        first = j.rationale_attempts[0] if j.rationale_attempts else None
        if followups and r.writes_followups:  # a chat follow-up about the runner-up, answered by the same model
            runner = sorted(j.scores, key=lambda k: -j.scores[k])[1]
            t1 = time.perf_counter()
            f = r.followup(j, f"why not {runner}?", runner)
            follow.append({"image": path.name, "question": f"why not {runner}?", "label": j.label, "answer": f.text,
                           "first_text": f.attempts[0].text if f.attempts else None,
                           "first_failed": f.attempts[0].failed if f.attempts else None, "attempts": len(f.attempts),
                           "s": round(time.perf_counter() - t1, 3)})
        rows.append({
            "image": path.name, "label": j.label, "kind": j.rationale_kind, "rationale": j.rationale,
            "final_failed": [k for k, v in final.items() if v],
            "first_failed": first.failed if first else None,
            "first_text": first.text if first else None,
            "attempts": len(j.rationale_attempts),
            "words": len(re.findall(r"[A-Za-z']+", re.sub(r"\[[CE]\d+\]", " ", j.rationale or ""))),
            "s_rationale": j.timings.get("rationale", 0.0), "s_total": j.timings.get("total", 0.0),
            "tokens": sum(a.new_tokens or 0 for a in j.rationale_attempts),
            "s_generating": sum(a.seconds for a in j.rationale_attempts),
            "s_consult": j.timings.get("consult", 0.0), "llm": _per_purpose(calls),
            "notes": [w for w in j.warnings if "rationale" in w],
            "answers": [{"answer": a.answer, "dropped": a.dropped} for a in j.rationale_attempts if a.answer is not None],
        })
        print(f"{path.name}: {j.rationale_kind} {j.timings.get('total', 0):.1f}s "
              f"(consult {j.timings.get('consult', 0):.1f}s, rationale {j.timings.get('rationale', 0):.1f}s)",
              file=sys.stderr, flush=True)
        if partial is not None:  # what is measured so far, should the run be stopped
            partial.write_text(json.dumps(summarise(False), indent=2))
    return summarise(True)


def _labels_vs_earlier(rows: list[dict]) -> dict | None:
    """This run's labels against benchmarks/results/llm_agent.json (the same photos judged
    earlier with the agent's settings of then, and without the agent), and against each
    photo's majority vote there."""
    path = Path(__file__).parent / "results" / "llm_agent.json"
    if not path.is_file():
        return None
    earlier = json.loads(path.read_text())
    per = {x["image"]: x for x in earlier.get("per_image", [])}
    both = [(x, per[x["image"]]) for x in rows if x["image"] in per]
    if not both:
        return None
    return {"photos": len(both), "earlier_agent": earlier.get("agent"),
            "same_label_as_earlier_agent": sum(x["label"] == e["label_with_agent"] for x, e in both),
            "same_label_as_no_agent": sum(x["label"] == e["label_fixed"] for x, e in both),
            "majority_vote_hits": {"now": sum(x["label"] == e["majority"] for x, e in both),
                                   "earlier_agent": sum(e["label_with_agent"] == e["majority"] for _, e in both),
                                   "no_agent": sum(e["label_fixed"] == e["majority"] for _, e in both)}}


def _time_split(rows: list[dict]) -> dict:
    """Medians per judgment: the whole judgment, the consult node, the rationale node, and for
    each purpose of the LLM its calls, prompt tokens (all, and not from the cache), generated
    tokens, and the seconds llama.cpp spent reading the prompt and generating."""
    def med(xs):
        return round(float(np.median(xs)), 3) if xs else None

    out = {"median_s_total": med([x["s_total"] for x in rows]), "median_s_consult": med([x["s_consult"] for x in rows]),
           "median_s_rationale": med([x["s_rationale"] for x in rows])}
    for purpose in sorted({p for x in rows for p in x["llm"]}):
        per = [x["llm"].get(purpose, {}) for x in rows]
        out[purpose] = {k: med([d.get(k, 0) for d in per]) for k in
                        ("calls", "prompt_tokens", "new_prompt_tokens", "completion_tokens", "prompt_s", "completion_s")}
    return out


def _before(r):
    """A Reasoner sharing ``r``'s components and model, with the knowledge agent of before (2 rounds)."""
    import dataclasses

    from kever.agent.consult import ToolAgent
    from kever.agent.reasoner import Reasoner

    agent = r.c.agent
    if agent is not None:
        agent = ToolAgent(agent.model, r.c.kb, agent.cfg.model_copy(update={"max_rounds": 2}))
    return Reasoner(dataclasses.replace(r.c, agent=agent, _cache={}))


class _State:
    """A judgment as the checks read it (with its label set)."""

    def __init__(self, j, labels):
        self._j, self.labels = j, labels

    def __getattr__(self, name):
        return getattr(self._j, name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--presets", nargs="+", default=["offline", "benchmarks/presets/offline-smollm2.yaml", "offline-llm"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/rationale.json"))
    ap.add_argument("--ablate", nargs="*", default=[], help="parts switched off in every preset (e.g. agent)")
    ap.add_argument("--no-followups", action="store_true", help="skip the chat follow-up after each judgment")
    ap.add_argument("--free-text", action="store_true",
                    help="the model writes free text (rationale prompt v3) even where it could fill the structure (v4)")
    ap.add_argument("--paired-free-text", type=int, default=0, metavar="N",
                    help="on the first N photos also judge each photo as before (agent 2 rounds, free-text rationale)")
    ap.add_argument("--partial", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.limit, tuple(args.ablate), not args.no_followups, args.free_text,
                             args.paired_free_text, args.partial)))
        return 0
    if not dev_images(1):
        print("rationale_bench: ../shared/data is absent; nothing to measure")
        return 0
    results = []
    for preset in args.presets:
        print(f"rationale_bench: {preset} on {args.limit} dev photos ...", file=sys.stderr, flush=True)
        p = subprocess.run([sys.executable, __file__, "--one", preset, "--limit", str(args.limit), "--ablate", *args.ablate,
                            *(["--no-followups"] if args.no_followups else []),
                            *(["--free-text"] if args.free_text else []), "--paired-free-text", str(args.paired_free_text),
                            "--partial", str(args.out.with_suffix(".partial.json"))],
                           stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            results.append({"preset": preset, "skipped": f"exit {p.returncode} (its stderr is above)"})
        else:
            results.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(json.dumps({k: v for k, v in results[-1].items() if k not in ("ten", "all")}, indent=1), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(["benchmarks/rationale_bench.py", *(argv or sys.argv[1:])]),
                                    "limit": args.limit, "ablate": args.ablate, "free_text": args.free_text,
                                    "results": results}, indent=2))
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
