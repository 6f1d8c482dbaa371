"""The Prometheus API client against answers given in Prometheus's place (httpx.MockTransport): results as
labels and values, firing alerts only, and one sentence whenever Prometheus does not answer as its API does."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tickflow.errors import TickflowError
from tickflow.monitoring.promql import Prometheus, PrometheusUnavailable, prometheus_url
from tickflow.settings import Settings

URL = "http://127.0.0.1:9091"


def answering(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> Prometheus:
    return Prometheus(URL, transport=httpx.MockTransport(handler), **kwargs)


def success(data: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json={"status": "success", "data": data})


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": m, "value": [1.7e9, v]} for m, v in series]}


def test_the_address_is_the_stacks_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert prometheus_url(Settings()) == URL
    monkeypatch.setenv("TICKFLOW_PORT_PROMETHEUS", "19091")
    assert Prometheus.of(Settings()).url == "http://127.0.0.1:19091"


def test_an_instant_query_gives_each_series_labels_and_value() -> None:
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return success(vector(({"figure": "source_rate"}, "5000"), ({"figure": "batch_age_seconds"}, "NaN")))(request)

    query = 'label_replace(up, "figure", "x", "", "")'
    samples = answering(handler).query(query)
    assert (asked[0].url.path, asked[0].url.params["query"]) == ("/api/v1/query", query)
    assert [dict(s.labels) for s in samples] == [{"figure": "source_rate"}, {"figure": "batch_age_seconds"}]
    assert samples[0].value == 5000.0 and math.isnan(samples[1].value)


def test_a_scalar_is_one_unlabelled_sample_and_value_reads_a_single_series() -> None:
    scalar = answering(success({"resultType": "scalar", "result": [1.7e9, "42"]}))
    assert [(dict(s.labels), s.value) for s in scalar.query("42")] == [({}, 42.0)]
    assert answering(success(vector())).value("tickflow:stream_lag_records") is None
    one = answering(success(vector(({"__name__": "tickflow:stream_lag_records"}, "1200"))))
    assert one.value("tickflow:stream_lag_records") == 1200.0
    two = answering(success(vector(({"topic": "a"}, "1"), ({"topic": "b"}, "2"))))
    with pytest.raises(TickflowError, match=r"gave 2 series .* where one was expected"):
        two.value("lag")


def test_only_firing_alerts_are_kept_with_name_severity_summary_and_since() -> None:
    alerts = {
        "alerts": [
            {
                "labels": {"alertname": "TickflowStreamNoBatch", "severity": "critical", "stage": "stream"},
                "annotations": {"summary": "The enrichment stream has run no micro-batch for 2m 10s."},
                "state": "firing",
                "activeAt": "2026-12-07T17:00:00.123456789Z",
                "value": "1.3e+02",
            },
            {
                "labels": {"alertname": "TickflowStreamLagGrowing", "severity": "warning"},
                "annotations": {},
                "state": "pending",
                "activeAt": "2026-12-07T17:01:00Z",
            },
        ]
    }
    (alert,) = answering(success(alerts)).firing()
    assert (alert.name, alert.severity, alert.labels["stage"]) == ("TickflowStreamNoBatch", "critical", "stream")
    assert alert.summary.startswith("The enrichment stream has run no micro-batch")
    assert alert.active_since == pytest.approx(1796662800.123457)


def test_a_login_is_sent_as_basic_auth() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return success(vector())(request)

    answering(handler, auth=("reader", "s3cret")).query("up")
    assert seen == ["Basic " + base64.b64encode(b"reader:s3cret").decode()]


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


@pytest.mark.parametrize(
    ("handler", "why"),
    [
        (refused, "[Errno 111] Connection refused"),
        (timed_out, "no answer within 2s"),
        (lambda r: httpx.Response(503, text="Service Unavailable"), "HTTP 503 with an answer that is not the API"),
        (lambda r: httpx.Response(200, text="<html>not the API</html>"), "HTTP 200 with an answer that is not"),
        (
            lambda r: httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}),
            "HTTP 400, bad_data: parse error",
        ),
        (lambda r: httpx.Response(200, json={"status": "success"}), "its answer has no data"),
        (success({"resultType": "matrix", "result": []}), "a matrix result, not a vector or a scalar"),
        (success({"resultType": "vector", "result": [{"metric": {}}]}), "its vector result is malformed"),
    ],
)  # fmt: skip
def test_whatever_goes_wrong_is_one_sentence_naming_prometheus(
    handler: Callable[[httpx.Request], httpx.Response], why: str
) -> None:
    with pytest.raises(PrometheusUnavailable) as raised:
        answering(handler).query("up")
    sentence = str(raised.value)
    assert sentence.startswith(f"Prometheus at {URL} did not answer: ")
    assert why in sentence
    assert sentence.endswith(".") and "\n" not in sentence


def test_a_malformed_list_of_alerts_is_one_sentence_too() -> None:
    with pytest.raises(PrometheusUnavailable, match=r"did not answer: its list of alerts is malformed"):
        answering(success({"alerts": [{"state": "firing", "labels": {}}]})).firing()
