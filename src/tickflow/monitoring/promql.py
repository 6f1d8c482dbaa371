"""A small client of Prometheus's HTTP API: instant queries and the alerts that fire.

The serving page's health strip and Airflow's stream health read their figures through it, so both show
what the alert rules see (docs/operations.md). Every call has a short timeout: both
callers answer without Prometheus, and would rather do so at once than wait for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from tickflow.errors import TickflowError
from tickflow.runtime.scrape import metrics_login
from tickflow.settings import Settings

TIMEOUT_S = 2.0


class PrometheusUnavailable(TickflowError):
    """Prometheus did not answer, or answered something that is not its API's answer."""


def prometheus_url(settings: Settings) -> str:
    """The stack's Prometheus (it listens on the edge host, like the serving API)."""
    return f"http://{settings.host}:{settings.ports.prometheus}"


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's result: its labels (``__name__`` among them when it has one) and value."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Alert:
    """An alert that fires: its rule's name, labels and annotations, and since when it is active."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    active_since: float | None = None  # s since the epoch

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")


class Prometheus:
    """Prometheus's HTTP API at ``url``. ``auth`` is a basic-auth login (user, password), for a Prometheus
    behind a web config; ``transport`` lets tests answer in its place."""

    def __init__(
        self,
        url: str,
        auth: tuple[str, str] | None = None,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.Client(base_url=self.url, auth=auth, timeout=timeout_s, transport=transport)

    @classmethod
    def of(cls, settings: Settings) -> Prometheus:
        """The stack's Prometheus at the settings' address, with the metrics login in secured mode."""
        return cls(prometheus_url(settings), metrics_login(settings))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def query(self, promql: str) -> list[Sample]:
        """An instant query at the present moment: one sample per series (a scalar's result is one, unlabelled)."""
        data = self._get("/api/v1/query", {"query": promql})
        kind, result = data.get("resultType"), data.get("result")
        if not isinstance(result, list):
            raise self._unavailable(f"its {kind} result is not a list")
        try:
            if kind == "vector":
                return [Sample(dict(series.get("metric", {})), float(series["value"][1])) for series in result]
            if kind == "scalar":
                return [Sample({}, float(result[1]))]
        except (TypeError, KeyError, IndexError, ValueError) as error:
            raise self._unavailable(f"its {kind} result is malformed ({error!r})") from error
        raise self._unavailable(f"an instant query gave a {kind} result, not a vector or a scalar")

    def value(self, promql: str) -> float | None:
        """The one value of a query meant to give at most one series (a recording rule's, an aggregate);
        None when no series has a value now (nothing scraped, or the rule not yet evaluated)."""
        samples = self.query(promql)
        if len(samples) > 1:
            raise TickflowError(
                f"{promql} gave {len(samples)} series at {self.url} where one was expected: aggregate it (sum, max)."
            )
        return samples[0].value if samples else None

    def firing(self) -> list[Alert]:
        """The alerts that fire now (pending ones, still inside their ``for:``, are left out)."""
        data = self._get("/api/v1/alerts")
        try:
            return [
                Alert(
                    name=alert["labels"]["alertname"],
                    labels=dict(alert["labels"]),
                    annotations=dict(alert.get("annotations") or {}),
                    active_since=_epoch_s(alert.get("activeAt")),
                )
                for alert in data["alerts"]
                if alert.get("state") == "firing"
            ]
        except (TypeError, KeyError) as error:
            raise self._unavailable(f"its list of alerts is malformed ({error!r})") from error

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The ``data`` of the API's answer; anything else is PrometheusUnavailable, in one sentence."""
        try:
            response = self._client.get(path, params=params)
        except httpx.TimeoutException as error:
            raise self._unavailable(f"no answer within {self.timeout_s:g}s") from error
        except httpx.HTTPError as error:
            raise self._unavailable(str(error) or type(error).__name__) from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._unavailable(f"HTTP {response.status_code} with an answer that is not the API's JSON")
        if response.status_code != 200 or body.get("status") != "success":
            problem = f"{body.get('errorType', 'error')}: {body.get('error', 'no reason given')}"
            raise self._unavailable(f"HTTP {response.status_code}, {problem}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._unavailable("its answer has no data")
        return data

    def _unavailable(self, why: str) -> PrometheusUnavailable:
        return PrometheusUnavailable(f"Prometheus at {self.url} did not answer: {why.rstrip('.')}.")


def _epoch_s(rfc3339: str | None) -> float | None:
    """Prometheus's times (RFC 3339, nanoseconds; Python keeps microseconds) in s since the epoch."""
    if not rfc3339:
        return None
    try:
        seconds = datetime.fromisoformat(rfc3339).timestamp()
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None
