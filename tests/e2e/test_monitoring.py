"""Monitoring end to end, on the running pipeline (simulator -> md.events -> stream -> md.enriched -> HBase sink):
every scrape target is up, stopping the sink and killing the stream fire their alerts, which resolve when the
component is back, and the page's health strip follows it all, and says so when Prometheus itself is down.

tickflow-exporter is restarted with short thresholds (the stream's stall time and the sink's lag age), so the
alerts fire in seconds; Prometheus reads them from the exporter, as it reads the defaults in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.stack import tickflow
from tickflow.processes import session_members
from tickflow.retry import wait_for
from tickflow.runtime.scrape import metrics_login
from tickflow.serving.app import create_app
from tickflow.serving.auth import login_url, serving_token
from tickflow.serving.server import running
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectClient
from tickflow.sinks.hbase import HBaseSinkSettings, deploy
from tickflow.stream.control import EnrichmentStream

STALL_S, SINK_LAG_S = 20, 15
SHORT_THRESHOLDS = {
    "TICKFLOW_STREAM_STALL_AFTER_S": str(STALL_S),
    "TICKFLOW_HBASE_SINK_LAG_ALERT_AFTER_S": str(SINK_LAG_S),
}


def prometheus(settings: Settings, path: str, **params: str) -> Any:
    url = f"http://{settings.host}:{settings.ports.prometheus}{path}"
    response = httpx.get(url, params=params, auth=metrics_login(settings), timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def firing(settings: Settings) -> set[str]:
    return {
        a["labels"]["alertname"] for a in prometheus(settings, "/api/v1/alerts")["alerts"] if a["state"] == "firing"
    }


def value(settings: Settings, expr: str) -> float | None:
    result = prometheus(settings, "/api/v1/query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else None


def wait_alert(settings: Settings, alert: str, fired: bool, timeout_s: float) -> float:
    """Wait until ``alert`` fires (or stops firing); returns the seconds it took."""
    start = time.monotonic()
    wait_for(
        lambda: (alert in firing(settings)) == fired,
        timeout_s,
        interval_s=2,
        timed_out=lambda _: AssertionError(
            f"{alert} {'did not fire' if fired else 'still fires'} after {timeout_s:.0f}s; firing: {firing(settings)}"
        ),
    )
    return time.monotonic() - start


def restart_exporter(env: dict[str, str]) -> None:
    tickflow("stack", "down", "tickflow-exporter")
    tickflow("stack", "up", "tickflow-exporter", env=env)


@pytest.fixture(scope="module")
def pipeline(stack: Settings) -> Iterator[Settings]:
    restart_exporter({**os.environ, **SHORT_THRESHOLDS})
    deploy(stack, HBaseSinkSettings())
    EnrichmentStream(stack).start()
    feed = subprocess.Popen(
        [sys.executable, "-m", "tickflow.cli", "simulate", "--rate", "500", "--duration", "900"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield stack
    finally:
        os.killpg(feed.pid, signal.SIGTERM)
        feed.wait(30)
        EnrichmentStream(stack).stop(grace_s=30)
        restart_exporter({k: v for k, v in os.environ.items() if k not in SHORT_THRESHOLDS})


@pytest.fixture(scope="module")
def served(pipeline: Settings) -> Iterator[str]:
    """The serving app (its /metrics one more target), and the page's URL."""
    with running(create_app(pipeline, ServingSettings()), pipeline.host, pipeline.ports.serving + 17) as url:
        yield login_url(f"{url}/", serving_token(pipeline, ServingSettings())) if pipeline.secured else f"{url}/"


