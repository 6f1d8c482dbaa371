"""The serving app's own metrics, which Prometheus scrapes from ``GET /metrics``: requests by route, the live
feeds open, and how long HBase takes to answer (docs/operations.md).

Each app has its own registry: tests build several apps in one process, and the global registry would refuse
the second app's families.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The text format every Prometheus parses; what generate_latest writes for names like these (no UTF-8 escaping).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HBASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Any other method a client sends is counted as "other": a label must not take whatever a client invents.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no route took the request: a 404, or a 401 of the token gate in front of the routes


class ServingMetrics:
    """The families of one app, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tickflow_serving_requests",
            "Requests answered, by route template (unmatched: no route took it), method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "tickflow_serving_request_duration_seconds",
            "Time to the start of the response (for a live feed, to its first bytes), by route template and method.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.live_feeds = Gauge(
            "tickflow_serving_live_feeds", "Live feeds (/api/stream) open now.", registry=self.registry
        )
        self.live_feed_updates = Counter(
            "tickflow_serving_live_feed_updates",
            "Updates sent on live feeds (each the changes of one poll of md:latest).",
            registry=self.registry,
        )
        self.hbase_read_duration = Histogram(
            "tickflow_serving_hbase_read_duration_seconds",
            "HBase reads through the Thrift server, by operation: latest (md:latest), history (md:history), ping.",
            ["operation"],
            buckets=HBASE_BUCKETS,
            registry=self.registry,
        )

    def hbase_read(self, operation: str) -> AbstractContextManager[object]:
        """Times the block as one HBase read (failed reads too: a slow failure is what a person looks for)."""
        return self.hbase_read_duration.labels(operation).time()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware counting and timing every HTTP request by the template of the route that took it
    (``/api/history/{instrument_id}``, never the id itself), which the router leaves in the scope."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "other"
        status: int | None = None

        def route() -> str:
            return getattr(scope.get("route"), "path", None) or UNMATCHED

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.request_duration.labels(route(), method).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if status is None:  # the app raised before answering: the server answers 500
                status = 500
                self.metrics.request_duration.labels(route(), method).observe(time.perf_counter() - started)
            self.metrics.requests.labels(route(), method, str(status)).inc()
