"""Side-by-side table of several runs' headline figures (``kever eval compare``)."""

from __future__ import annotations

import json
from pathlib import Path

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
        c = rd.read_manifest().config
        name = c.system + ("-no-" + "-".join(c.ablate) if c.ablate else "")
        runs.append({"run": str(p), "name": name, "dataset": c.dataset, "split": c.split, "preset": c.preset, "metrics": m})
    return runs


def compare_table(runs: list[dict]) -> dict:
    cols = [c for c in COLUMNS if any(c in r["metrics"] for r in runs)]
    rows = []
    for r in runs:
        m = r["metrics"]
        rows.append({"run": r["run"], "name": r["name"], "dataset": r["dataset"], "preset": r["preset"],
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
        lines.append(f"| {row['name']} ({row['dataset']}, {row['preset']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)
