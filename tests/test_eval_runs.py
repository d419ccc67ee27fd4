"""Runs end to end: the CLI, the log, resume (including after a kill), rescore, compare, report."""

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
from eval_helpers import make_class_folders, make_emotion6, make_flickr, write_image, run_cli

from kever.errors import ConfigError
from kever.evals.rundir import RunDir
from kever.evals.runner import parse_shard, rescore, run_eval
from kever.evals.systems import build_system

VOTES = [[0, 0, 0, 0, 0, 0, 2, 9], [3, 0, 1, 0, 0, 1, 2, 4], [4, 4, 3, 0, 0, 0, 0, 0], [0, 0, 11, 0, 0, 0, 0, 0],
         [1, 1, 7, 1, 1, 0, 0, 0], [0, 9, 1, 1, 0, 0, 0, 0]]

SLOW_FACTORY = """
import time
from kever.evals.systems import fake_system

class Slow:
    def __init__(self, delay):
        self.inner = fake_system()
        self.models = {"reasoner": "slow-fake"}
        self.delay = delay

    def explain_many(self, images, labels=None, rationale=True):
        time.sleep(self.delay)
        return self.inner.explain_many(images, labels=labels, rationale=rationale)

def make(preset, system, ablate, prior):
    return Slow(0.05)
"""


def cli(args, capsys):
    return run_cli(args, capsys)


