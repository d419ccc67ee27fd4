"""What the knowledge agent's retrieval does to the label: paired, on the photos the agent ran on.

    .venv/bin/python benchmarks/agent_effect.py     # reads results/llm_agent.json -> results/agent_effect.json

``benchmarks/llm_agent_bench.py`` judged each photo twice in one process: with the agent
(``offline-llm``: the local LLM's tool calls become the ``agent`` stream, weight 1) and with the
fixed pipeline (the same preset, agent off). This script scores both label lists against each
photo's majority label (accuracy, balanced accuracy, macro-F1) and gives the paired bootstrap
interval of each difference (photos resampled together). Nothing is fitted here; the agent
stream's weight is the design point 1, not fitted. The rest of the fusion was fitted on all of
dev (``fusion_configs/default.yaml``), so both arms are in-sample for those weights and the
difference, not either level, is the figure to read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from kever.evals import metrics as M

RESULTS = Path(__file__).parent / "results"


def scores(y: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    cm = M.confusion(y, p, k)
    return {"accuracy": M.accuracy(cm), "balanced_accuracy": M.balanced_accuracy(cm), "macro_f1": M.macro_f1(cm)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=RESULTS / "llm_agent.json")
    ap.add_argument("--out", type=Path, default=RESULTS / "agent_effect.json")
    ap.add_argument("--reps", type=int, default=2000)
    args = ap.parse_args(argv)
    if not args.source.is_file():
        print(f"agent_effect: {args.source} is absent; run benchmarks/llm_agent_bench.py first")
        return 1
    src = json.loads(args.source.read_text())
    rows = [r for r in src["per_image"] if r.get("label_with_agent") and r.get("label_fixed") and r.get("majority")]
    labels = sorted({r["majority"] for r in rows} | {r["label_with_agent"] for r in rows} | {r["label_fixed"] for r in rows})
    idx = {l: i for i, l in enumerate(labels)}
    y = np.array([idx[r["majority"]] for r in rows])
    agent = np.array([idx[r["label_with_agent"]] for r in rows])
    fixed = np.array([idx[r["label_fixed"]] for r in rows])
    k = len(labels)
    a, f = scores(y, agent, k), scores(y, fixed, k)
    rng = np.random.default_rng(0)
    boots = {m: [] for m in a}
    for _ in range(args.reps):
        s = rng.integers(0, len(y), len(y))
        sa, sf = scores(y[s], agent[s], k), scores(y[s], fixed[s], k)
        for m in a:
            boots[m].append(sa[m] - sf[m])
    diff = {m: {"value": round(a[m] - f[m], 4),
                "ci95": [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)]}
            for m, v in boots.items()}
    out = {
        "command": "benchmarks/agent_effect.py", "source": str(args.source.name), "source_command": src.get("command"),
        "data": src.get("data"), "photos": len(rows), "complete_source": src.get("complete"),
        "agent_weight": (src.get("indication_only") or {}).get("agent_weight", 1.0), "fitted_parameters": 0,
        "with_agent": {m: round(v, 4) for m, v in a.items()}, "fixed_pipeline": {m: round(v, 4) for m, v in f.items()},
        "difference_agent_minus_fixed": diff, "labels_changed": int((agent != fixed).sum()),
        "changed_to_right": int(((agent != fixed) & (agent == y)).sum()),
        "changed_from_right": int(((agent != fixed) & (fixed == y)).sum()),
        "reps": args.reps,
        "caveat": "in-sample for the fitted fusion weights; agent weight not fitted (no CV: the agent ran on 96 photos only)",
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("photos", "with_agent", "fixed_pipeline", "difference_agent_minus_fixed",
                                          "labels_changed", "changed_to_right", "changed_from_right")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
