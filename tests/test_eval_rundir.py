"""The run directory under careless use (issue 11): two runs into one ``--out`` at once, a
stale lock, ``--resume --limit`` below what is logged, a corrupt line in the middle of the log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from eval_helpers import make_class_folders, make_flickr, run_cli

from kever.evals.rundir import RunDir, RunInUse
from kever.evals.runner import rescore, run_eval

VOTES = [[0, 0, 0, 0, 0, 0, 2, 9], [3, 0, 1, 0, 0, 1, 2, 4], [4, 4, 3, 0, 0, 0, 0, 0], [0, 0, 11, 0, 0, 0, 0, 0],
         [1, 1, 7, 1, 1, 0, 0, 0], [0, 9, 1, 1, 0, 0, 0, 0]]

#: a system that judges two images, then waits until the file named by $KEVER_TEST_GATE exists
#: (at most 120 s): the run stays in progress for as long as the test needs, whatever the load
GATED_FACTORY = """
import os, time
from pathlib import Path
from kever.evals.systems import fake_system

class Gated:
    def __init__(self):
        self.inner = fake_system()
        self.models = {"reasoner": "gated-fake"}
        self.calls = 0

    def explain_many(self, images, labels=None, rationale=True):
        self.calls += 1
        gate = Path(os.environ["KEVER_TEST_GATE"])
        deadline = time.time() + 120
        while self.calls > 2 and not gate.exists() and time.time() < deadline:
            time.sleep(0.05)
        return self.inner.explain_many(images, labels=labels, rationale=rationale)

def make(preset, system, ablate, prior):
    return Gated()
"""

#: holds the run dir's lock, says so on stdout, then sleeps until killed
HOLDER = """
import sys, time
from kever.evals.rundir import RunDir
with RunDir(sys.argv[1]).locked("test holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def lines(rundir: Path) -> list[dict]:
    return [json.loads(x) for x in (rundir / "samples.jsonl").read_text().splitlines() if x.strip()]


def cli(args, capsys):
    return run_cli(args, capsys)


@pytest.fixture
def flickr(tmp_path):
    return make_flickr(tmp_path / "flickr", VOTES)


@pytest.fixture
def gated_env(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "gatedsys.py").write_text(textwrap.dedent(GATED_FACTORY))
    return dict(os.environ, PYTHONPATH=str(tmp_path / "mods") + os.pathsep + os.environ.get("PYTHONPATH", ""),
                KEVER_TEST_GATE=str(tmp_path / "gate"))


def kever_eval(root: Path, out: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kever", "eval", "run", "--dataset", "fi", "--root", str(root),
                             "--factory", "gatedsys:make", "--out", str(out), "--no-progress", "--reps", "20", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_lines(log: Path, n: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended early: {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("the first run wrote nothing")


# ---- defect 3: a lock on the run directory ----------------------------------------------

def test_second_run_into_the_same_out_fails_at_once_naming_the_holder(tmp_path, gated_env):
    root = make_class_folders(tmp_path / "fi", {"awe": 10, "fear": 10})
    out = tmp_path / "run"
    first = kever_eval(root, out, gated_env)
    try:
        wait_for_lines(out / "samples.jsonl", 2, first)  # it judged two, and waits at the gate
        for extra in ((), ("--resume",)):  # a fresh run and a resume are both refused while it runs
            t0 = time.time()
            second = kever_eval(root, out, gated_env, *extra)
            _, err = second.communicate(timeout=100)
            assert second.returncode != 0, err
            assert "Traceback" not in err and "FileNotFoundError" not in err
            err_lines = [x for x in err.splitlines() if x.strip()]
            assert len(err_lines) == 1, err
            assert err_lines[0].startswith("kever: error: ") and "is in use" in err_lines[0]
            assert f"pid {first.pid}" in err_lines[0] and "kever eval run" in err_lines[0]
            assert "wait for it" in err_lines[0] and "--out" in err_lines[0]
            # refused at once, without waiting for the lock: the first run is still at its gate
            assert first.poll() is None, f"the refusal took {time.time() - t0:.1f}s, after the first run ended"
        (tmp_path / "gate").touch()
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    ids = [r["id"] for r in lines(out)]
    assert len(ids) == len(set(ids)) == 20  # no duplicates: only the first run judged


def test_a_killed_holder_does_not_block_and_a_live_one_does(flickr, tmp_path):
    out = tmp_path / "r"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUse, match=rf"pid {holder.pid}\b.*test holder"):
            run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False, reps=20)
        assert not (out / "manifest.json").exists() and not (out / "samples.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # the kernel dropped the dead holder's lock: the run goes ahead without any clean-up
    res = run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False, reps=20)
    assert res.done_now == 6
    # and the lock is free again once the run is over
    with RunDir(out).locked("after"):
        pass


def test_rescore_and_merge_refuse_a_run_in_use(flickr, tmp_path, capsys):
    out = tmp_path / "r"
    run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False, reps=20)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = cli(["eval", "rescore", str(out), "--reps", "20"], capsys)
        assert code != 0 and "is in use" in err and f"pid {holder.pid}" in err and err.count("\n") == 1
        code, _, err = cli(["eval", "merge", str(tmp_path / "m"), str(out), "--reps", "20"], capsys)
        assert code != 0 and "is in use" in err and err.count("\n") == 1
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert rescore(out, reps=20)["n"] == 6


def test_metrics_and_manifest_writes_leave_no_temp_files(flickr, tmp_path):
    out = tmp_path / "r"
    run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False, reps=20)
    rescore(out, reps=20)
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name or p.name.startswith("tmp")]


