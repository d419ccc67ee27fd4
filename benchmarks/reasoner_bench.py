"""Benchmark the reasoner: per-node median seconds, end-to-end median with and without the
rationale, cold start, peak RSS; for the ``offline`` preset on development photos, and for
the ``cpu`` preset's code path on tiny random models (that times the machinery, not a model).

    .venv/bin/python benchmarks/reasoner_bench.py [--limit 50] [--out benchmarks/results/reasoner.json]

Reads ../shared/data/flickr_ldl_dev (skips, saying so, where it is absent). Figures are
measured, never asserted; the machine is shared, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kever.paths import shared_data_dir

COLD = r"""
import sys, time, json
t0 = time.perf_counter()
from kever.agent.reasoner import Reasoner
r = Reasoner.from_preset(sys.argv[1])
j = r.explain(sys.argv[2], rationale=False)
print(json.dumps({"cold_start_s": time.perf_counter() - t0, "label": j.label}))
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(reasoner, images, rationale: bool) -> dict:
    nodes: dict[str, list[float]] = {}
    totals, kinds = [], {}
    for im in images:
        j = reasoner.explain(im, rationale=rationale)
        totals.append(j.timings["total"])
        for k, v in j.timings.items():
            if k != "total":
                nodes.setdefault(k, []).append(v)
        kinds[j.rationale_kind] = kinds.get(j.rationale_kind, 0) + 1
    return {
        "images": len(images),
        "end_to_end_median_s": round(statistics.median(totals), 4),
        "end_to_end_mean_s": round(statistics.mean(totals), 4),
        "per_node_median_s": {k: round(statistics.median(v), 4) for k, v in sorted(nodes.items())},
        "rationale_kinds": kinds,
    }


def cold_start(preset: str, image: Path, env=None) -> float:
    out = subprocess.run([sys.executable, "-c", COLD, preset, str(image)], capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return round(json.loads(out.stdout.strip().splitlines()[-1])["cold_start_s"], 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--tiny-limit", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reasoner.json"))
    args = ap.parse_args()
    data = shared_data_dir()
    if data is None or not (data / "flickr_ldl_dev" / "images").is_dir():
        print("reasoner_bench: ../shared/data/flickr_ldl_dev is absent; nothing measured", file=sys.stderr)
        return 0
    images = sorted((data / "flickr_ldl_dev" / "images").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)[: args.limit]
    from kever.agent.reasoner import Reasoner

    report: dict = {"cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()[0], "data": "flickr_ldl_dev (first N by id)"}
    report["offline_cold_start_s"] = cold_start("offline", images[0])
    t0 = time.perf_counter()
    r = Reasoner.from_preset("offline")
    report["offline_load_s"] = round(time.perf_counter() - t0, 3)
    r.explain(images[0], rationale=True)  # warm: text LM loaded, label prompts embedded
    report["offline_no_rationale"] = run(r, images, rationale=False)
    report["offline_with_rationale"] = run(r, images, rationale=True)
    report["offline_peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(report, indent=2), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        from kever.agent.models.tiny import write_tiny_cpu_preset

        preset = write_tiny_cpu_preset(Path(tmp))
        report["cpu_tiny_cold_start_s"] = cold_start(str(preset), images[0])
        t0 = time.perf_counter()
        rt = Reasoner.from_preset(str(preset))
        report["cpu_tiny_load_s"] = round(time.perf_counter() - t0, 3)
        rt.explain(images[0])
        small = images[: args.tiny_limit]
        report["cpu_tiny_no_rationale"] = run(rt, small, rationale=False)
        report["cpu_tiny_with_rationale"] = run(rt, small, rationale=True)
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    report["loadavg_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
