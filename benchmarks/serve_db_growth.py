"""Conversation database growth over follow-up turns, for any checkout of ``kever serve``.

    .venv/bin/python benchmarks/serve_db_growth.py --out benchmarks/results/serve_db_growth.json
    # the server before issue 11 (kever/server/, LangGraph checkpointer), from a checkout of it:
    git worktree add /tmp/kever-before 58ad9ae
    cd /tmp/kever-before && PYTHONPATH=$PWD /path/to/kever/.venv/bin/python /path/to/kever/benchmarks/serve_db_growth.py \
        --out /path/to/kever/benchmarks/results/serve_db_growth_before.json

One conversation (X-Conversation-Id): an image turn, then --turns short follow-ups; the SQLite
file's bytes in use (pages less free pages, read by a separate connection) every --every
turns. FakeReasoner preset, loopback; bounded in turns. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import openai

try:  # the server before it moved to serve/
    from kever.server.testing import ServerProcess
except ImportError:
    from kever.serve.testing import ServerProcess
from kever.paths import ASSETS_DIR

QUESTIONS = ["why not fear?", "how sure are you?", "show the scores", "why?"]


def used_bytes(db: Path) -> int:
    c = sqlite3.connect(str(db))
    try:
        pages = c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]
        return pages * c.execute("PRAGMA page_size").fetchone()[0]
    finally:
        c.close()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    db = Path(tempfile.mkdtemp(prefix="kever-db-growth-")) / "c.sqlite"
    image = sorted(ASSETS_DIR.glob("*.jpg"))[0]
    url = "data:image/jpeg;base64," + base64.b64encode(image.read_bytes()).decode()
    load = os.getloadavg()
    with ServerProcess(["--preset", "fake-reasoner"], db=db) as srv:
        import kever

        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="none", max_retries=0, timeout=60)
        h = {"X-Conversation-Id": "db-growth"}
        c.chat.completions.create(model="kever", extra_headers=h, messages=[{"role": "user", "content": [
            {"type": "text", "text": "what does it evoke?"}, {"type": "image_url", "image_url": {"url": url}}]}])
        points = [(0, used_bytes(db))]
        t0 = time.perf_counter()
        for turn in range(1, args.turns + 1):
            c.chat.completions.create(model="kever", extra_headers=h,
                                      messages=[{"role": "user", "content": QUESTIONS[turn % len(QUESTIONS)]}])
            if turn % args.every == 0:
                points.append((turn, used_bytes(db)))
        seconds = time.perf_counter() - t0
    steps = [b[1] - a[1] for a, b in zip(points, points[1:])]
    result = {
        "command": "python benchmarks/serve_db_growth.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "server_code": str(Path(kever.__file__).resolve().parent.parent),
        "turns": args.turns,
        "points_turn_used_bytes": points,
        "bytes_per_step_of_turns": steps,
        "used_bytes_growth": points[-1][1] - points[0][1],
        "follow_up_s_mean": round(seconds / args.turns, 4),
        "loadavg_start": [round(x, 2) for x in load],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