# ---- defect 4: --resume --limit below what the log holds ---------------------------------

def test_resume_with_a_smaller_limit_scores_only_the_selection(flickr, tmp_path, capsys):
    out = tmp_path / "r"
    full = run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False, reps=20).metrics
    assert full["n"] == 6
    code, stdout, err = cli(["eval", "run", "--dataset", "flickr_ldl", "--root", str(flickr), "--system", "fake",
                             "--out", str(out), "--resume", "--limit", "4", "--no-progress", "--reps", "20"], capsys)
    assert code == 0, err
    assert "4 samples (0 judged now, 4 already done" in stdout
    assert "scored 4 of the 6 logged samples" in stdout and "the other 2 stay in samples.jsonl" in stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 4 and m["n_logged"] == 6 and m["n_unscored"] == 2
    assert m["run"]["n_expected"] == 4 and m["run"]["limit"] == 4
    scored = {"1.jpg", "2.jpg", "3.jpg", "4.jpg"}
    untied = [r for r in lines(out) if r["id"] in scored and r["truth"]["label"]]
    assert sum(map(sum, m["confusion"]["matrix"])) == m["n_single_label"] == len(untied)
    assert sum(int(v["support"]) for v in m["per_class"].values()) == len(untied)
    html = (out / "report.html").read_text()
    assert "scored 4 of the 6 logged samples" in html and "<th class=l>n</th><td>4</td>" in html
    assert not any(f">{i}.jpg<" in html for i in (5, 6))  # the gallery holds only scored samples
    assert len(lines(out)) == 6  # nothing was deleted from the log
    # rescore keeps the same selection and gives the same figures
    again = rescore(out, reps=20)
    assert {k: again[k] for k in ("n", "accuracy", "kl", "confusion")} == {k: m[k] for k in ("n", "accuracy", "kl", "confusion")}
    code, stdout, _ = cli(["eval", "rescore", str(out), "--reps", "20"], capsys)
    assert code == 0 and "scored 4 of the 6 logged samples" in stdout
    # resuming without --limit scores all six again
    back = run_eval("flickr_ldl", flickr, system="fake", out=out, resume=True, progress=False, reps=20).metrics
    assert back["n"] == 6 and "n_unscored" not in back
    assert {k: back[k] for k in ("accuracy", "kl", "confusion")} == {k: full[k] for k in ("accuracy", "kl", "confusion")}


def test_merge_keeps_each_parts_selection(flickr, tmp_path):
    from kever.evals.merge import merge_runs

    a = run_eval("flickr_ldl", flickr, system="fake", shard="0/2", out=tmp_path / "a", progress=False, reps=20).rundir
    run_eval("flickr_ldl", flickr, system="fake", shard="0/2", limit=2, out=a, resume=True, progress=False, reps=20)
    b = run_eval("flickr_ldl", flickr, system="fake", shard="1/2", limit=2, out=tmp_path / "b", progress=False, reps=20).rundir
    merged = rescore(merge_runs(tmp_path / "m", [a, b]), reps=20)
    assert merged["n"] == 2 and sorted(r["id"] for r in lines(tmp_path / "m")) == ["1.jpg", "2.jpg"]


# ---- defect 5: a corrupt line in the middle of samples.jsonl ------------------------------

def test_corrupt_middle_line_is_moved_aside_and_redone(flickr, tmp_path, capsys):
    out = tmp_path / "r"
    run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False, reps=20)
    log = out / "samples.jsonl"
    raw = log.read_bytes().splitlines(keepends=True)
    assert len(raw) == 6
    bad = raw[2][: len(raw[2]) // 2] + b"\x00garbage\n"  # a half-written line, then junk, mid-file
    redone_id = json.loads(raw[2])["id"]
    log.write_bytes(b"".join(raw[:2] + [bad] + raw[3:]))
    capsys.readouterr()

    res = run_eval("flickr_ldl", flickr, system="fake", out=out, resume=True, progress=False, reps=20)
    err = capsys.readouterr().err
    assert res.done_now == 1 and res.skipped == 5 and res.metrics["n"] == 6
    assert "samples.jsonl line 3 is corrupt" in err and "samples.corrupt.jsonl" in err and "judged again" in err
    now = log.read_bytes().splitlines(keepends=True)
    assert [json.loads(x)["id"] for x in now].count(redone_id) == 1  # every line parses, the id once
    assert now[:2] + now[2:5] == raw[:2] + raw[3:]  # nothing else lost or changed
    assert (out / "samples.corrupt.jsonl").read_bytes() == bad  # the bad line, kept exactly
    # a second resume finds nothing to repair and judges nothing
    res = run_eval("flickr_ldl", flickr, system="fake", out=out, resume=True, progress=False, reps=20)
    assert res.done_now == 0 and "corrupt" not in capsys.readouterr().err


def test_rescore_moves_a_corrupt_line_aside_too(flickr, tmp_path, capsys):
    out = tmp_path / "r"
    run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False, reps=20)
    log = out / "samples.jsonl"
    raw = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join([raw[0], b'{"id": 5}\n'] + raw[1:]))  # valid JSON, not a record
    capsys.readouterr()
    assert rescore(out, reps=20)["n"] == 6
    assert "line 2 is corrupt" in capsys.readouterr().err
    assert log.read_bytes() == b"".join(raw) and (out / "samples.corrupt.jsonl").read_bytes() == b'{"id": 5}\n'
