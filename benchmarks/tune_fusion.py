"""Tune the fusion scalars on the development split only, from a logged evaluation run.

    kever eval run --dataset flickr_ldl --root ../shared/data/flickr_ldl_dev --preset offline --out runs/dev-full
    .venv/bin/python benchmarks/tune_fusion.py runs/dev-full --out agent/fusion_configs/flickr_dev.yaml

Every logged judgment keeps its per-stream Mikels-8 distributions (``streams``), so the
fusion can be re-computed for any weights without running a model. A coordinate search over
a small grid of stream weights, the temperature and the prior's weight maximises
``balanced_accuracy + macro_f1 - kl`` (all on the dev split). The prior is the mean vote
distribution of the tuning images. A second stage then re-picks the temperature and ``prior_mix``, the share of
the prior linearly mixed into each fused distribution (capped per image so the label does not
change, ``fusion.mix_prior``), to minimise the KL to the vote distributions; neither changes an
arg-max, so this calibrates the confidence without touching the labels: balanced accuracy and
macro-F1 stay as stage 1 left them. To estimate how the tuned fusion does on photos it has
not seen, the same search is run in repeated 5-fold cross-validation from the untuned base (tune on 4 folds, score the
fifth); those held-out figures are what the README reports. Writes the config YAML and a
JSON report (benchmarks/results/tune_fusion.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from kever.agent.config import FusionConfig, load_fusion
from kever.agent.fusion import MIKELS8, mix_prior, pool
from kever.evals import metrics as M

TUNED_STREAMS = ("colour", "faces", "objects", "text", "alignment", "vlm_cues", "deliberation")
GRID_W = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
GRID_T = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
GRID_PRIOR = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_T_CAL = (0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
GRID_MIX = tuple(round(0.05 * i, 2) for i in range(20))  # 0 .. 0.95


def load(rundir: Path):
    streams, truth_p, truth_sets = [], [], []
    for line in (rundir / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        j = r.get("judgment")
        dist = r["truth"].get("distribution")
        if not j or not dist:
            continue
        streams.append({s: np.array([q[m] for m in MIKELS8]) for s, q in j["streams"].items() if s != "prior"})
        p = np.array([dist[m] for m in MIKELS8], dtype=float)
        truth_p.append(p / p.sum())
        truth_sets.append(set(np.flatnonzero(np.isclose(p, p.max()))))
    return streams, np.array(truth_p), truth_sets


def predict(streams, cfg: FusionConfig, prior: np.ndarray | None) -> np.ndarray:
    out = []
    for s in streams:
        s = dict(s)
        if prior is not None and cfg.weight("prior") > 0:
            s["prior"] = prior
        p = pool(s, cfg)
        if prior is not None and cfg.prior_mix > 0:
            p = mix_prior(p, prior, cfg.prior_mix)
        out.append(p)
    return np.array(out)


def score(P: np.ndarray, T: np.ndarray, sets) -> dict:
    untied = [i for i, s in enumerate(sets) if len(s) == 1]
    y = np.array([next(iter(sets[i])) for i in untied])
    yhat = P[untied].argmax(axis=1)
    cm = M.confusion(y, yhat, len(MIKELS8))
    return {
        "accuracy": M.accuracy(cm),
        "balanced_accuracy": M.balanced_accuracy(cm),
        "macro_f1": M.macro_f1(cm),
        "kl": float(np.mean(M.kl(T, P))),
        "n_untied": len(untied),
        "n": len(P),
    }


def objective(m: dict) -> float:
    return m["balanced_accuracy"] + m["macro_f1"] - m["kl"]


def tune(streams, T, sets, base: FusionConfig, rounds: int = 3) -> tuple[FusionConfig, np.ndarray]:
    prior = T.mean(axis=0)
    present = sorted({k for s in streams for k in s} & set(TUNED_STREAMS))
    # streams absent from this run (e.g. the VLM's, in an offline run) keep their base weight
    weights = dict(base.weights)
    weights.update({k: base.weight(k) or 1.0 for k in present})
    weights["prior"] = 0.0
    cfg = base.model_copy(update={"weights": weights, "prior": prior.round(4).tolist(), "prior_mix": 0.0})
    best = objective(score(predict(streams, cfg, prior), T, sets))
    for _ in range(rounds):
        improved = False
        for key in present + ["prior", "temperature"]:
            grid = GRID_T if key == "temperature" else (GRID_PRIOR if key == "prior" else GRID_W)
            for v in grid:
                if key == "temperature":
                    cand = cfg.model_copy(update={"temperature": v})
                else:
                    cand = cfg.model_copy(update={"weights": dict(cfg.weights, **{key: v})})
                o = objective(score(predict(streams, cand, prior), T, sets))
                if o > best + 1e-9:
                    best, cfg, improved = o, cand, True
        if not improved:
            break
    # stage 2: temperature and prior mixture, for KL only (neither changes an arg-max, so the
    # labels, balanced accuracy and macro-F1 of stage 1 stay as they are)
    kls = {}
    for t in GRID_T_CAL:
        for m in GRID_MIX:
            cand = cfg.model_copy(update={"temperature": t, "prior_mix": m})
            kls[(t, m)] = float(np.mean(M.kl(T, predict(streams, cand, prior))))
    t, m = min(kls, key=kls.get)
    cfg = cfg.model_copy(update={"temperature": t, "prior_mix": m})
    return cfg, prior


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rundir", type=Path)
    ap.add_argument("--base", default="untuned", help="fusion config to start from (untuned: no figure has seen its test fold)")
    ap.add_argument("--out", type=Path, help="write the tuned fusion config here")
    ap.add_argument("--report", type=Path, default=Path("benchmarks/results/tune_fusion.json"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="repeated k-fold with this many shuffles (seeds 0..R-1)")
    args = ap.parse_args(argv)
    if not (args.rundir / "samples.jsonl").is_file():
        print(f"tune_fusion: {args.rundir}/samples.jsonl not found (run kever eval run first)", file=sys.stderr)
        return 2
    streams, T, sets = load(args.rundir)
    base = load_fusion(args.base)
    untuned = score(predict(streams, base, None), T, sets)

    runs = []
    for seed in range(args.repeats):  # repeated k-fold: fold noise is about +-0.02 at 350 images
        order = np.random.default_rng(seed).permutation(len(streams))
        folds = np.array_split(order, args.folds)
        P_cv = np.zeros_like(T)
        for k in range(args.folds):
            test = folds[k]
            train = np.concatenate([folds[i] for i in range(args.folds) if i != k])
            cfg_k, prior_k = tune([streams[i] for i in train], T[train], [sets[i] for i in train], base)
            P_cv[test] = predict([streams[i] for i in test], cfg_k, prior_k)
        runs.append(score(P_cv, T, sets))
    held_out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    held_out["sd"] = {k: round(float(np.std([r[k] for r in runs])), 4) for k in ("balanced_accuracy", "macro_f1", "kl")}
    held_out["repeats"] = args.repeats

    cfg, prior = tune(streams, T, sets, base)
    in_sample = score(predict(streams, cfg, prior), T, sets)
    prior_only = score(np.tile(prior, (len(T), 1)), T, sets)
    report = {
        "rundir": str(args.rundir),
        "images": len(streams),
        "untuned": untuned,
        "prior_only": prior_only,
        f"{args.folds}_fold_held_out": held_out,
        "tuned_in_sample": in_sample,
        "config": {**cfg.model_dump(), "version": f"tuned on all of {args.rundir.name}"},
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=2))
    print("weights:", cfg.weights, "temperature:", cfg.temperature, "prior_mix:", cfg.prior_mix)
    if args.out:
        data = cfg.model_dump()
        data["version"] = args.out.stem
        header = (
            "# Tuned by benchmarks/tune_fusion.py on ../shared/data/flickr_ldl_dev (development split).\n"
            f"# {args.folds}-fold held-out on dev (mean of {args.repeats} shuffles), from the untuned base: balanced accuracy {held_out['balanced_accuracy']:.3f}, "
            f"macro-F1 {held_out['macro_f1']:.3f}, KL {held_out['kl']:.3f}.\n"
            "# prior = mean vote distribution of the dev photos.\n"
            "# log p(y) = sum_s weight_s * log(q_s(y) + floor) / temperature (agent/fusion.py), then\n"
            "# p <- (1 - a) p + a prior with a = min(prior_mix, the share that keeps the label); streams:\n"
            "# colour, faces, objects, text (measured/perceived cues through the knowledge base), vlm_cues\n"
            "# (the VLM's cues through the knowledge base), alignment (CLIP or text-embedding), deliberation,\n"
            "# direct_vlm (the vlm-only baseline), prior. Streams absent from the tuning run keep their weight.\n"
        )
        args.out.write_text(header + yaml.safe_dump(data, sort_keys=False))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