def lines(rundir: Path) -> list[dict]:
    return [json.loads(x) for x in (rundir / "samples.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture
def flickr(tmp_path):
    return make_flickr(tmp_path / "flickr", VOTES)


def test_majority_cli_on_real_dev_split(flickr_dev, tmp_path):
    """The command the brief names, in a real subprocess: no models needed."""
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "kever", "eval", "run", "--dataset", "flickr_ldl", "--root", str(flickr_dev),
                        "--limit", "5", "--system", "majority", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "5 samples" in p.stdout and "balanced_accuracy" in p.stdout
    assert "img/s" in p.stderr  # progress bar with rate
    recs = lines(out)
    assert len(recs) == 5 and all(r["judgment"]["label"] == "contentment" for r in recs)
    m = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "per_class", "confusion", "kl", "chebyshev", "cosine", "intersection", "ci"):
        assert key in m
    html = (out / "report.html").read_text()
    assert "<svg" in html and "data:image/jpeg;base64," in html and "<script" not in html


def test_majority_full_dev_matches_reference(flickr_dev, tmp_path):
    res = run_eval("flickr_ldl", flickr_dev, system="majority", out=tmp_path / "r", progress=False, reps=100)
    m = res.metrics
    assert m["balanced_accuracy"] == pytest.approx(0.125)
    assert m["accuracy"] == pytest.approx(166 / 312, abs=1e-6)  # untied images only
    assert m["kl"] == pytest.approx(0.733, abs=0.001)  # the dev-prior reference of the design brief


def test_full_log_keeps_the_whole_judgment(flickr, tmp_path):
    res = run_eval("flickr_ldl", flickr, system="fake", out=tmp_path / "r", progress=False, reps=50)
    rec = lines(res.rundir)[0]
    j = rec["judgment"]
    assert set(j["scores"]) == set(res.metrics["labels"]) and abs(sum(j["scores"].values()) - 1) < 1e-6
    assert j["cues"][0]["id"] == "C1" and j["evidence"][0]["id"] == "fake:1" and "[C1]" in j["rationale"]
    assert rec["truth"]["distribution"] and rec["seconds"] is not None
    man = json.loads((res.rundir / "manifest.json").read_text())
    assert man["config"]["system"] == "fake" and man["models"] and man["versions"]["kever"]


def test_failing_sample_is_logged_and_run_goes_on(flickr, tmp_path, capsys):
    (flickr / "images" / "2.jpg").write_bytes(b"not an image")
    out = tmp_path / "r"
    code, stdout, err = cli(["eval", "run", "--dataset", "flickr_ldl", "--root", str(flickr), "--system", "fake",
                             "--out", str(out), "--no-progress", "--batch-size", "3", "--reps", "50"], capsys)
    assert code != 0 and "1 of 6 samples failed" in err and "Traceback" not in err
    recs = {r["id"]: r for r in lines(out)}
    assert len(recs) == 6 and recs["2.jpg"]["error"]["type"] == "InputError" and recs["1.jpg"]["judgment"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_failed"] == 1 and sum(row[-1] for row in m["confusion"]["matrix"]) == 1
    assert "failed: InputError" in (out / "report.html").read_text()
    # --retry-failed judges it again once it is fixed; the latest record wins
    write_image(flickr / "images" / "2.jpg", 1)
    res = run_eval("flickr_ldl", flickr, system="fake", out=out, resume=True, retry_failed=True, progress=False, reps=50)
    assert res.done_now == 1 and res.failed == 0


def test_resume_skips_finished_and_refuses_mismatch(flickr, tmp_path):
    out = tmp_path / "r"
    first = run_eval("flickr_ldl", flickr, system="fake", limit=3, out=out, progress=False, reps=20)
    assert first.done_now == 3
    with pytest.raises(ConfigError, match="--resume"):
        run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False)
    with pytest.raises(ConfigError, match="system"):
        run_eval("flickr_ldl", flickr, system="majority", out=out, resume=True, progress=False)
    with pytest.raises(ConfigError, match="ablate"):
        run_eval("flickr_ldl", flickr, system="fake", ablate=["kb"], out=out, resume=True, progress=False)
    again = run_eval("flickr_ldl", flickr, system="fake", out=out, resume=True, progress=False, reps=20)
    assert again.skipped == 3 and again.done_now == 3
    ids = [r["id"] for r in lines(out)]
    assert len(ids) == len(set(ids)) == 6


def test_torn_last_line_is_cut_on_resume(flickr, tmp_path):
    out = tmp_path / "r"
    run_eval("flickr_ldl", flickr, system="fake", limit=2, out=out, progress=False, reps=20)
    with (out / "samples.jsonl").open("a") as fh:
        fh.write('{"id": "3.jpg", "image": "/x", "tru')  # a kill mid-write
    assert len(RunDir(out).records()) == 2
    run_eval("flickr_ldl", flickr, system="fake", out=out, resume=True, progress=False, reps=20)
    recs = lines(out)  # every line parses
    assert sorted(r["id"] for r in recs) == sorted(f"{i}.jpg" for i in range(1, 7))


def test_kill_mid_run_then_resume(tmp_path, monkeypatch):
    root = make_class_folders(tmp_path / "fi", {"awe": 15, "fear": 15, "sadness": 10})
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "slowsys.py").write_text(textwrap.dedent(SLOW_FACTORY))
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "mods") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "kever", "eval", "run", "--dataset", "fi", "--root", str(root),
                             "--factory", "slowsys:make", "--out", str(out), "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "samples.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 8:
            break
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = len(RunDir(out).records())
    assert 8 <= done_before < 40
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    res = run_eval("fi", root, factory="slowsys:make", out=out, resume=True, progress=False, reps=20)
    assert res.skipped == done_before and res.done_now == 40 - done_before
    ids = [r["id"] for r in lines(out)]
    assert len(ids) == len(set(ids)) == 40


def test_shards_partition_the_run(flickr, tmp_path):
    assert parse_shard("1/3") == (1, 3)
    ids = []
    for i in range(3):
        res = run_eval("flickr_ldl", flickr, system="fake", shard=f"{i}/3", out=tmp_path / f"s{i}", progress=False, reps=20)
        ids += [r["id"] for r in lines(res.rundir)]
    assert sorted(ids) == sorted(f"{i}.jpg" for i in range(1, 7))
    whole = run_eval("flickr_ldl", flickr, system="fake", out=tmp_path / "whole", progress=False, reps=20).metrics
    from kever.evals.merge import merge_runs

    merged = rescore(merge_runs(tmp_path / "merged", [tmp_path / f"s{i}" for i in range(3)]), reps=20)
    assert merged["n"] == 6 and all(merged[k] == whole[k] for k in ("accuracy", "kl", "confusion"))
    with pytest.raises(ConfigError, match="another config"):
        maj = run_eval("flickr_ldl", flickr, system="majority", shard="1/3", out=tmp_path / "maj1", progress=False, reps=20)
        merge_runs(tmp_path / "m2", [tmp_path / "s0", maj.rundir])
    from kever.errors import InputError

    with pytest.raises(InputError):
        parse_shard("3/3")


