"""Fit the decision on the dev split and estimate it honestly, from logged evaluation runs.

    R=../shared/data/flickr_ldl_dev
    for s in full text-zeroshot lexicon; do
      .venv/bin/kever eval run --dataset flickr_ldl --root $R --preset offline-untuned --no-rationale \\
        --system $s --out runs/dev-$s
    done
    .venv/bin/python benchmarks/tune_fusion.py runs/dev-full --zeroshot runs/dev-text-zeroshot \\
        --lexicon runs/dev-lexicon --out agent/fusion_configs/default.yaml --cv-runs runs/cv
    .venv/bin/kever eval compare runs/cv/full runs/cv/text-zeroshot runs/cv/lexicon runs/cv/prior ...

The ``full`` run must be made with the untuned fusion config (preset ``offline-untuned``) so that its
logged streams carry no fitted choice. Every system below is the same *procedure* run inside
repeated 5-fold cross-validation (fit on four folds, predict the fifth; 3 shuffles); the
held-out figures are the estimate to quote. The final config is then fitted once on all the
dev photos (its in-sample figures are printed beside, to show the gap). What is fitted, per
procedure, is in ``kever.evals.fitting``: ``full`` fits one weight per stream (regularisation
strength by an inner CV), a temperature, the prior (8 base rates) and a prior mixture share. Writes the JSON report (``benchmarks/results/tune_fusion.json``), one run
directory of held-out predictions per system (``--cv-runs``), and the fitted config (``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

from kever.agent.config import load_fusion
from kever.evals import fitting as F


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rundir", type=Path, help="a `full` run on dev made with --preset offline-untuned")
    ap.add_argument("--zeroshot", type=Path, help="a text-zeroshot run on the same images")
    ap.add_argument("--lexicon", type=Path, help="a lexicon run on the same images")
    ap.add_argument("--base", default="untuned", help="the design point fitting starts from and is pulled toward")
    ap.add_argument("--out", type=Path, help="write the config fitted on all images here")
    ap.add_argument("--cv-runs", type=Path, help="write each system's held-out predictions as a run directory here")
    ap.add_argument("--report", type=Path, default=Path("benchmarks/results/tune_fusion.json"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ablation-repeats", type=int, default=1, help="shuffles for the ablations (only-/without-/balance)")
    ap.add_argument("--only", nargs="*", help="run just these procedures (names as printed)")
    args = ap.parse_args(argv)
    for p in (args.rundir, args.zeroshot, args.lexicon):
        if p is not None and not (p / "samples.jsonl").is_file():
            print(f"tune_fusion: {p}/samples.jsonl not found (run kever eval run first)", file=sys.stderr)
            return 2
    base = load_fusion(args.base)
    data, recs = F.load_run(args.rundir)
    streams = [s for s in data.streams() if s not in ("prior",)]
    procedures: dict[str, tuple[F.Procedure, F.Logged, list, str]] = {}
    notes: list = []
    procedures["full"] = (F.full_procedure(base, streams, notes=notes), data, recs,
                          f"full: {len(streams)} stream weights + temperature + prior (8) + prior mixture, fitted per fold; lambda by inner CV")
    procedures["full-untuned"] = (F.untuned_procedure(base, streams), data, recs, "the design point, nothing fitted")
    procedures["full-with-bias"] = (F.full_procedure(base, streams, bias=True), data, recs,
                                    "stream weights and 8 class biases (the first procedure tried)")
    for s in streams:
        procedures[f"only-{s}"] = (F.full_procedure(base, [s]), data, recs, f"the {s} stream alone, fitted the same way")
        rest = [x for x in streams if x != s]
        if rest:
            procedures[f"without-{s}"] = (F.full_procedure(base, rest), data, recs, f"every stream but {s}, fitted the same way")
    procedures["prior"] = (F.prior_procedure(), data, recs, "the fitting folds' mean vote distribution (uses dev labels)")
    if args.zeroshot:
        zs, zrecs = F.load_run(args.zeroshot)
        procedures["text-zeroshot"] = (F.temperature_procedure("alignment"), zs, zrecs, "the naive recipe; a temperature fitted for KL")
    if args.lexicon:
        lx, lrecs = F.load_run(args.lexicon)
        procedures["lexicon"] = (F.untuned_procedure(F.FusionConfig(weights={"lexicon": 1.0}), ["lexicon"]), lx, lrecs, "EmoLex over the same words, nothing fitted")

    report: dict = {"rundir": str(args.rundir), "images": len(data), "streams": streams, "cv": {}}
    for name, (proc, d, rr, note) in procedures.items():
        if args.only and name not in args.only:
            continue
        main_system = name in ("full", "full-untuned", "prior", "text-zeroshot", "lexicon")
        res = F.cross_validate(d, proc, args.folds, args.repeats if main_system else args.ablation_repeats)
        y, P = res.pop("predictions")
        report["cv"][name] = {"note": note, **res}
        print(f"{name:28s} " + "  ".join(f"{k} {v:.3f}±{res['sd'][k]:.3f}" for k, v in res["mean"].items()), flush=True)
        if args.cv_runs:
            F.write_cv_run(args.cv_runs / name, name, rr, d, y, P, f"held-out predictions (5-fold CV, repeat 0): {note}")
    report["full_fold_fits"] = notes[: args.folds]

    # the shipped config: the same procedure on every dev photo
    cfg, lam, table = F.fit_final(data, base, streams)
    if args.zeroshot:
        zcfg = F.fit_calibration(zs, F.FusionConfig(weights={"alignment": 1.0}), ["alignment"], mix=False)
        cfg = cfg.model_copy(update={"zeroshot_temperature": zcfg.temperature})
    y, P, _ = F.predict(data, cfg, streams)
    in_sample = F.score(y, P, data.t)
    cv = report["cv"]["full"]["mean"]
    n_params = len(streams) + 1 + 8 + 1
    cfg = cfg.model_copy(update={"version": "flickr-dev-fit", "fitted": {
        "on": f"{len(data)} photos of flickr_ldl_dev (development split), streams logged in {args.rundir.name}",
        "parameters": f"{n_params}: {len(streams)} stream weights, temperature, prior (8 base rates), prior mixture"
                      + (", zeroshot_temperature (baseline)" if args.zeroshot else ""),
        "lambda": lam,
        "cv_5fold_x3": {k: round(v, 4) for k, v in cv.items()},
        "in_sample": {k: round(v, 4) for k, v in in_sample.items()},
    }})
    report["fitted_on_all"] = {"config": cfg.model_dump(), "in_sample": in_sample, "lambda": lam,
                               "inner_cv_loss": table, "parameters": n_params}
    print(f"{'fitted on all dev (in-sample)':28s} " + "  ".join(f"{k} {v:.3f}" for k, v in in_sample.items()))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(F.dump(report))
    if args.out:
        header = ("# Fitted by benchmarks/tune_fusion.py on ../shared/data/flickr_ldl_dev (see `fitted`): do not edit by hand.\n"
                  "# The decision is agent/fusion.py; the fitting procedure is kever/evals/fitting.py; the design\n"
                  "# point it starts from and is regularised toward is fusion_configs/untuned.yaml.\n")
        data_out = cfg.model_dump()
        args.out.write_text(header + yaml.safe_dump(data_out, sort_keys=False))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
