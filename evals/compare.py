"""Side-by-side table of several runs' headline figures (``kever eval compare``).

Each row is named by its run directory and by what differs between the runs compared (system,
ablations, preset, dataset, split, root, rationale, limit), so four runs of one system stay
apart. Paired differences use each run's scored selection (``--resume --limit`` scores fewer
samples than its log holds), the same samples its row's ``n`` counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kever.errors import ConfigError
from kever.evals.metrics import LOWER_IS_BETTER
from kever.evals.rundir import METRICS, RunDir
from kever.evals.scoring import HEADLINE

COLUMNS = HEADLINE + ["accuracy_tie_any", "valence_r", "arousal_r", "n", "n_failed"]


def load_runs(paths: list[str | Path]) -> list[dict]:
    runs = []
    for p in paths:
        rd = RunDir(p)
        mpath = Path(p) / METRICS
        if not mpath.is_file():
            raise ConfigError(f"{p} has no {METRICS}", f"run `kever eval rescore {p}` first")
        m = json.loads(mpath.read_text(encoding="utf-8"))
        manifest = rd.read_manifest()
        c = manifest.config
        name = c.system + ("-no-" + "-".join(c.ablate) if c.ablate else "")
        facts = {"system": name, "preset": c.preset, "dataset": c.dataset, "split": c.split, "root": c.root,
                 "rationale": c.rationale, "limit": manifest.limit, "shard": c.shard}
        runs.append({"run": Path(p).as_posix(), "name": name, "dataset": c.dataset, "split": c.split, "preset": c.preset,
                     "facts": facts, "metrics": m})
    for r in runs:
        r["label"] = run_label(r, runs)
    return runs


def run_label(run: dict, runs: list[dict]) -> str:
    """``DIR (system full, preset offline)``: the run directory and what differs between the runs."""
    keys = [k for k in run["facts"] if len({json.dumps(r["facts"].get(k), default=str) for r in runs}) > 1]
    differs = ", ".join(f"{k} {'no' if run['facts'][k] is False else run['facts'][k]}" for k in keys)
    return run["run"] + (f" ({differs})" if differs else "")


def compare_table(runs: list[dict]) -> dict:
    cols = [c for c in COLUMNS if any(c in r["metrics"] for r in runs)]
    rows = []
    for r in runs:
        m = r["metrics"]
        rows.append({"run": r["run"], "label": r["label"], "name": r["name"], "dataset": r["dataset"], "preset": r["preset"],
                     **{c: {"value": m.get(c), "ci": (m.get("ci") or {}).get(c)} for c in cols}})
    best = {}
    for c in cols:
        vals = [(row[c]["value"], i) for i, row in enumerate(rows) if isinstance(row[c]["value"], (int, float))]
        if vals and c in HEADLINE:
            best[c] = (min if c in LOWER_IS_BETTER else max)(vals)[1]
    return {"columns": cols, "rows": rows, "best": best}


def _cell(v: dict) -> str:
    x, ci = v["value"], v["ci"]
    if x is None:
        return "–"
    s = f"{x:.3f}" if isinstance(x, float) else str(x)
    return s + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else "")


def render_text(table: dict) -> str:
    """A markdown table (renders in a terminal and pastes into a README); best values in bold."""
    cols = table["columns"]
    lines = ["| run | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for i, row in enumerate(table["rows"]):
        cells = []
        for c in cols:
            s = _cell(row[c])
            cells.append(f"**{s}**" if table["best"].get(c) == i and len(table["rows"]) > 1 else s)
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- paired differences

PAIRED = ("balanced_accuracy", "macro_f1", "accuracy", "kl")


def _arrays(path: str | Path, labels: list[str]) -> dict[str, tuple]:
    """id -> (true index or None, predicted index, per-sample KL or None) for the records the run
    scores (its selection, as its metrics count them)."""
    from kever.evals import metrics as M
    from kever.evals.scoring import predicted_distribution, predicted_index

    out = {}
    rd = RunDir(path)
    for r in rd.read_manifest().scored(rd.records()):
        t = r.truth
        true = labels.index(t.label) if t.label in labels else None
        if not r.ok:
            out[r.id] = (true, M.FAILED, None)
            continue
        q = predicted_distribution(r.judgment, labels)
        kl = None
        if t.distribution:
            p = np.array([t.distribution.get(lab, 0.0) for lab in labels], dtype=float)
            kl = float(M.kl(p[None], q[None])[0])
        out[r.id] = (true, predicted_index(r.judgment, labels, q), kl)
    return out


def paired_differences(runs: list[dict], reps: int = 1000, seed: int = 0) -> list[dict]:
    """Each run against the first, on the samples both judged: the difference (first - other)
    of each metric with a 95% paired bootstrap interval (the same resampled ids for both)."""
    from kever.evals import metrics as M

    if len(runs) < 2:
        return []
    labels = runs[0]["metrics"].get("labels")
    ref = _arrays(runs[0]["run"], labels)
    out = []
    for other in runs[1:]:
        if other["metrics"].get("labels") != labels:
            out.append({"run": other["run"], "name": other["name"], "label": other["label"],
                        "error": "different label sets: not paired"})
            continue
        oth = _arrays(other["run"], labels)
        ids = sorted(set(ref) & set(oth))
        single = [i for i in ids if ref[i][0] is not None]
        yt = np.array([ref[i][0] for i in single], dtype=int)
        ya = np.array([ref[i][1] for i in single], dtype=int)
        yb = np.array([oth[i][1] for i in single], dtype=int)
        dist = [i for i in ids if ref[i][2] is not None and oth[i][2] is not None]
        ka = np.array([ref[i][2] for i in dist])
        kb = np.array([oth[i][2] for i in dist])
        k = len(labels)
        fns = {"balanced_accuracy": M.balanced_accuracy, "macro_f1": M.macro_f1, "accuracy": M.accuracy}
        row: dict = {"run": other["run"], "name": other["name"], "label": other["label"], "n_paired": len(ids)}
        for name, fn in fns.items():
            if not len(single):
                continue

            def diff(idx, fn=fn):
                return fn(M.confusion(yt[idx], ya[idx], k)) - fn(M.confusion(yt[idx], yb[idx], k))

            row[name] = {"diff": round(float(diff(np.arange(len(single)))), 4),
                         "ci": [round(x, 4) for x in (M.bootstrap_ci(diff, len(single), reps, seed) or (np.nan, np.nan))]}
        if len(dist):
            d = ka - kb
            row["kl"] = {"diff": round(float(d.mean()), 4),
                         "ci": [round(x, 4) for x in (M.bootstrap_ci(lambda i: float(d[i].mean()), len(d), reps, seed) or (np.nan, np.nan))]}
        out.append(row)
    return out


def render_paired(rows: list[dict], reference: str) -> str:
    if not rows:
        return ""
    lines = [f"\nPaired differences, {reference} minus each run (95% paired bootstrap over the same samples; "
             "KL: lower is better, so a negative difference favours the first run):",
             "| vs | n | " + " | ".join(PAIRED) + " |", "|---|---|" + "---|" * len(PAIRED)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | – | {r['error']} |")
            continue
        cells = []
        for m in PAIRED:
            v = r.get(m)
            cells.append("–" if v is None else f"{v['diff']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]")
        lines.append(f"| {r['label']} | {r['n_paired']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
