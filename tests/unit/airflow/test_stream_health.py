"""The DAG's stream health asks Prometheus (answered here by httpx.MockTransport) and falls back to the progress
file and the topic's watermarks when Prometheus does not answer: monitoring that is down fails no DAG."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tickflow-airflow-home-"))

from airflow.sdk.exceptions import AirflowException

from tickflow.airflow.hooks.stream import EnrichmentStreamHook
from tickflow.airflow.sensors.stream import EnrichmentStreamHealthSensor
from tickflow.appctl import AppRecord
from tickflow.kafka_auth import Principal
from tickflow.monitoring.promql import Prometheus
from tickflow.settings import Settings
from tickflow.stream.control import EnrichmentStream, StreamHealth, Verdict
from tickflow.stream.progress import StreamProgress

URL = "http://127.0.0.1:9091"
NO_BATCH = {
    "labels": {"alertname": "TickflowStreamNoBatch", "severity": "critical", "stage": "stream"},
    "annotations": {"summary": "The enrichment stream has run no micro-batch for 8m 20s."},
    "state": "firing",
    "activeAt": "2026-12-07T17:00:00Z",
}


class Stream(EnrichmentStream):
    """The stream of a temporary state directory, running for an hour, its last batch ``batch_age_s`` ago;
    the watermark path (Kafka) answers a canned health and counts its calls."""

    def __init__(self, root: Path, batch_age_s: float) -> None:
        super().__init__(Settings(state_dir=root, secured=False))
        now = time.time()
        running = AppRecord(pid=42, start_ticks=1, started_at=now - 3600, command=["x"], log="l")
        self.control = SimpleNamespace(running=lambda: running, stopped_on_request=lambda: None)  # type: ignore[assignment]
        self.progress_path.parent.mkdir(parents=True, exist_ok=True)
        self.progress_path.write_text(StreamProgress(written_at=now - batch_age_s, batch_id=7).model_dump_json())
        self.fallbacks: list[Principal] = []

    def health_with_lag(self, principal: Principal) -> StreamHealth:
        self.fallbacks.append(principal)
        return StreamHealth(Verdict.HEALTHY, "micro-batches flowing", lag=3)


def prometheus_answering(
    monkeypatch: pytest.MonkeyPatch, lag: str | None = None, alerts: list[dict[str, Any]] | None = None
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/query":
            assert request.url.params["query"] == "tickflow:stream_lag_records"
            series = [] if lag is None else [{"metric": {"__name__": "tickflow:stream_lag_records"}, "value": [0, lag]}]
            data: dict[str, Any] = {"resultType": "vector", "result": series}
        else:
            data = {"alerts": alerts or []}
        return httpx.Response(200, json={"status": "success", "data": data})

    served(monkeypatch, handler)


def served(monkeypatch: pytest.MonkeyPatch, handler: Callable[[httpx.Request], httpx.Response]) -> None:
    prometheus = lambda self: Prometheus(URL, transport=httpx.MockTransport(handler))  # noqa: E731
    monkeypatch.setattr(EnrichmentStreamHook, "prometheus", prometheus)


def test_a_firing_no_batch_alert_is_a_stall_with_prometheus_lag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = Stream(tmp_path, batch_age_s=500)
    prometheus_answering(monkeypatch, lag="1200", alerts=[NO_BATCH])
    health = EnrichmentStreamHook().health(stream)
    assert health.verdict is Verdict.STALLED
    assert health.reason.startswith("TickflowStreamNoBatch fires")
    assert (health.lag, health.batch_id) == (1200, 7)  # the lag Prometheus has, the batch from the progress file
    assert stream.fallbacks == []  # no watermark read


def test_no_alert_and_no_lag_is_healthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Stream(tmp_path, batch_age_s=500)
    prometheus_answering(monkeypatch, lag="0")
    health = EnrichmentStreamHook().health(stream)
    assert (health.verdict, health.reason, health.lag) == (Verdict.HEALTHY, "idle, nothing to read", 0)


def test_without_prometheus_the_check_reads_the_progress_file_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    stream = Stream(tmp_path, batch_age_s=5)
    served(monkeypatch, refused)
    health = EnrichmentStreamHook().health(stream)
    assert stream.fallbacks == [Principal.AIRFLOW]
    assert health.verdict is Verdict.HEALTHY
    assert health.reason == "micro-batches flowing (Prometheus not answering: figures from the progress file)"
    assert "(Prometheus not answering: figures from the progress file)" in health.line()


def test_prometheus_without_the_lag_figure_is_no_evidence_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = Stream(tmp_path, batch_age_s=5)
    prometheus_answering(monkeypatch, lag=None)
    health = EnrichmentStreamHook().health(stream)
    assert stream.fallbacks == [Principal.AIRFLOW]
    assert health.reason.endswith("(Prometheus has no tickflow:stream_lag_records: figures from the progress file)")


def test_the_sensor_fails_the_task_on_the_alert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Stream(tmp_path, batch_age_s=500)
    monkeypatch.setattr(EnrichmentStreamHook, "get_conn", lambda self: stream)
    prometheus_answering(monkeypatch, lag="1200", alerts=[NO_BATCH])
    with pytest.raises(AirflowException, match="enrichment stream STALLED: TickflowStreamNoBatch fires"):
        EnrichmentStreamHealthSensor(task_id="check_stream_health").poke({})


def test_prometheus_is_the_connections_else_the_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_PROMETHEUS_DEFAULT", raising=False)
    assert EnrichmentStreamHook().prometheus().url == URL
    monkeypatch.setenv("AIRFLOW_CONN_PROMETHEUS_DEFAULT", "http://reader:a-long-password@127.0.0.5:19091")
    seen: list[str] = []

    def handle(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host}:{request.url.port} {request.headers.get('authorization', '')[:6]}")
        return httpx.Response(200, json={"status": "success", "data": {"alerts": []}})

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle)
    with EnrichmentStreamHook().prometheus() as prometheus:
        assert prometheus.url == "http://127.0.0.5:19091"
        assert prometheus.firing() == []
    assert seen == ["127.0.0.5:19091 Basic "]
