"""Perception benchmark over ../shared/data/flickr_ldl_dev (350 Flickr photos, 11 votes each).

    .venv/bin/python benchmarks/perception_bench.py            # all images
    .venv/bin/python benchmarks/perception_bench.py --limit 50

Writes benchmarks/results/perception.json and prints it:
- per-extractor median seconds per image (objects: batch time / batch size), end-to-end median
  (one image at a time: load + all extractors), batched throughput (perceive_many);
- cold start: a fresh process, from its start to its first result (model cache warm; and once
  with an empty cache, which includes the one-time ONNX export);
- CPU seconds per image (all threads of this process), which other jobs on the machine
  disturb much less than wall time;
- peak RSS of this process and of the cold-start process;
- faces: on how many images a face was found; agreement of the largest face's expression
  valence (happy = +, sad/angry/fear/disgust = -) with the votes' valence (amusement, awe,
  contentment, excitement = +), on images where both are defined.
Timings are measured, never asserted; other work on the machine slows them (load is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kever.agent.fusion import MIKELS8

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "perception.json"
LABELS = list(MIKELS8)
POSITIVE = {"amusement", "awe", "contentment", "excitement"}

COLD_START = r"""
import sys, time
from kever.tools.perception import Perceiver
p = Perceiver.load()
r = p.perceive(sys.argv[1])
import resource
print("FIRST_RESULT", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(r.objects), flush=True)
"""


def read_votes(root: Path) -> dict[str, list[int]]:
    lines = (root / "ground_truth.txt").read_text().split("\n")
    votes = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 9:
            votes[parts[0]] = [int(v) for v in parts[1:]]
    return votes


def dominant_valence(v: list[int]) -> int | None:
    """Valence of the most-voted label; None on a tie for the top."""
    top = max(v)
    winners = [LABELS[i] for i, n in enumerate(v) if n == top]
    if len(winners) != 1:
        return None
    return 1 if winners[0] in POSITIVE else -1


def vote_valence(v: list[int]) -> int:
    """Valence most voters chose (11 votes: never tied)."""
    pos = sum(n for lab, n in zip(LABELS, v) if lab in POSITIVE)
    return 1 if pos * 2 > sum(v) else -1


def cold_start(image: Path, cache: str | None) -> dict:
    env = dict(os.environ)
    if cache is not None:
        env["KEVER_CACHE_DIR"] = cache
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", COLD_START, str(image)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("FIRST_RESULT"):
            elapsed = time.perf_counter() - t0
            rss_kb = int(line.split()[1])
            break
    else:
        raise RuntimeError(f"cold-start process failed: {proc.stderr.read()[-2000:]}")
    proc.wait()
    return {"seconds": round(elapsed, 3), "peak_rss_mb": round(rss_kb / 1024, 1)}


def median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="flickr_ldl_dev folder (default: ../shared/data/flickr_ldl_dev)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--skip-cold-start", action="store_true", help="do not start fresh processes (quick checks)")
    args = ap.parse_args()

    from kever.paths import shared_data_dir

    data = args.data or ((shared_data_dir() or Path("/nonexistent")) / "flickr_ldl_dev")
    if not (data / "ground_truth.txt").is_file():
        print(f"perception_bench: {data} is absent (development data); nothing to measure", file=sys.stderr)
        return 0
    votes = read_votes(data)
    names = sorted(votes, key=lambda n: int(Path(n).stem) if Path(n).stem.isdigit() else n)[: args.limit]
    paths = [data / "images" / n for n in names]
    load_start = os.getloadavg()

    # Cold start first, while this process holds no models (a fresh process each time).
    if args.skip_cold_start:
        cold_empty = cold_warm = {"seconds": None, "peak_rss_mb": None}
    else:
        cold_empty = cold_start(paths[0], tempfile.mkdtemp(prefix="kever-bench-cache-"))
        cold_start(paths[0], None)  # makes sure the user's cache holds the ONNX export
        cold_warm = cold_start(paths[0], None)  # a normal start: export already cached

    from kever.tools.perception import Perceiver

    t = time.perf_counter()
    perceiver = Perceiver.load()
    load_s = time.perf_counter() - t

    per_extractor: dict[str, list[float]] = {}
    e2e: list[float] = []
    e2e_cpu: list[float] = []  # CPU seconds of this process (all threads): less sensitive to other load
    results = []
    errors = []
    for path in paths:
        t, c = time.perf_counter(), time.process_time()
        try:
            p = perceiver.perceive(path)
        except Exception as e:  # noqa: BLE001 - count, never stop a benchmark
            errors.append(f"{path.name}: {e}")
            continue
        e2e.append(time.perf_counter() - t)
        e2e_cpu.append(time.process_time() - c)
        results.append((path.name, p))
        for k, v in p.timings.items():
            per_extractor.setdefault(k, []).append(v)

    t = time.perf_counter()
    batched = perceiver.perceive_many(paths, batch_size=args.batch_size)
    batch_wall = time.perf_counter() - t
    batch_objects = [p.timings["objects"] for p in batched if hasattr(p, "timings") and "objects" in p.timings]

    with_face = [(n, p) for n, p in results if p.faces]
    both = agree = 0
    both_v = agree_v = 0
    confusion = {"happy->positive": 0, "happy->negative": 0, "negative->positive": 0, "negative->negative": 0}
    dominant_counts: dict[str, int] = {}
    for n, p in with_face:
        dominant_counts[p.largest_face().dominant] = dominant_counts.get(p.largest_face().dominant, 0) + 1
        fv = p.face_valence()
        if fv is None:
            continue
        gv = dominant_valence(votes[n])
        if gv is not None:
            both += 1
            agree += int(fv == gv)
            key = ("happy" if fv > 0 else "negative") + "->" + ("positive" if gv > 0 else "negative")
            confusion[key] += 1
        vv = vote_valence(votes[n])
        both_v += 1
        agree_v += int(fv == vv)

    out = {
        "command": "python benchmarks/perception_bench.py" + (f" --limit {args.limit}" if args.limit else ""),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "note": "shared 2-core machine: other engineers' jobs ran at the same time (see loadavg); timings are upper bounds",
        "images": len(paths),
        "errors": errors,
        "models": perceiver.models,
        "median_s_per_image": {k: median(v) for k, v in per_extractor.items() if k != "total"},
        "end_to_end_median_s": median(e2e),
        "end_to_end_mean_s": round(statistics.fmean(e2e), 4) if e2e else None,
        "end_to_end_cpu_median_s": median(e2e_cpu),
        "end_to_end_p90_s": round(sorted(e2e)[int(0.9 * (len(e2e) - 1))], 4) if e2e else None,
        "batched": {"batch_size": args.batch_size, "wall_s_per_image": round(batch_wall / max(1, len(paths)), 4), "objects_median_s_per_image": median(batch_objects)},
        "model_load_in_process_s": round(load_s, 3),
        "cold_start_s": cold_warm["seconds"],
        "cold_start_empty_cache_s": cold_empty["seconds"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cold_start_process_peak_rss_mb": cold_warm["peak_rss_mb"],
        "faces": {
            "images_with_face": len(with_face),
            "share_with_face": round(len(with_face) / max(1, len(results)), 3),
            "largest_face_dominant": dict(sorted(dominant_counts.items(), key=lambda kv: -kv[1])),
            "valence_vs_dominant_vote": {"images": both, "agree": agree, "agreement": round(agree / both, 3) if both else None, "confusion": confusion},
            "valence_vs_vote_majority": {"images": both_v, "agree": agree_v, "agreement": round(agree_v / both_v, 3) if both_v else None},
            "definition": "face valence: largest face's dominant expression, happy=+1, sad/angry/fear/disgust=-1 (surprise/neutral undefined). dominant vote: the most-voted Mikels label (ties undefined), amusement/awe/contentment/excitement=+1. vote majority: more than half of the 11 votes positive.",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
