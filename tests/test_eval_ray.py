"""``--engine ray`` on a small local Ray instance: the same predictions as the local engine."""

from __future__ import annotations

import json

import pytest
from eval_helpers import make_flickr

from kever.evals.runner import run_eval

pytestmark = pytest.mark.slow

VOTES = [[0, 0, 0, 0, 0, 0, 2, 9], [3, 0, 1, 0, 0, 1, 2, 4], [4, 4, 3, 0, 0, 0, 0, 0], [0, 0, 11, 0, 0, 0, 0, 0],
         [1, 1, 7, 1, 1, 0, 0, 0], [0, 9, 1, 1, 0, 0, 0, 0], [2, 2, 2, 2, 1, 1, 1, 0]]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray
    ray.shutdown()


def _judgments(rundir):
    recs = [json.loads(x) for x in (rundir / "samples.jsonl").read_text().splitlines()]
    return {r["id"]: r["judgment"] for r in recs}, recs


def test_ray_engine_matches_local(local_ray, tmp_path):
    root = make_flickr(tmp_path / "flickr", VOTES)
    (root / "images" / "4.jpg").write_bytes(b"broken")  # a failing sample must be logged under Ray too
    local = run_eval("flickr_ldl", root, system="fake", out=tmp_path / "local", progress=False, reps=50)
    ray_run = run_eval("flickr_ldl", root, system="fake", engine="ray", batch_size=2, concurrency=2,
                       out=tmp_path / "ray", progress=False, reps=50)
    jl, _ = _judgments(local.rundir)
    jr, recs = _judgments(ray_run.rundir)
    assert set(jl) == set(jr) and len(recs) == len(VOTES)
    strip = lambda j: j and {k: v for k, v in j.items() if k != "timings"}  # noqa: E731
    assert all(strip(jl[i]) == strip(jr[i]) for i in jl)
    assert jr["4.jpg"] is None and ray_run.failed == 1
    assert all(r["worker"].startswith("ray:") for r in recs)
    for k in ("accuracy", "balanced_accuracy", "kl", "ece"):
        assert ray_run.metrics[k] == local.metrics[k]
    # the ray engine resumes like the local one
    again = run_eval("flickr_ldl", root, system="fake", engine="ray", out=tmp_path / "ray", resume=True, progress=False, reps=50)
    assert again.done_now == 0 and again.skipped == len(VOTES)


def test_ray_engine_majority_baseline(local_ray, tmp_path):
    root = make_flickr(tmp_path / "flickr", VOTES)
    res = run_eval("flickr_ldl", root, system="majority", engine="ray", batch_size=3, out=tmp_path / "r", progress=False, reps=20)
    local = run_eval("flickr_ldl", root, system="majority", out=tmp_path / "l", progress=False, reps=20)
    assert res.metrics["kl"] == local.metrics["kl"] and res.metrics["accuracy"] == local.metrics["accuracy"]
