"""inspect_ai against ``kever serve``: does a research harness get kever's answers, photo for photo?

    .venv/bin/python benchmarks/harness/inspect_check.py                 # first 40 Emotion6 dev photos
    .venv/bin/python benchmarks/harness/inspect_check.py --limit 240     # all of them

Not part of CI. Steps, all on loopback:

1. ``kever eval run --dataset emotion6 --limit N --preset offline --no-rationale``: the reference
   labels and scores, per photo (``samples.jsonl``);
2. ``kever serve --preset offline`` on a free loopback port;
3. inspect_ai runs a task over the same photos (the image and "Which emotion does this image
   evoke? Answer with one word.") with ``--model openai-api/kever/kever-emotion6:label`` (or,
   ``--provider openai``, inspect's ``openai/`` provider, which calls ``/v1/responses``), the
   label-only answer mode, asking for logprobs (the label scores), scored by ``exact()``
   against each photo's top label (any of them where the votes tie);
4. per photo: inspect's answer vs ``kever eval``'s label, and the served scores (from the
   logprobs) vs the eval's scores -> ``benchmarks/results/inspect_check.json``.

**inspect_ai is not a kever dependency** (nor a test dependency). It is installed once into its
own virtual environment (``$KEVER_INSPECT_VENV``, default ``~/.cache/kever-inspect/venv``:
``pip install inspect-ai==0.3.285 openai``), never into ``.venv``: installed there it would
downgrade fsspec and python-dateutil under kever. This script starts under kever's ``.venv``,
creates that venv when missing, and re-runs itself there; kever itself is run as
``.venv/bin/kever`` subprocesses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEVER = ROOT / ".venv" / "bin" / "kever"
VENV = Path(os.environ.get("KEVER_INSPECT_VENV", Path.home() / ".cache" / "kever-inspect" / "venv"))
INSPECT_VERSION = "0.3.285"
PROMPT = "Which emotion does this image evoke? Answer with one word."


def ensure_inspect() -> None:
    """Re-run this script under the inspect venv (creating it the first time)."""
    try:
        import inspect_ai  # noqa: F401

        return
    except ImportError:
        pass
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"inspect_check: installing inspect-ai=={INSPECT_VERSION} into {VENV} (first time: minutes)", file=sys.stderr)
        subprocess.run(["python3.11", "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        f"inspect-ai=={INSPECT_VERSION}", "openai"], check=True)
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference(root: Path, limit: int, out: Path) -> list[dict]:
    """``kever eval run`` over the first ``limit`` photos: one record per photo."""
    cmd = [str(KEVER), "eval", "run", "--dataset", "emotion6", "--root", str(root), "--limit", str(limit),
           "--preset", "offline", "--no-rationale", "--no-progress", "--out", str(out)]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    print(f"inspect_check: kever eval run took {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines() if x.strip()]


class Server:
    def __init__(self, db: Path, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen([str(KEVER), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--preset",
                                      "offline", "--db", str(db), "--timeout-s", "600"],
                                     stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def wait(self, timeout_s: float = 300) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise SystemExit(f"inspect_check: kever serve exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                time.sleep(0.3)
        raise SystemExit("inspect_check: kever serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_inspect(records: list[dict], base_url: str, model: str, log_dir: Path):
    from inspect_ai import Task, eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ChatMessageUser, ContentImage, ContentText
    from inspect_ai.scorer import exact
    from inspect_ai.solver import generate

    samples = [Sample(id=r["id"], target=r["truth"]["labels"],  # tied top labels: any of them scores
                      input=[ChatMessageUser(content=[ContentText(text=PROMPT), ContentImage(image=r["image"])])])
               for r in records]
    task = Task(dataset=samples, solver=generate(), scorer=exact(), name="kever_emotion6")
    for service in ("KEVER", "OPENAI"):  # openai-api/kever/... and openai/... (the Responses API)
        os.environ[f"{service}_BASE_URL"] = base_url + "/v1"
        os.environ[f"{service}_API_KEY"] = "none"
    (log,) = inspect_eval(task, model=model, log_dir=str(log_dir), display="none",
                          max_connections=2, logprobs=True, top_logprobs=20)
    return log


def served_scores(sample) -> dict[str, float] | None:
    lp = getattr(sample.output.choices[0], "logprobs", None) if sample.output and sample.output.choices else None
    if not lp or not lp.content:
        return None
    return {t.token: math.exp(t.logprob) for t in (lp.content[0].top_logprobs or [])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "emotion6_dev"))
    ap.add_argument("--limit", type=int, default=40, help="first N photos by id (40 on a busy 2-core machine)")
    ap.add_argument("--model", default="kever-emotion6:label")
    ap.add_argument("--provider", default="openai-api/kever", choices=["openai-api/kever", "openai"],
                    help="inspect's provider: openai-api/kever (Chat Completions) or openai (its Responses API client)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inspect_check.json"))
    args = ap.parse_args()
    ensure_inspect()
    import inspect_ai

    if not KEVER.exists():
        raise SystemExit("inspect_check: run 'bash scripts/setup.sh' first (no .venv/bin/kever)")
    work = Path(tempfile.mkdtemp(prefix="kever-inspect-"))
    records = reference(Path(args.root), args.limit, work / "eval")
    server = Server(work / "conv.sqlite", work / "serve.log")
    try:
        start_s = server.wait()
        t0 = time.monotonic()
        model = f"{args.provider}/{args.model}"
        log = run_inspect(records, server.base, model, work / "inspect-logs")
        inspect_s = time.monotonic() - t0
    finally:
        server.stop()
    by_id = {r["id"]: r for r in records}
    rows, agree, max_diff, errors, with_scores = [], 0, 0.0, 0, 0
    for s in log.samples or []:
        ref = by_id[str(s.id)]
        answer = s.output.completion.strip() if s.output else ""
        ref_label = (ref.get("judgment") or {}).get("label")
        scores = served_scores(s)
        diff = None
        if scores and ref.get("judgment"):
            diff = max(abs(scores.get(k, 0.0) - v) for k, v in ref["judgment"]["scores"].items())
            max_diff = max(max_diff, diff)
            with_scores += 1
        score = next(iter(s.scores.values())).value if s.scores else None
        errors += s.error is not None
        agree += answer == ref_label
        rows.append({"id": s.id, "truth": ref["truth"]["label"], "kever_eval": ref_label, "inspect": answer,
                     "inspect_correct": score == "C", "agree": answer == ref_label,
                     "max_score_diff": None if diff is None else float(f"{diff:.3g}"), "error": str(s.error) if s.error else None})
    n = len(rows)
    eval_metrics = json.loads((work / "eval" / "metrics.json").read_text())
    eval_acc = eval_metrics.get("accuracy_tie_any")  # the same rule as exact() over the tied top labels
    metrics = log.results.scores[0].metrics if log.results and log.results.scores else {}
    result = {
        "command": "python benchmarks/harness/inspect_check.py " + " ".join(sys.argv[1:]),
        "inspect_ai": inspect_ai.__version__, "model": model, "dataset": args.root,
        "photos": n, "status": log.status, "errors": errors,
        "agreement": agree / n if n else None, "agree": agree,
        "photos_with_served_scores": with_scores, "max_score_diff": max_diff if with_scores else None,
        "inspect_accuracy": {k: v.value for k, v in metrics.items()},
        "kever_eval_accuracy_tie_any": eval_acc, "kever_eval_accuracy_single_label": eval_metrics.get("accuracy"),
        "serve_start_s": round(start_s, 1), "inspect_s": round(inspect_s, 1),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"inspect_check: {agree}/{n} photos agree ({result['agreement']:.3f}); inspect status {log.status}, "
          f"{errors} errors; served vs eval scores ({with_scores} photos with logprobs): max |diff| {max_diff:.2g}; "
          f"inspect accuracy "
          f"{result['inspect_accuracy']}; kever eval accuracy {eval_acc:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
