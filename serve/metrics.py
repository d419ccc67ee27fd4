"""Request counters, latency and queue depth; rendered as Prometheus text or JSON."""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np


class Metrics:
    def __init__(self, window: int = 2048):
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency_sum: Counter[str] = Counter()
        self.recent: deque[float] = deque(maxlen=window)
        self.queue_depth = 0
        self.queue_capacity = 0
        self.model_calls = 0

    def observe(self, path: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(path, status)] += 1
            self.latency_sum[path] += seconds
            self.recent.append(seconds)

    def snapshot(self) -> dict:
        with self._lock:
            total = sum(self.requests.values())
            errors = sum(n for (_, s), n in self.requests.items() if s >= 400)
            lat = np.array(self.recent) if self.recent else None
            by_path: dict[str, dict] = {}
            for (path, status), n in sorted(self.requests.items()):
                d = by_path.setdefault(path, {"count": 0, "by_status": {}, "latency_sum_s": round(self.latency_sum[path], 6)})
                d["count"] += n
                d["by_status"][str(status)] = n
            return {
                "requests_total": total,
                "errors_total": errors,
                "latency_p50_s": float(np.percentile(lat, 50)) if lat is not None else None,
                "latency_p95_s": float(np.percentile(lat, 95)) if lat is not None else None,
                "queue_depth": self.queue_depth,
                "queue_capacity": self.queue_capacity,
                "model_calls_total": self.model_calls,
                "paths": by_path,
            }

    def prometheus(self) -> str:
        s = self.snapshot()
        out = ["# HELP kever_requests_total HTTP requests by path and status.", "# TYPE kever_requests_total counter"]
        for path, d in s["paths"].items():
            for status, n in d["by_status"].items():
                out.append(f'kever_requests_total{{path="{path}",status="{status}"}} {n}')
        out += ["# HELP kever_request_seconds_sum Total request time by path.", "# TYPE kever_request_seconds_sum counter"]
        out += [f'kever_request_seconds_sum{{path="{p}"}} {d["latency_sum_s"]}' for p, d in s["paths"].items()]
        out += ["# HELP kever_errors_total Responses with status >= 400.", "# TYPE kever_errors_total counter",
                f"kever_errors_total {s['errors_total']}"]
        for q in ("p50", "p95"):
            v = s[f"latency_{q}_s"]
            out += [f"# TYPE kever_request_latency_{q}_seconds gauge", f"kever_request_latency_{q}_seconds {v if v is not None else 'NaN'}"]
        out += ["# HELP kever_queue_depth Requests admitted and not finished (running + waiting).",
                "# TYPE kever_queue_depth gauge", f"kever_queue_depth {s['queue_depth']}",
                "# TYPE kever_queue_capacity gauge", f"kever_queue_capacity {s['queue_capacity']}",
                "# TYPE kever_model_calls_total counter", f"kever_model_calls_total {s['model_calls_total']}"]
        return "\n".join(out) + "\n"
