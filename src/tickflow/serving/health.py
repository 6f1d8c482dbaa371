"""The page's health strip: the pipeline's figures and the alerts that fire, read from Prometheus by the server
(so Prometheus's login, in secured mode, never reaches the browser) for ``GET /api/health``.

The figures are the recording rules' (docs/operations.md), fetched in one instant query
whose ``figure`` label names each, so all of them are of the same evaluation. The answer is kept for a moment:
every open page polls, and Prometheus's rules change only every evaluation interval anyway.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import anyio

from tickflow.monitoring.promql import Alert, Prometheus, PrometheusUnavailable

# figure -> the expression giving it; in the strip's order: source -> md.events -> stream -> md.enriched -> HBase.
FIGURES = {
    "source_rate": "tickflow:source_events:rate1m",
    "stream_lag_records": "tickflow:stream_lag_records",
    "stream_lag_seconds": "tickflow:stream_lag_seconds",
    "stream_rate": "tickflow:stream_events_in:rate1m",
    "batch_age_seconds": "tickflow:stream_batch_age_seconds",
    "enriched_rate": "tickflow:enriched_events:rate1m",
    "hbase_sink_lag_records": "tickflow:hbase_sink_lag_records",
    "hbase_sink_lag_seconds": "tickflow:hbase_sink_lag_seconds",
    "hbase_rate": "tickflow:hbase_sink_records:rate1m",
    # [1m], not the alert's [5m]: a 5-minute rate under-reads for the first 5 minutes of a series.
    "dead_letters_per_minute": "tickflow:stream_dead_letters:rate1m * 60",
}
STRIP_QUERY = "\nor ".join(f'label_replace({expr}, "figure", "{name}", "", "")' for name, expr in FIGURES.items())
SEVERITY_ORDER = {"critical": 0, "warning": 1}


def strip_answer(figures: Mapping[str, float | None], alerts: list[Alert]) -> dict[str, Any]:
    """What /api/health answers while Prometheus does: every figure (null when Prometheus has no value for it:
    nothing scraped yet, or its exporter down), and the firing alerts, the most severe and oldest first."""
    ordered = sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.severity, 2), a.active_since or math.inf, a.name))
    return {
        "prometheus": "up",
        "figures": {name: _finite(figures.get(name)) for name in FIGURES},
        "alerts": [
            {
                "name": alert.name,
                "severity": alert.severity,
                "summary": alert.summary,
                "since": round(alert.active_since * 1000) if alert.active_since is not None else None,
            }
            for alert in ordered
        ],
    }


def _finite(value: float | None) -> float | None:
    """NaN and infinities (a rate of nothing over nothing) are not JSON: no value."""
    return value if value is not None and math.isfinite(value) else None


class HealthStrip:
    """Asks Prometheus at most once per ``keep_s`` however many pages poll; the blocking client runs in a
    worker thread, as the HBase reads do."""

    def __init__(self, prometheus: Prometheus, keep_s: float = 2.0) -> None:
        self.prometheus = prometheus
        self.keep_s = keep_s
        self._lock = anyio.Lock()
        self._answer: dict[str, Any] | None = None
        self._answered_at = -math.inf

    async def read(self) -> dict[str, Any]:
        async with self._lock:
            if self._answer is None or time.monotonic() - self._answered_at >= self.keep_s:
                self._answer = await anyio.to_thread.run_sync(self.ask)
                self._answered_at = time.monotonic()
            return self._answer

    def ask(self) -> dict[str, Any]:
        """Prometheus's figures and alerts now, or why there are none (still an answer: the page says so)."""
        try:
            samples = self.prometheus.query(STRIP_QUERY)
            alerts = self.prometheus.firing()
        except PrometheusUnavailable as error:
            return {"prometheus": "down", "error": str(error)}
        figures = {s.labels["figure"]: s.value for s in samples if "figure" in s.labels}
        return strip_answer(figures, alerts)

    def close(self) -> None:
        self.prometheus.close()
