"""Load benchmark of ``kever serve`` on loopback: N concurrent clients x M requests.

    .venv/bin/python benchmarks/serve_load.py --preset offline --clients 4 --requests 5
    .venv/bin/python benchmarks/serve_load.py --preset fake-reasoner --clients 8 --requests 25   # the server alone

Each request is a new conversation: a chat completion with an image (a full judgment), then a
follow-up ("why not fear?") answered from the stored judgment. Bounded in count
(clients x requests) and time (--time-limit-s: no new request starts after it). Figures:
throughput, p50/p95 latency per kind, errors, server RSS before and after, written to
benchmarks/results/serve_load.json (or --out) and printed. Loopback only; measured, never asserted.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    return round(sum(x.memory_info().rss for x in procs) / 2**20, 1)


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 4) if xs else None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=5, help="per client")
    ap.add_argument("--time-limit-s", type=float, default=300.0)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_load.json")
    args = ap.parse_args(argv)

    import openai

    from kever.paths import ASSETS_DIR
    from kever.serve.testing import ServerProcess

    images = sorted(ASSETS_DIR.glob("*.jpg"))
    urls = ["data:image/jpeg;base64," + base64.b64encode(p.read_bytes()).decode() for p in images]
    tmp = Path(tempfile.mkdtemp(prefix="kever-serve-load-"))
    server_args = ["--preset", args.preset, "--queue", str(args.queue), "--timeout-s", "600"]
    t0 = time.perf_counter()
    with ServerProcess(server_args, db=tmp / "conv.sqlite", startup_timeout_s=600, log_path=tmp / "server.log") as srv:
        startup_s = time.perf_counter() - t0
        warm = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=600)
        t = time.perf_counter()
        warm.chat.completions.create(model="kever", messages=[{"role": "user", "content": [
            {"type": "text", "text": "warm-up"}, {"type": "image_url", "image_url": {"url": urls[0]}}]}])
        warmup_s = time.perf_counter() - t
        rss_before = rss_mb(srv.pid)
        lat: dict[str, list[float]] = {"image": [], "follow_up": []}
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + args.time_limit_s

        def client(ci: int) -> None:
            c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=600)
            for ri in range(args.requests):
                if time.monotonic() > deadline:
                    return
                msgs = [{"role": "user", "content": [{"type": "text", "text": f"client {ci} request {ri}: what does it evoke?"},
                                                     {"type": "image_url", "image_url": {"url": urls[(ci + ri) % len(urls)]}}]}]
                for kind in ("image", "follow_up"):
                    t = time.perf_counter()
                    try:
                        r = c.chat.completions.create(model="kever", messages=msgs)
                        with lock:
                            lat[kind].append(time.perf_counter() - t)
                        msgs += [{"role": "assistant", "content": r.choices[0].message.content},
                                 {"role": "user", "content": "why not fear?"}]
                    except Exception as e:  # noqa: BLE001 - counted, reported
                        with lock:
                            errors.append(f"{kind}: {type(e).__name__}: {str(e)[:200]}")
                        break

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        rss_after = rss_mb(srv.pid)
        import httpx

        server_metrics = httpx.get(srv.base_url + "/metrics?format=json").json()
    done = len(lat["image"]) + len(lat["follow_up"])
    result = {
        "command": "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "preset": args.preset,
        "clients": args.clients,
        "requests_per_client": args.requests,
        "completed_requests": done,
        "completed_judgments": len(lat["image"]),
        "errors": len(errors),
        "error_samples": errors[:5],
        "wall_s": round(wall, 3),
        "throughput_rps": round(done / wall, 3) if wall else None,
        "judgments_per_s": round(len(lat["image"]) / wall, 3) if wall else None,
        "latency_s": {k: {"p50": pct(v, 50), "p95": pct(v, 95), "max": pct(v, 100), "n": len(v)} for k, v in lat.items()},
        "server_startup_s": round(startup_s, 2),
        "warmup_request_s": round(warmup_s, 3),
        "rss_mb_before": rss_before,
        "rss_mb_after": rss_after,
        "server_model_calls": server_metrics.get("model_calls_total"),
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "time_limit_s": args.time_limit_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