def test_every_scrape_target_is_up_and_the_strip_shows_the_flow(pipeline: Settings, served: str, page: Any) -> None:
    from playwright.sync_api import Page, expect

    jobs = {"prometheus", "kafka", "connect", "hbase", "postgres", "tickflow-exporter", "serving", "stream"}

    def all_up() -> bool:
        targets = prometheus(pipeline, "/api/v1/targets")["activeTargets"]
        return {t["labels"]["job"] for t in targets} >= jobs and all(t["health"] == "up" for t in targets)

    wait_for(all_up, 90, interval_s=2, timed_out=lambda _: AssertionError(
        "targets not all up: " + str([(t["scrapeUrl"], t["health"], t["lastError"])
                                      for t in prometheus(pipeline, "/api/v1/targets")["activeTargets"]])))  # fmt: skip
    # The stream's own figures, Spark's and the lag per stage are all there.
    wait_for(
        lambda: (value(pipeline, "tickflow:stream_events_in:rate1m") or 0) > 0,
        120,
        interval_s=2,
        timed_out=lambda _: AssertionError("Prometheus has no rate of the stream's input from tickflow-exporter"),
    )
    assert value(pipeline, "tickflow:stream_lag_records") is not None
    assert value(pipeline, "tickflow:hbase_sink_lag_records") is not None
    assert value(pipeline, "max(spark_driver_spark_streaming_tickflow_enrichment_inputRate_total_Value)") is not None

    assert isinstance(page, Page)
    page.goto(served)
    rate = page.locator('#health [data-figure="stream_rate"]')
    expect(page.locator("#health")).to_have_attribute("data-prometheus", "up", timeout=15_000)
    expect(rate).not_to_have_attribute("data-value", "", timeout=30_000)
    first = rate.get_attribute("data-value")
    expect(rate).not_to_have_attribute("data-value", first or "", timeout=30_000)  # the strip follows the flow
    assert float(rate.get_attribute("data-value") or 0) > 0


def test_a_stopped_sink_fires_the_sink_lag_alert_which_resolves_when_it_runs_again(pipeline: Settings) -> None:
    connect, sink = ConnectClient(pipeline.connect_urls), HBaseSinkSettings().name
    connect._request("PUT", f"/connectors/{sink}/pause").raise_for_status()
    try:
        took = wait_alert(pipeline, "TickflowHBaseSinkLagGrowing", True, SINK_LAG_S + 90)
        print(f"TickflowHBaseSinkLagGrowing fired {took:.0f}s after the sink paused (threshold {SINK_LAG_S}s)")
    finally:
        connect._request("PUT", f"/connectors/{sink}/resume").raise_for_status()
    took = wait_alert(pipeline, "TickflowHBaseSinkLagGrowing", False, 90)
    print(f"and resolved {took:.0f}s after it resumed")


def test_a_killed_stream_fires_no_batch_on_the_page_and_it_resolves_after_a_restart(
    pipeline: Settings, served: str, page: Any
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(served)
    expect(page.locator("#health-status")).to_have_text("no alert firing", timeout=30_000)
    record = EnrichmentStream(pipeline).control.running()
    assert record is not None, "the stream is not running"
    sid = os.getsid(record.pid)
    while members := session_members(sid):  # kill -9 of the whole app: spark-submit's JVM and the Python driver
        for pid in members:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    took = wait_alert(pipeline, "TickflowStreamNoBatch", True, STALL_S + 90)
    print(f"TickflowStreamNoBatch fired {took:.0f}s after the kill (threshold {STALL_S}s)")
    expect(page.locator('#health-alerts li[data-alert="TickflowStreamNoBatch"]')).to_be_visible(timeout=15_000)
    page.screenshot(path=str(pipeline.root / "logs" / "e2e-health-strip.png"))

    EnrichmentStream(pipeline).start()
    took = wait_alert(pipeline, "TickflowStreamNoBatch", False, 180)
    print(f"and resolved {took:.0f}s after the restart began")
    expect(page.locator('#health-alerts li[data-alert="TickflowStreamNoBatch"]')).to_have_count(0, timeout=15_000)


def test_the_page_says_when_prometheus_is_down_and_goes_on_serving(pipeline: Settings, served: str, page: Any) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    tickflow("stack", "down", "prometheus")
    try:
        page.goto(served)
        expect(page.locator("#health-status")).to_contain_text("Prometheus is not answering", timeout=20_000)
        expect(page.locator("#health")).to_have_attribute("data-prometheus", "down")
        base = served.split("?")[0]
        headers = {"Authorization": f"Bearer {serving_token(pipeline, ServingSettings())}"} if pipeline.secured else {}
        found = httpx.get(f"{base}api/instruments", params={"q": "A"}, headers=headers, timeout=10)
        assert found.status_code == 200 and found.json(), found.text
    finally:
        tickflow("stack", "up", "prometheus")
