"""Load benchmark of ``kever serve`` on loopback: N concurrent clients x M image chats, then the
database's growth over a long conversation.

    .venv/bin/python benchmarks/serve_load.py --preset fake-reasoner --clients 8 --requests 10 --out benchmarks/results/serve_load_fake.json
    .venv/bin/python benchmarks/serve_load.py --preset fake-reasoner --clients 32 --requests 3 --out benchmarks/results/serve_load_fake_32x3.json
    .venv/bin/python benchmarks/serve_load.py --preset offline --clients 2 --requests 3

Load phase: each chat is a new conversation: an image turn (a full judgment; no conversation
id sent, so the server starts one and returns its id), then a follow-up ("why not fear?")
sent with that id, answered from the stored judgment. A 429 (queue full) is counted and
retried after the server's Retry-After, at most --max-retries times; every other failure is
counted by kind and ends that chat. Growth phase: one conversation, an image turn then
--followup-turns follow-ups, the database's size read every 10 turns (bytes in use, from
/metrics, and the files on disk); the server runs with --max-turns at exactly that many turns,
so one more turn must be refused (the cap). Bounded in count (clients x requests, turns) and
time (--time-limit-s: no new chat starts after it). Figures (throughput, p50/p95 per kind,
errors by kind, server RSS before/after, database sizes, load average) go to --out and stdout.
Loopback only; measured, never asserted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
FOLLOW_UPS = ["why not fear?", "what in the image made it {label}?", "how sure are you?", "answer for Ekman's six instead",
              "why not joy?", "show the scores", "answer for mikels eight", "what about sadness?"]


def rss_mb(pid: int) -> float:
    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    return round(sum(x.memory_info().rss for x in procs) / 2**20, 1)


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 4) if xs else None


def error_kind(e: Exception) -> str:
    import openai

    if isinstance(e, openai.APIStatusError):
        return f"{e.status_code} {getattr(e, 'code', None) or type(e).__name__}"
    return type(e).__name__


def files_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=5, help="image chats per client")
    ap.add_argument("--queue", type=int, default=8, help="the server's --queue (more concurrent requests get 429)")
    ap.add_argument("--max-retries", type=int, default=60, help="retries of a 429, after the server's Retry-After")
    ap.add_argument("--followup-turns", type=int, default=100, help="follow-ups in the growth phase (0: skip it)")
    ap.add_argument("--time-limit-s", type=float, default=600.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_load.json")
    args = ap.parse_args(argv)

    import httpx
    import openai

    from kever.paths import ASSETS_DIR
    from kever.serve.testing import ServerProcess

    images = sorted(ASSETS_DIR.glob("*.jpg"))
    urls = ["data:image/jpeg;base64," + base64.b64encode(p.read_bytes()).decode() for p in images]
    tmp = Path(tempfile.mkdtemp(prefix="kever-serve-load-"))
    db = tmp / "conv.sqlite"
    max_turns = args.followup_turns + 1 if args.followup_turns else 200
    server_args = ["--preset", args.preset, "--queue", str(args.queue), "--timeout-s", "600", "--max-turns", str(max_turns)]
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    with ServerProcess(server_args, db=db, startup_timeout_s=600, log_path=tmp / "server.log") as srv:
        startup_s = time.perf_counter() - t0

        def server_metrics() -> dict:
            return httpx.get(srv.base_url + "/metrics?format=json", timeout=30).json()

        def image_msg(url: str, text: str) -> dict:
            return {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}

        warm = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=600)
        t = time.perf_counter()
        warm.chat.completions.create(model="kever", messages=[image_msg(urls[0], "warm-up")])
        warmup_s = time.perf_counter() - t
        rss_before = rss_mb(srv.pid)
        db_before = {"used_bytes": server_metrics()["conversation_db_bytes"], "file_bytes": files_bytes(db)}

        # ------------------------------------------------------------ load phase
        lat: dict[str, list[float]] = {"image": [], "follow_up": []}
        errors: Counter[str] = Counter()
        samples: list[str] = []
        rejected_429 = Counter()
        lock = threading.Lock()
        deadline = time.monotonic() + args.time_limit_s

        lat_retries: dict[str, list[float]] = {"image": [], "follow_up": []}

        def call(c, kind: str, **kw):
            """One request, retrying 429s; returns (response, seconds of the answered attempt) or raises."""
            first = time.perf_counter()
            for _ in range(args.max_retries + 1):
                t = time.perf_counter()
                try:
                    raw = c.chat.completions.with_raw_response.create(model="kever", **kw)
                    with lock:
                        lat_retries[kind].append(time.perf_counter() - first)
                    return raw, time.perf_counter() - t
                except openai.RateLimitError as e:
                    with lock:
                        rejected_429[kind] += 1
                    time.sleep(float(e.response.headers.get("retry-after", "1")))
            raise RuntimeError("429 retries exhausted")

        def client(ci: int) -> None:
            c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=600)
            for ri in range(args.requests):
                if time.monotonic() > deadline:
                    return
                msgs = [image_msg(urls[(ci + ri) % len(urls)], f"client {ci} chat {ri}: what does it evoke?")]
                try:
                    raw, s = call(c, "image", messages=msgs)
                    with lock:
                        lat["image"].append(s)
                    cid = raw.headers["x-conversation-id"]
                    msgs += [{"role": "assistant", "content": raw.parse().choices[0].message.content},
                             {"role": "user", "content": "why not fear?"}]
                    raw, s = call(c, "follow_up", messages=msgs, extra_headers={"X-Conversation-Id": cid})
                    with lock:
                        lat["follow_up"].append(s)
                except Exception as e:  # noqa: BLE001 - counted, reported
                    with lock:
                        errors[error_kind(e)] += 1
                        if len(samples) < 5:
                            samples.append(f"{type(e).__name__}: {str(e)[:200]}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        rss_after_load = rss_mb(srv.pid)
        after_load = server_metrics()

        # ------------------------------------------------------------ growth phase
        growth: dict = {}
        if args.followup_turns:
            c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=600)
            raw = c.chat.completions.with_raw_response.create(model="kever", messages=[image_msg(urls[0], "what does it evoke?")])
            cid = {"X-Conversation-Id": raw.headers["x-conversation-id"]}
            label = raw.parse().model_extra["kever"]["label"]
            points = [(0, server_metrics()["conversation_db_bytes"], files_bytes(db))]
            t = time.perf_counter()
            for turn in range(1, args.followup_turns + 1):
                text = FOLLOW_UPS[turn % len(FOLLOW_UPS)].format(label=label)
                c.chat.completions.create(model="kever", messages=[{"role": "user", "content": text}], extra_headers=cid)
                if turn % 10 == 0:
                    points.append((turn, server_metrics()["conversation_db_bytes"], files_bytes(db)))
            follow_s = time.perf_counter() - t
            try:
                c.chat.completions.create(model="kever", messages=[{"role": "user", "content": "why?"}], extra_headers=cid)
                capped = "not refused"
            except openai.APIStatusError as e:
                capped = f"{e.status_code} {e.code}: {(e.body or {}).get('message') if isinstance(e.body, dict) else e.message}"
            turns, used = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
            slope, intercept = np.polyfit(turns, used, 1)
            fit = slope * turns + intercept
            ss_res, ss_tot = float(((used - fit) ** 2).sum()), float(((used - used.mean()) ** 2).sum())
            growth = {
                "followup_turns": args.followup_turns,
                "seconds": round(follow_s, 3),
                "follow_up_s_mean": round(follow_s / args.followup_turns, 4),
                "points_turn_used_bytes_file_bytes": points,
                "used_bytes_per_turn_fit": round(float(slope), 1),
                "linear_fit_r2": round(1 - ss_res / ss_tot, 5) if ss_tot else None,
                "used_bytes_growth": int(used[-1] - used[0]),
                "turn_after_cap": capped,
            }
        rss_after = rss_mb(srv.pid)
        final = server_metrics()
        db_after = {"used_bytes": final["conversation_db_bytes"], "file_bytes": files_bytes(db)}
    done = len(lat["image"]) + len(lat["follow_up"])
    result = {
        "command": "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "preset": args.preset,
        "clients": args.clients,
        "requests_per_client": args.requests,
        "server_queue": args.queue,
        "completed_requests": done,
        "completed_chats": len(lat["follow_up"]),
        "errors_by_kind": dict(errors),
        "errors_other_than_429": sum(errors.values()),
        "responses_429_retried": dict(rejected_429),
        "error_samples": samples,
        "wall_s": round(wall, 3),
        "throughput_rps": round(done / wall, 3) if wall else None,
        "judgments_per_s": round(len(lat["image"]) / wall, 3) if wall else None,
        "latency_s": {k: {"p50": pct(v, 50), "p95": pct(v, 95), "max": pct(v, 100), "n": len(v)} for k, v in lat.items()},
        "latency_with_429_retries_s": {k: {"p50": pct(v, 50), "p95": pct(v, 95), "max": pct(v, 100)} for k, v in lat_retries.items()},
        "server_startup_s": round(startup_s, 2),
        "warmup_request_s": round(warmup_s, 3),
        "rss_mb_before": rss_before,
        "rss_mb_after_load": rss_after_load,
        "rss_mb_after": rss_after,
        "db_before": db_before,
        "db_after_load": {"used_bytes": after_load["conversation_db_bytes"], "conversations": after_load["conversations"]},
        "db_after": {**db_after, "conversations": final["conversations"]},
        "growth": growth,
        "server_model_calls": final.get("model_calls_total"),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "time_limit_s": args.time_limit_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
