"""The serving app's /metrics on a store that needs no HBase: the families after requests, routes by template,
live feeds and HBase reads, behind the token in secured mode, and an exposition promtool accepts."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tickflow.hbase.store import Latest, MarketDataStore
from tickflow.monitoring.promql import Prometheus
from tickflow.serving.app import MarketView, create_app
from tickflow.serving.catalogue import Catalogue
from tickflow.serving.metrics import ServingMetrics
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings

TOKEN = "a-token-long-enough-for-tests"
FAMILIES = {
    "tickflow_serving_requests": "counter",
    "tickflow_serving_request_duration_seconds": "histogram",
    "tickflow_serving_live_feeds": "gauge",
    "tickflow_serving_live_feed_updates": "counter",
    "tickflow_serving_hbase_read_duration_seconds": "histogram",
}


class Ticking(MarketDataStore):
    """md:latest: one instrument whose bid moves at every read; md:history: nothing."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.reads = 0

    def latest(self, instrument_ids: Sequence[str]) -> dict[str, Latest]:
        self.reads += 1
        values, as_of = {"bid_price": 10.0 + self.reads, "symbol": "A"}, {"bid_price": 1_764_000_000_000 + self.reads}
        return {i: Latest(i, values, as_of) for i in instrument_ids if i == "TEST:A"}

    def scan_latest(self, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {"TEST:A": {"symbol": "A"}}

    def history(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def ping(self) -> None:
        pass


def serve(settings: Settings, serving: ServingSettings | None = None) -> Iterator[TestClient]:
    serving = serving or ServingSettings(reference_from_hive=False)
    nowhere = Prometheus("http://127.0.0.1:9")  # /metrics never asks Prometheus anything
    with TestClient(create_app(settings, serving, store=Ticking(settings), prometheus=nowhere)) as client:
        yield client


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    yield from serve(Settings(state_dir=tmp_path, secured=False))


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def test_metrics_exposes_every_family_after_requests(api: TestClient) -> None:
    assert api.get("/api/latest?ids=TEST:A").status_code == 200
    assert api.get("/api/history/TEST:A").status_code == 200
    assert api.get("/healthz").status_code == 200
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    types = {family.name: family.type for family in text_string_to_metric_families(response.text)}
    assert {name: types.get(name) for name in FAMILIES} == FAMILIES
    read = samples(response.text)
    for operation in ("latest", "history", "ping"):
        assert read[("tickflow_serving_hbase_read_duration_seconds_count", frozenset({("operation", operation)}))] >= 1


def test_the_route_label_is_the_template_never_the_path(api: TestClient) -> None:
    for instrument in ("TEST:A", "TEST:B", "TEST:C"):
        api.get(f"/api/history/{instrument}")
    api.get("/no/such/page")
    api.get("/static/style.css")
    read = samples(api.get("/metrics").text)
    routes = {dict(labels)["route"] for name, labels in read if name == "tickflow_serving_requests_total"}
    assert routes == {"/api/history/{instrument_id}", "unmatched", "/static"}

    def requests(route: str, status: str) -> float:
        labels = frozenset({("route", route), ("method", "GET"), ("status", status)})
        return read[("tickflow_serving_requests_total", labels)]

    assert requests("/api/history/{instrument_id}", "404") == 2  # B and C are known to nobody
    assert requests("/api/history/{instrument_id}", "200") == 1
    assert requests("unmatched", "404") == 1


def test_a_method_nobody_uses_is_counted_as_other(api: TestClient) -> None:
    api.request("BREW", "/api/latest?ids=TEST:A")
    read = samples(api.get("/metrics").text)
    methods = {dict(labels)["method"] for name, labels in read if name == "tickflow_serving_requests_total"}
    assert methods == {"other"}


def test_a_live_feed_counts_itself_open_and_its_updates(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, secured=False)
    store = Ticking(settings)
    metrics = ServingMetrics()
    view = MarketView(store, Catalogue(None, lambda: []), ServingSettings(poll_ms=50), metrics)

    class Request:
        polls = 0

        async def is_disconnected(self) -> bool:
            self.polls += 1
            return self.polls > 3

    async def watch() -> list[float]:
        open_during: list[float] = []
        feed = view.feed(Request(), ["TEST:A"], store.latest(["TEST:A"]))  # type: ignore[arg-type]
        async for _ in feed:
            open_during.append(metrics.registry.get_sample_value("tickflow_serving_live_feeds") or 0.0)
        return open_during

    assert set(anyio.run(watch)) == {1.0}
    read = samples(metrics.exposition().decode())
    assert read[("tickflow_serving_live_feeds", frozenset())] == 0
    assert read[("tickflow_serving_live_feed_updates_total", frozenset())] == 3
    assert read[("tickflow_serving_hbase_read_duration_seconds_count", frozenset({("operation", "latest")}))] == 3


def test_in_secured_mode_metrics_asks_for_the_token_and_counts_the_refusal(tmp_path: Path) -> None:
    serving = ServingSettings(reference_from_hive=False, token=TOKEN)
    for client in serve(Settings(state_dir=tmp_path, secured=True), serving):
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        refused = frozenset({("route", "unmatched"), ("method", "GET"), ("status", "401")})
        assert samples(response.text)[("tickflow_serving_requests_total", refused)] == 1


def test_promtool_accepts_the_exposition(api: TestClient) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: install Debian's prometheus package (it brings /usr/bin/promtool).")
    api.get("/api/latest?ids=TEST:A")
    api.get("/api/history/TEST:A")
    api.get("/healthz")
    exposition = api.get("/metrics").text
    check = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
