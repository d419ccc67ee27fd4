"""Benchmark the knowledge agent of the ``offline-llm`` preset (Qwen2.5-Coder-1.5B on llama.cpp)
on development photos: tool calls per image, share that parsed, share that returned evidence,
seconds per image in the consult node, tokens/s (prompt and generation), cold start (model
load), peak RSS, load average; and the first ``--transcripts`` consults verbatim (what the model
read and wrote), for the notes.

    .venv/bin/python benchmarks/llm_agent_bench.py [--limit 100] [--out benchmarks/results/llm_agent.json]

Photos: ../shared/data/flickr_ldl_dev/images, the first N by numeric id (a fixed rule). Runs
without rationales (the consult node is what is measured). Needs the model file
(kever models pull --preset offline-llm); says so and exits 0 where it or the data is absent.
Also reports, as an indication only, top-1 agreement with the majority vote with and without
the agent when the ``agent`` stream is weighted ``--agent-weight`` (the decision and its weights
are learned elsewhere: knowledge/learn_associations.py). Figures are measured, never asserted; the
machine is shared, so the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kever.paths import shared_data_dir

PRESET = "offline-llm"

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
from kever.agent.assemble import _spec
from kever.agent.config import load_preset
from kever.agent.models import load_text_lm
lm = load_text_lm(_spec(load_preset(sys.argv[1]).text_lm))
t1 = time.perf_counter()
lm.generate([{"role": "user", "content": "Hi"}], max_new_tokens=1)
print(json.dumps({"load_s": t1 - t0, "first_token_s": time.perf_counter() - t1, "threads": lm.threads}))
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cold_start(preset: str) -> dict:
    out = subprocess.run([sys.executable, "-c", COLD, preset], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def votes(root: Path) -> dict[str, list[int]]:
    lines = (root / "ground_truth.txt").read_text().split("\n")[1:]
    return {p[0]: [int(x) for x in p[1:]] for p in (ln.split() for ln in lines) if len(p) == 9}


def parsed(call) -> bool:
    """The call parsed and validated (it may still not have run: a repeat, or over the limit)."""
    from kever.agent.consult import REPEAT

    return call.ok or call.error == REPEAT or (call.error or "").startswith("over the limit")


def transcript(agent, run) -> list[dict]:
    """The consult as the model saw it: the rendered chat turns (system prompt included)."""
    render = getattr(agent.caller, "render", None)
    if render is None:
        from langchain_core.messages import convert_to_openai_messages

        return convert_to_openai_messages(run.messages)
    return render(run.messages)


def summarise(report: dict, rows: list, transcripts: list, loads: list, args, complete: bool) -> None:
    """Write the report over the photos done so far (a run cut short still leaves its figures)."""
    calls = sum(x["calls"] for x in rows)
    ok = sum(x["ok"] for x in rows)
    gen_tok, gen_ms = sum(x["completion_tokens"] for x in rows), sum(x["completion_ms"] for x in rows)
    pr_tok = sum(x["prompt_tokens"] - x["cached_tokens"] for x in rows)
    pr_ms = sum(x["prompt_ms"] for x in rows)
    judged = [x for x in rows if x["majority"]]
    report.update({
        "images": len(rows),
        "complete": complete,
        "tool_calls_per_image_mean": round(calls / len(rows), 3),
        "tool_calls_per_image_median": statistics.median(x["calls"] for x in rows),
        "images_with_calls": sum(x["calls"] > 0 for x in rows),
        "calls_total": calls,
        "share_parsed": round(sum(x["parsed"] for x in rows) / calls, 4) if calls else None,
        "share_ran": round(ok / calls, 4) if calls else None,
        "share_returning_evidence": round(sum(x["evidence"] for x in rows) / ok, 4) if ok else None,
        "unparsed_replies": sum(x["unparsed"] for x in rows),
        "by_round": {k: {m: sum(x["by_round"].get(k, {}).get(m, 0) for x in rows) for m in ("proposed", "ran", "evidence")}
                     for k in sorted({k for x in rows for k in x["by_round"]})},
        "images_with_agent_warning": sum(bool(x["warnings"]) for x in rows),
        "consult_s_median": round(statistics.median(x["consult_s"] for x in rows), 3),
        "consult_s_mean": round(statistics.mean(x["consult_s"] for x in rows), 3),
        "generation_tokens_per_s": round(gen_tok / (gen_ms / 1000), 3) if gen_ms else None,
        "prompt_tokens_per_s": round(pr_tok / (pr_ms / 1000), 3) if pr_ms else None,
        "prompt_tokens_per_image_mean": round(statistics.mean(x["prompt_tokens"] for x in rows), 1),
        "cached_prompt_share": round(sum(x["cached_tokens"] for x in rows) / max(1, sum(x["prompt_tokens"] for x in rows)), 4),
        "completion_tokens_per_image_mean": round(gen_tok / len(rows), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "loadavg_during_mean": round(statistics.mean(loads), 2),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "indication_only": {
            "agent_weight": args.agent_weight,
            "top1_vs_majority_with_agent": round(sum(x["label_with_agent"] == x["majority"] for x in judged) / len(judged), 4),
            "top1_vs_majority_fixed_pipeline": round(sum(x["label_fixed"] == x["majority"] for x in judged) / len(judged), 4),
            "labels_changed_by_agent": sum(x["label_with_agent"] != x["label_fixed"] for x in rows),
        },
        "per_image": rows,
        "transcripts": transcripts,
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--transcripts", type=int, default=10)
    ap.add_argument("--agent-weight", type=float, default=1.0)
    ap.add_argument("--preset", default=PRESET)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/llm_agent.json"))
    args = ap.parse_args()
    data = shared_data_dir()
    root = data / "flickr_ldl_dev" if data else None
    if root is None or not (root / "images").is_dir():
        print("llm_agent_bench: ../shared/data/flickr_ldl_dev is absent; nothing measured", file=sys.stderr)
        return 0
    from kever.agent.assemble import _spec
    from kever.agent.config import load_preset
    from kever.agent.fusion import MIKELS8
    from kever.agent.models import weights_available

    preset = load_preset(args.preset)
    if not weights_available(_spec(preset.text_lm)):
        print(f"llm_agent_bench: the model of preset {args.preset} is not here (kever models pull --preset {args.preset}); "
              "nothing measured", file=sys.stderr)
        return 0
    images = sorted((root / "images").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)[: args.limit]
    gt = votes(root)
    report: dict = {
        "preset": args.preset, "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "data": f"flickr_ldl_dev, first {len(images)} photos by id", "cpu_count": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)), "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    report["cold_start"] = cold_start(args.preset)

    from kever.agent.reasoner import Reasoner

    t0 = time.perf_counter()
    r = Reasoner.from_preset(args.preset)
    report["reasoner_load_s"] = round(time.perf_counter() - t0, 3)
    agent, lm = r.c.agent, r.c.agent.model
    report["agent"] = {"model": agent.model_id, "protocol": agent.protocol, "config": agent.cfg.model_dump()}
    weights = dict(r.c.fusion.weights, agent=args.agent_weight)
    weighted = Reasoner(dataclasses.replace(r.c, fusion=r.c.fusion.model_copy(update={"weights": weights})))
    fixed = Reasoner(dataclasses.replace(r.c, system=r.c.system.model_copy(update={"use_agent": False})))

    rows, transcripts, loads = [], [], []
    for n, im in enumerate(images):
        before = lm.total.model_copy()
        j = weighted.explain(im, rationale=False)
        after = lm.total
        base = fixed.explain(im, rationale=False, perception=None)
        v = gt.get(im.name)
        majority = MIKELS8[max(range(8), key=lambda i: v[i])] if v else None
        calls = j.tool_calls
        rows.append({
            "image": im.name, "consult_s": j.timings.get("consult", 0.0), "calls": len(calls),
            "ok": sum(c.ok for c in calls), "evidence": sum(c.cue_id is not None for c in calls),
            "parsed": sum(parsed(c) for c in calls),
            "by_round": {str(k): {"proposed": sum(c.round == k for c in calls), "ran": sum(c.round == k and c.ok for c in calls),
                                  "evidence": sum(c.round == k and c.cue_id is not None for c in calls)}
                         for k in sorted({c.round for c in calls})},
            "unparsed": sum(c.name == "(unparsed)" for c in calls), "warnings": [w for w in j.warnings if "agent" in w],
            "prompt_tokens": after.prompt_tokens - before.prompt_tokens,
            "cached_tokens": after.cached_tokens - before.cached_tokens,
            "completion_tokens": after.completion_tokens - before.completion_tokens,
            "prompt_ms": after.prompt_ms - before.prompt_ms, "completion_ms": after.completion_ms - before.completion_ms,
            "label_with_agent": j.label, "label_fixed": base.label, "majority": majority,
            "queries": [f"{c.name}({next(iter(c.arguments.values()), '')!r})" + ("" if c.ok else f" [{c.error}]") for c in calls],
        })
        loads.append(os.getloadavg()[0])
        if n < args.transcripts and agent.last_run is not None:
            transcripts.append({"image": im.name, "turns": transcript(agent, agent.last_run),
                                "tool_calls": [c.model_dump() for c in calls]})
        print(f"[{n + 1}/{len(images)}] {im.name}: {len(calls)} calls, {rows[-1]['consult_s']:.1f} s, load {loads[-1]:.2f} "
              f"{rows[-1]['queries']}", file=sys.stderr, flush=True)

        summarise(report, rows, transcripts, loads, args, complete=n + 1 == len(images))
    summary = {k: v for k, v in report.items() if k not in ("per_image", "transcripts")}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