def test_rescore_and_compare(flickr, tmp_path, capsys):
    a = run_eval("flickr_ldl", flickr, system="fake", out=tmp_path / "a", progress=False, reps=50).rundir
    b = run_eval("flickr_ldl", flickr, system="majority", out=tmp_path / "b", progress=False, reps=50).rundir
    before = json.loads((a / "metrics.json").read_text())
    (a / "metrics.json").unlink()
    (a / "report.html").unlink()
    code, stdout, _ = cli(["eval", "rescore", str(a), "--reps", "50"], capsys)
    assert code == 0 and "balanced_accuracy" in stdout
    assert json.loads((a / "metrics.json").read_text()) == before and (a / "report.html").is_file()
    code, stdout, _ = cli(["eval", "compare", str(a), str(b)], capsys)
    assert code == 0 and f"| {a.as_posix()} (system fake)" in stdout and f"| {b.as_posix()} (system majority)" in stdout
    assert "**" in stdout
    code, stdout, _ = cli(["eval", "compare", str(a), str(b), "--json"], capsys)
    table = json.loads(stdout)
    assert [r["name"] for r in table["rows"]] == ["fake", "majority"]
    assert table["rows"][0]["kl"]["value"] == before["kl"]  # row 0 is run a (fake), rescored to the same figure
    code, _, err = cli(["eval", "rescore", str(tmp_path)], capsys)
    assert code != 0 and "not a kever run directory" in err


def test_emotion6_run_with_valence(tmp_path):
    res = run_eval("emotion6", make_emotion6(tmp_path / "e6"), system="fake", out=tmp_path / "r", progress=False, reps=20)
    rec = lines(res.rundir)[0]
    assert set(rec["judgment"]["scores"]) == {"anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"}
    assert res.metrics["n_valence"] == 3 and "valence_r" in res.metrics


def test_build_system_errors():
    with pytest.raises(ConfigError, match="ablation"):
        build_system("offline", "full", ["nope"])
    with pytest.raises(ConfigError, match="unknown system"):
        build_system("offline", "oracle")
    m = build_system(system="majority", prior={"a": 1, "b": 3})
    j = m.explain_many(["x.jpg"], rationale=True)[0]
    assert j.label == "b" and j.scores == {"a": 0.25, "b": 0.75}


def test_bad_cli_input_is_one_line(tmp_path, capsys):
    code, _, err = cli(["eval", "run", "--dataset", "flickr_ldl", "--root", str(tmp_path), "--system", "majority",
                        "--out", str(tmp_path / "r")], capsys)
    assert code != 0 and err.count("\n") == 1 and "ground_truth.txt not found" in err


def test_ray_engine_without_ray_is_a_clear_error(flickr, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    from kever.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match=r"kever\[ray\]"):
        run_eval("flickr_ldl", flickr, system="fake", engine="ray", out=tmp_path / "r", progress=False)


def _unavailable(preset, system, ablate, prior):
    from kever.errors import ModelUnavailable

    raise ModelUnavailable("no weights here")


def test_system_that_cannot_load_leaves_no_run_behind(flickr, tmp_path):
    from kever.errors import ModelUnavailable

    out = tmp_path / "r"
    with pytest.raises(ModelUnavailable):
        run_eval("flickr_ldl", flickr, factory=_unavailable, out=out, progress=False)
    assert not (out / "manifest.json").exists()
    res = run_eval("flickr_ldl", flickr, system="fake", out=out, progress=False, reps=20)  # no --resume needed
    assert res.done_now == 6


def test_report_gallery_shows_worst_errors_with_cues_and_rationale(flickr, tmp_path):
    res = run_eval("flickr_ldl", flickr, system="fake", out=tmp_path / "r", progress=False, reps=20)
    html = (res.rundir / "report.html").read_text()
    wrong = [r for r in lines(res.rundir) if r["judgment"]["label"] not in r["truth"]["labels"]]
    assert wrong, "the fake system should get some of these wrong"
    assert "Worst errors" in html and "fake cue" in html and "(fake) The image evokes" in html
    assert html.count("data:image/jpeg;base64,") == min(len(wrong), 12)
    assert "Confusion matrix" in html and "Reliability diagram" in html and "Per-class" in html
