"""A check that is not Flickr: valence of the BASS silhouettes through the same system.

    .venv/bin/python benchmarks/bass_check.py [--limit N]     # -> benchmarks/results/bass.json

BASS (Kawai, Lukacs & Ansorge 2021, CC-BY 4.0; ../shared/data/bass): 583 bicolour silhouettes
with mean valence ratings (1-9) from a US and a Chinese sample. kever's judgment valence (the
fused Mikels-8 distribution times each emotion's curated typical valence) and the same
read-out of the text-zeroshot baseline's distribution are correlated with the ratings (Pearson
r with a 95% bootstrap interval, and their paired difference). Nothing here is fitted to BASS.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from kever.evals import metrics as M
from kever.paths import shared_data_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bass.json"))
    args = ap.parse_args(argv)
    root = shared_data_dir()
    if root is None or not (root / "bass" / "BASS_data.csv").is_file():
        print("bass_check: ../shared/data/bass is absent; nothing to check")
        return 0
    rows = list(csv.DictReader((root / "bass" / "BASS_data.csv").open(encoding="utf-8")))[: args.limit]
    paths = [root / "bass" / "images" / r["file_name"].strip() for r in rows]
    us = np.array([float(r["val_mean_us"]) for r in rows])
    ch = np.array([float(r["val_mean_ch"]) for r in rows])

    from kever.agent.baselines import build_baseline
    from kever.agent.fusion import MIKELS8
    from kever.agent.reasoner import Reasoner

    t0 = time.perf_counter()
    r = Reasoner.from_preset(args.preset)
    full = r.explain_many(paths, rationale=False)
    v_full = np.array([j.valence for j in full])
    vals = np.array([r.c.kb.define(m, "mikels8").valence for m in MIKELS8])
    zs = build_baseline("text-zeroshot", args.preset).explain_many(paths)
    v_zs = np.array([np.array([j.scores[m] for m in MIKELS8]) @ vals for j in zs])
    seconds = time.perf_counter() - t0

    def r_ci(x, y):
        return {"r": round(M.pearson(x, y), 4),
                "ci": [round(v, 4) for v in M.bootstrap_ci(lambda i: M.pearson(x[i], y[i]), len(x), 1000, 0)]}

    def diff(x1, x2, y):
        d = M.bootstrap_ci(lambda i: M.pearson(x1[i], y[i]) - M.pearson(x2[i], y[i]), len(y), 1000, 0)
        return {"diff": round(M.pearson(x1, y) - M.pearson(x2, y), 4), "ci": [round(v, 4) for v in d]}

    out = {
        "images": len(rows), "preset": args.preset, "seconds": round(seconds, 1),
        "full": {"us": r_ci(v_full, us), "ch": r_ci(v_full, ch)},
        "text-zeroshot": {"us": r_ci(v_zs, us), "ch": r_ci(v_zs, ch)},
        "full_minus_zeroshot": {"us": diff(v_full, v_zs, us), "ch": diff(v_full, v_zs, ch)},
        "labels": {lab: int(sum(j.label == lab for j in full)) for lab in MIKELS8},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
