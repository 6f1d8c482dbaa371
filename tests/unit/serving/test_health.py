"""GET /api/health with Prometheus answered in its place (httpx.MockTransport): the strip's figures and firing
alerts while it answers; while it does not, still 200 with one sentence saying so. The page shows every figure."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi.testclient import TestClient

from tickflow.hbase.store import Latest, MarketDataStore
from tickflow.monitoring.promql import Prometheus
from tickflow.serving.app import STATIC, create_app
from tickflow.serving.health import FIGURES, STRIP_QUERY
from tickflow.serving.settings import ServingSettings
from tickflow.settings import REPO_ROOT, Settings

URL = "http://127.0.0.1:9091"
# The strip's query is the one promtool evaluates against the rules.
STRIP_TEST = REPO_ROOT / "monitoring" / "tests" / "health_strip.test.yml"

FIRING = {
    "labels": {"alertname": "TickflowStreamNoBatch", "severity": "critical", "stage": "stream"},
    "annotations": {"summary": "The enrichment stream has run no micro-batch for 2m 10s while md.events has records."},
    "state": "firing",
    "activeAt": "2026-12-07T17:00:00.5Z",
}
WARNING = {
    "labels": {"alertname": "TickflowDeadLetterRateHigh", "severity": "warning"},
    "annotations": {"summary": "90 dead letters per minute to md.dlq (more than 60/min for 5 minutes)."},
    "state": "firing",
    "activeAt": "2026-12-07T16:00:00Z",
}
PENDING = {"labels": {"alertname": "TickflowStreamLagGrowing"}, "annotations": {}, "state": "pending"}


class NoHBase(MarketDataStore):
    def latest(self, instrument_ids: Sequence[str]) -> dict[str, Latest]:
        return {}

    def scan_latest(self, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {}

    def history(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def ping(self) -> None:
        pass


def figure(name: str, value: str) -> dict[str, Any]:
    return {"metric": {"__name__": FIGURES[name].split()[0], "figure": name}, "value": [1.7e9, value]}


class FakePrometheus:
    """Answers the two requests the strip makes, and counts them."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.result = [figure("source_rate", "5000"), figure("stream_lag_records", "1200"),
                       figure("batch_age_seconds", "NaN"), figure("dead_letters_per_minute", "30")]  # fmt: skip

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request.url.path)
        if request.url.path == "/api/v1/query":
            assert request.url.params["query"] == STRIP_QUERY
            data: dict[str, Any] = {"resultType": "vector", "result": self.result}
        else:
            data = {"alerts": [PENDING, WARNING, FIRING]}
        return httpx.Response(200, json={"status": "success", "data": data})


def serve(tmp_path: Path, handler: Callable[[httpx.Request], httpx.Response]) -> Iterator[TestClient]:
    settings = Settings(state_dir=tmp_path, secured=False)
    prometheus = Prometheus(URL, transport=httpx.MockTransport(handler))
    serving = ServingSettings(reference_from_hive=False)
    with TestClient(create_app(settings, serving, store=NoHBase(settings), prometheus=prometheus)) as client:
        yield client


def test_with_prometheus_up_every_figure_and_the_firing_alerts_most_severe_first(tmp_path: Path) -> None:
    fake = FakePrometheus()
    for client in serve(tmp_path, fake):
        response = client.get("/api/health")
        assert response.status_code == 200
        body = response.json()
    assert body["prometheus"] == "up"
    assert list(body["figures"]) == list(FIGURES)  # every figure, in the strip's order
    assert body["figures"]["source_rate"] == 5000
    assert body["figures"]["stream_lag_records"] == 1200
    assert body["figures"]["dead_letters_per_minute"] == 30
    assert body["figures"]["batch_age_seconds"] is None  # NaN is no value (and no JSON)
    assert body["figures"]["hbase_rate"] is None  # no series: nothing scraped yet
    assert body["alerts"] == [
        {"name": "TickflowStreamNoBatch", "severity": "critical", "summary": FIRING["annotations"]["summary"],
         "since": 1796662800500},
        {"name": "TickflowDeadLetterRateHigh", "severity": "warning", "summary": WARNING["annotations"]["summary"],
         "since": 1796659200000},
    ]  # fmt: skip


def test_with_prometheus_down_the_answer_is_still_200_with_one_sentence(tmp_path: Path) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    for client in serve(tmp_path, refused):
        response = client.get("/api/health")
        assert response.status_code == 200
        assert response.json() == {
            "prometheus": "down",
            "error": f"Prometheus at {URL} did not answer: [Errno 111] Connection refused.",
        }
        assert client.get("/api/latest?ids=").status_code == 400  # the rest of the API goes on as before


def test_pages_polling_together_ask_prometheus_once_per_moment(tmp_path: Path) -> None:
    fake = FakePrometheus()
    for client in serve(tmp_path, fake):
        for _ in range(5):
            assert client.get("/api/health").json()["prometheus"] == "up"
    assert fake.asked == ["/api/v1/query", "/api/v1/alerts"]


def test_the_strip_query_is_the_one_promtool_tests_against_the_rules() -> None:
    (test,) = yaml.safe_load(STRIP_TEST.read_text())["tests"]
    tested = [check["expr"] for check in test["promql_expr_test"]]
    assert " ".join(STRIP_QUERY.split()) in [" ".join(expr.split()) for expr in tested]


def test_the_page_has_a_place_for_every_figure() -> None:
    page = (STATIC / "index.html").read_text()
    assert re.findall(r'data-figure="([a-z_]+)"', page) == list(FIGURES)
    for element in ('id="health"', 'id="health-status"', 'id="health-alerts"'):
        assert element in page
    assert 'fetch("/api/health")' in (STATIC / "app.js").read_text()


def test_the_strip_needs_the_token_in_secured_mode(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, secured=True)
    serving = ServingSettings(reference_from_hive=False, token="a-token-long-enough-for-tests")
    prometheus = Prometheus(URL, transport=httpx.MockTransport(FakePrometheus()))
    with TestClient(create_app(settings, serving, store=NoHBase(settings), prometheus=prometheus)) as client:
        assert client.get("/api/health").status_code == 401
        bearer = {"Authorization": "Bearer a-token-long-enough-for-tests"}
        assert client.get("/api/health", headers=bearer).json()["prometheus"] == "up"
