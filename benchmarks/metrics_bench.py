"""Bootstrap intervals of the single-label metrics: kever's numpy metrics vs scikit-learn's.

    .venv/bin/python benchmarks/metrics_bench.py                 # n=312 (the dev split's untied images), 1000 resamples
    .venv/bin/python benchmarks/metrics_bench.py --n 5000 --reps 200

Why kever keeps its own numpy metrics (held to scikit-learn by tests/test_eval_metrics_reference.py):
``kever eval run`` and ``rescore`` bootstrap accuracy, balanced accuracy and macro-F1 1000
times each. This measures one such interval both ways on random labels (Mikels-8, 10% failed)
and checks that the two give the same interval. Writes benchmarks/results/metrics.json.
Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=312)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "metrics.json")
    args = ap.parse_args(argv)

    from sklearn import metrics as skm

    from kever.evals import metrics as M

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, args.k, args.n)
    y_pred = np.where(rng.random(args.n) < 0.4, y_true, rng.integers(0, args.k, args.n))
    y_pred = np.where(rng.random(args.n) < 0.1, M.FAILED, y_pred)

    def ours(idx):
        cm = M.confusion(y_true[idx], y_pred[idx], args.k)
        return M.accuracy(cm), M.balanced_accuracy(cm), M.macro_f1(cm)

    def sklearns(idx):
        t, p = y_true[idx], y_pred[idx]
        present = sorted((set(t.tolist()) | set(p.tolist())) - {M.FAILED})
        return (skm.accuracy_score(t, p), skm.balanced_accuracy_score(t, p),
                skm.f1_score(t, p, labels=present, average="macro", zero_division=0))

    load = os.getloadavg()
    results = {}
    intervals = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (("kever_numpy", ours), ("scikit_learn", sklearns)):
            r = np.random.default_rng(1)
            t0 = time.perf_counter()
            vals = np.array([fn(r.integers(0, args.n, args.n)) for _ in range(args.reps)])
            secs = time.perf_counter() - t0
            results[name] = {"seconds": round(secs, 3), "ms_per_resample": round(1000 * secs / args.reps, 3)}
            intervals[name] = np.quantile(vals, [0.025, 0.975], axis=0).round(6).tolist()
    out = {
        "command": f"python benchmarks/metrics_bench.py --n {args.n} --reps {args.reps} --k {args.k}",
        "what": "one bootstrap of accuracy + balanced accuracy + macro-F1 (the three single-label intervals)",
        "n": args.n, "reps": args.reps, "k": args.k, "failed_share": 0.1,
        "results": results,
        "speedup": round(results["scikit_learn"]["seconds"] / results["kever_numpy"]["seconds"], 1),
        "same_intervals": intervals["kever_numpy"] == intervals["scikit_learn"],
        "interval_kever": intervals["kever_numpy"],
        "loadavg_1_5_15_before": [round(x, 2) for x in load],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
