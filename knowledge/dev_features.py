"""Perception's dense features of the labelled development photos, cached for learning.

    .venv/bin/python -m kever.knowledge.dev_features [--data ../shared/data] [--out runs/features]

Reads ``flickr_ldl_dev``, ``emotion6_dev`` and ``twitter1_dev`` with the harness's loaders, runs
perception (colour, faces, both ImageNet models; no OCR: the table does not read text) and
writes ``<out>/<dataset>.npz`` (ids, raw features, targets). A dataset that is absent is skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from kever.knowledge.empirical import features

DATASETS = {  # name -> (folder, loader, split)
    "flickr_ldl": ("flickr_ldl_dev", "flickr_ldl", None),
    "emotion6": ("emotion6_dev", "emotion6", None),
    "twitter1": ("twitter1_dev", "twitter", "three_agree"),
}
TWITTER_AGREEMENT = {"five_agree.txt": 1.0, "four_agree.txt": 0.8, "three_agree.txt": 0.6}


def targets(name: str, root: Path, ds) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """(soft targets over the dataset's labels, labels, Emotion6 folder index or Twitter 5/4/3 level)."""
    labels = list(ds.labels)
    if name == "twitter1":
        # the share of the five workers who agreed: 5-agree 1.0, 4-agree 0.8, 3-agree 0.6
        level = {}
        for fname in ("three_agree.txt", "four_agree.txt", "five_agree.txt"):
            for line in (root / fname).read_text().split("\n"):
                if line.strip():
                    level[line.split()[0]] = {"five_agree.txt": 5, "four_agree.txt": 4, "three_agree.txt": 3}[fname]
        T, extra = [], []
        for s in ds.samples:
            share = {5: 1.0, 4: 0.8, 3: 0.6}[level[s.id]]
            y = labels.index(s.truth.label)
            t = np.full(len(labels), 1.0 - share)
            t[y] = share
            T.append(t)
            extra.append(level[s.id])
        return np.array(T), labels, np.array(extra)
    T = np.array([[s.truth.distribution[k] for k in labels] for s in ds.samples])
    extra = None
    if name == "emotion6":
        extra = np.array([labels.index(s.id.split("/")[0]) for s in ds.samples])
    return T / T.sum(1, keepdims=True), labels, extra


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--out", default="runs/features")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    from kever.evals.datasets import load_dataset
    from kever.tools.perception.perceiver import Perceiver

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    perceiver = Perceiver.load(["colour", "faces", "objects"])
    for name, (folder, loader, split) in DATASETS.items():
        if args.only and name not in args.only:
            continue
        root = Path(args.data) / folder
        if not root.is_dir():
            print(f"{name}: {root} absent, skipped", file=sys.stderr)
            continue
        ds = load_dataset(loader, root, split)
        T, labels, extra = targets(name, root, ds)
        t0 = time.time()
        X = []
        for k in range(0, len(ds.samples), 16):
            for p in perceiver.perceive_many([s.image for s in ds.samples[k:k + 16]], batch_size=16):
                x = features(p) if not isinstance(p, Exception) else None
                if x is None:
                    raise SystemExit(f"{name}: perception failed on a photo ({p})")
                X.append(x)
        np.savez_compressed(out / f"{name}.npz", ids=np.array([s.id for s in ds.samples]), X=np.array(X),
                            T=T, labels=np.array(labels), extra=extra if extra is not None else np.zeros(0))
        print(f"{name}: {len(X)} photos in {time.time() - t0:.0f} s -> {out / (name + '.npz')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
