"""The harness with the real reasoner (offline preset) on two dev images; skips until it loads."""

from __future__ import annotations

import json

import pytest

from kever.evals.runner import run_eval

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("system", ["perception-only"])
def test_real_reasoner_run(flickr_dev, tmp_path, system):
    res = run_eval("flickr_ldl", flickr_dev, limit=2, system=system, preset="offline", rationale=False,
                   out=tmp_path / "r", progress=False, reps=50)
    recs = [json.loads(x) for x in (res.rundir / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["judgment"] for r in recs), [r["error"] for r in recs]
    j = recs[0]["judgment"]
    assert set(j["scores"]) == set(res.metrics["labels"]) and abs(sum(j["scores"].values()) - 1) < 1e-6
    man = json.loads((res.rundir / "manifest.json").read_text())
    assert man["models"]
