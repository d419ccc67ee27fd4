"""Server metrics through ``prometheus_client``: Prometheus exposition at ``/metrics``.

One registry per app (so two apps in one process, as in tests, do not share counters). The
JSON view (``/metrics?format=json``) reads the same registry.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: latency buckets (s): from an answer out of a stored judgment to a judgment with a rationale.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("kever_requests", "HTTP requests by path and status.", ["path", "status"], registry=r)
        self.latency = Histogram("kever_request_duration_seconds", "Request time by path.", ["path"], buckets=BUCKETS, registry=r)
        self.queue_depth = Gauge("kever_queue_depth", "Requests admitted and not finished (running + waiting).", registry=r)
        self.queue_capacity = Gauge("kever_queue_capacity", "Requests admitted at once; more get 429.", registry=r)
        self.model_calls = Counter("kever_model_calls", "Reasoner calls (judgments of a new image, relabels not counted).", registry=r)
        self.conversations = Gauge("kever_conversations", "Conversations stored.", registry=r)
        self.db_bytes = Gauge("kever_conversation_db_bytes", "Bytes of conversation database in use.", registry=r)

    def watch_store(self, stats: Callable[[], dict]) -> None:
        """Read the store's size at scrape time."""
        self.conversations.set_function(lambda: stats()["conversations"])
        self.db_bytes.set_function(lambda: stats()["db_bytes"])

    def observe(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path=path, status=str(status)).inc()
        self.latency.labels(path=path).observe(seconds)

    def prometheus(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def snapshot(self) -> dict:
        """The same figures as JSON."""
        paths: dict[str, dict] = {}
        total = errors = 0
        single: dict[str, float] = {}
        for family in self.registry.collect():
            for s in family.samples:
                if s.name == "kever_requests_total":
                    n = int(s.value)
                    d = paths.setdefault(s.labels["path"], {"count": 0, "by_status": {}})
                    d["count"] += n
                    d["by_status"][s.labels["status"]] = n
                    total += n
                    errors += n if int(s.labels["status"]) >= 400 else 0
                elif s.name == "kever_request_duration_seconds_sum":
                    paths.setdefault(s.labels["path"], {"count": 0, "by_status": {}})["latency_sum_s"] = round(s.value, 6)
                elif not s.labels:
                    single[s.name] = s.value
        return {
            "requests_total": total,
            "errors_total": errors,
            "queue_depth": int(single.get("kever_queue_depth", 0)),
            "queue_capacity": int(single.get("kever_queue_capacity", 0)),
            "model_calls_total": int(single.get("kever_model_calls_total", 0)),
            "conversations": int(single.get("kever_conversations", 0)),
            "conversation_db_bytes": int(single.get("kever_conversation_db_bytes", 0)),
            "paths": paths,
        }
