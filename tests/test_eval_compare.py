"""``kever eval compare`` (issue 16, defect 5): rows are named by run directory and what differs
between the runs, and the paired differences are computed on each run's scored selection (a
``--resume --limit`` run scores fewer samples than its log holds)."""

from __future__ import annotations

import json

from eval_helpers import make_flickr, run_cli

from kever.evals.runner import run_eval

VOTES = [[0, 0, 0, 0, 0, 0, 2, 9], [3, 0, 1, 0, 0, 1, 2, 4], [4, 4, 3, 0, 0, 0, 0, 0], [0, 0, 11, 0, 0, 0, 0, 0],
         [1, 1, 7, 1, 1, 0, 0, 0], [0, 9, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 5, 6, 0, 0], [2, 2, 2, 5, 0, 0, 0, 0]]


def cli(args, capsys):
    return run_cli(args, capsys)


def test_compare_names_rows_by_run_directory_and_pairs_on_the_scored_selection(tmp_path, capsys):
    root = make_flickr(tmp_path / "flickr", VOTES)
    runs = tmp_path / "runs"
    # four runs of the same system, preset and dataset: before, every row read "fake (flickr_ldl, offline)"
    for name in ("a", "b", "c"):
        run_eval("flickr_ldl", root, system="fake", out=runs / name, progress=False, reps=20)
    run_eval("flickr_ldl", root, system="majority", out=runs / "d", progress=False, reps=20)
    # c: all 8 logged, then rescored on the first 5 only (--resume --limit 5)
    run_eval("flickr_ldl", root, system="fake", out=runs / "c", progress=False, reps=20, resume=True, limit=5)
    dirs = [str(runs / n) for n in ("a", "b", "c", "d")]
    code, stdout, err = cli(["eval", "compare", *dirs, "--json", "--reps", "20"], capsys)
    assert code == 0, err
    table = json.loads(stdout)
    labels = [r["label"] for r in table["rows"]]
    assert len(set(labels)) == 4, labels
    assert all(d in lab for d, lab in zip(dirs, labels))
    assert "system majority" in labels[3] and "system fake" in labels[0]  # what differs between the runs
    assert table["rows"][2]["n"]["value"] == 5
    paired = {p["run"]: p for p in table["paired"]}
    assert paired[dirs[1]]["n_paired"] == 8
    assert paired[dirs[2]]["n_paired"] == 5  # the selection its table row shows, not the 8 logged
    assert paired[dirs[2]]["label"] == labels[2]
    code, stdout, _ = cli(["eval", "compare", *dirs, "--reps", "20"], capsys)
    text_rows = [ln for ln in stdout.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert all(any(lab in row for row in text_rows) for lab in labels), stdout
    assert "| 5 |" in stdout  # paired n of the limited run
