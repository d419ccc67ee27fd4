"""Throughput of the evaluation harness: bare explain_many vs the local engine vs the ray engine.

    .venv/bin/python benchmarks/eval_bench.py                          # FakeReasoner, flickr_ldl_dev
    .venv/bin/python benchmarks/eval_bench.py --system full --preset offline --limit 50   # the real reasoner

Writes benchmarks/results/eval.json and prints it. Measured, never asserted. The ray figure
includes starting a local Ray instance (reported separately) and the actors' model loading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="flickr_ldl root (default ../shared/data/flickr_ldl_dev)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--system", default="fake")
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--no-rationale", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "eval.json"))
    args = ap.parse_args(argv)

    from kever.evals.datasets import load_dataset
    from kever.evals.runner import run_eval, select
    from kever.evals.systems import build_system, labels_argument
    from kever.paths import shared_data_dir

    root = args.root or str((shared_data_dir() or Path("/nonexistent")) / "flickr_ldl_dev")
    ds = load_dataset("flickr_ldl", root)
    samples = select(ds.samples, args.limit, None)
    n = len(samples)
    rationale = not args.no_rationale
    labels = labels_argument(ds.label_set, ds.labels)
    result: dict = {"dataset": "flickr_ldl", "root": root, "n": n, "system": args.system, "preset": args.preset,
                    "batch_size": args.batch_size, "rationale": rationale, "machine": platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version()}

    t = time.perf_counter()
    system = build_system(args.preset, args.system, prior=ds.prior())
    result["build_seconds"] = round(time.perf_counter() - t, 3)
    result["models"] = dict(getattr(system, "models", {}) or {})
    system.explain_many([samples[0].image], labels=labels, rationale=rationale)  # warm-up
    t = time.perf_counter()
    for b in range(0, n, args.batch_size):
        system.explain_many([s.image for s in samples[b:b + args.batch_size]], labels=labels, rationale=rationale)
    bare = time.perf_counter() - t
    result["bare_explain_many"] = {"seconds": round(bare, 3), "images_per_s": round(n / bare, 2)}

    def warm_system(**_):  # the same, already warmed system: the comparison isolates the harness
        return system

    tmp = Path(tempfile.mkdtemp(prefix="kever_eval_bench_"))
    try:
        for bs in sorted({1, args.batch_size}):
            t = time.perf_counter()
            res = run_eval("flickr_ldl", root, limit=args.limit, system=args.system, preset=args.preset, out=tmp / f"local{bs}",
                           batch_size=bs, rationale=rationale, progress=False, report=False, reps=1000, factory=warm_system)
            total = time.perf_counter() - t
            result[f"local_engine_batch{bs}"] = {
                "seconds_total": round(total, 3), "seconds_judging": round(res.seconds, 3),
                "images_per_s": round(n / total, 2), "images_per_s_judging": round(n / res.seconds, 2)}
        # bare again, now that the local runs have warmed the same caches the first bare pass filled
        t = time.perf_counter()
        for b in range(0, n, args.batch_size):
            system.explain_many([s.image for s in samples[b:b + args.batch_size]], labels=labels, rationale=rationale)
        bare = time.perf_counter() - t
        result["bare_explain_many_again"] = {"seconds": round(bare, 3), "images_per_s": round(n / bare, 2)}
        loc = result[f"local_engine_batch{args.batch_size}"]
        per_bare = bare / n
        per_loc = loc["seconds_judging"] / n
        result["harness_overhead"] = {
            "ms_per_image": round(1000 * (per_loc - per_bare), 3),
            "ratio_judging_over_bare": round(per_loc / per_bare, 3),
            "note": "judging loop (log write + fsync + progress) over bare explain_many at the same batch size, "
                    "both on the same warmed-up system; "
                    "seconds_total also includes dataset loading, system building, scoring with 1000 bootstrap resamples"}
        del system
        t = time.perf_counter()
        res = run_eval("flickr_ldl", root, limit=args.limit, system=args.system, preset=args.preset, out=tmp / "rescore",
                       rationale=rationale, progress=False, report=True, reps=1000)
        from kever.evals.runner import rescore

        t = time.perf_counter()
        rescore(tmp / "rescore", reps=1000)
        result["rescore_with_report_seconds"] = round(time.perf_counter() - t, 3)
        if not args.skip_ray:
            try:
                import ray

                t = time.perf_counter()
                ray.init(num_cpus=args.concurrency, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
                start = time.perf_counter() - t
                t = time.perf_counter()
                res = run_eval("flickr_ldl", root, limit=args.limit, system=args.system, preset=args.preset, out=tmp / "ray",
                               engine="ray", batch_size=args.batch_size, concurrency=args.concurrency,
                               rationale=rationale, progress=False, report=False, reps=1000)
                total = time.perf_counter() - t
                result["ray_engine"] = {"ray_init_seconds": round(start, 3), "seconds_total": round(total, 3),
                                        "seconds_judging": round(res.seconds, 3), "images_per_s": round(n / res.seconds, 2),
                                        "concurrency": args.concurrency}
                ray.shutdown()
            except ImportError:
                result["ray_engine"] = "ray not installed (pip install 'kever[ray]')"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
