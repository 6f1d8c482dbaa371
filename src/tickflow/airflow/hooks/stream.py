"""The enrichment stream as Airflow sees it, configured by the same ``TICKFLOW_*`` settings as the app.

The Spark master and the Kafka cluster whose lag health measures come from those settings, so the
health check always looks at the topic the app reads (the ``spark_default`` and ``kafka_default``
connections are written from the same settings, for Airflow's own providers).

Health asks Prometheus first (connection ``prometheus_default``, else the stack's address from the
settings): the lag its alert rules read and whether TickflowStreamNoBatch fires, so the DAG and the
alert call the same stream stalled. Monitoring that is down must not fail the DAG: without Prometheus
the check reads the progress file and the topic's watermarks, as it did before Prometheus, and says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from tickflow.monitoring.promql import Prometheus
    from tickflow.stream.control import EnrichmentStream, StreamHealth

WITHOUT_PROMETHEUS = "figures from the progress file"


class EnrichmentStreamHook(BaseHook):
    """Builds the managed enrichment stream and measures its health (lag from Prometheus, else read from
    the input topic's high watermarks, so the health check can tell "idle" from "stalled")."""

    hook_name = "tickflow enrichment stream"
    prometheus_conn_id = "prometheus_default"

    def get_conn(self) -> EnrichmentStream:
        from tickflow.settings import Settings
        from tickflow.stream.control import EnrichmentStream

        return EnrichmentStream(Settings())

    def prometheus(self) -> Prometheus:
        """The ``prometheus_default`` connection's Prometheus (its login, if any, as basic auth), else the
        stack's at the settings' address."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        from tickflow.monitoring.promql import Prometheus
        from tickflow.settings import Settings

        try:
            connection = self.get_connection(self.prometheus_conn_id)
        except AirflowNotFoundException:
            return Prometheus.of(Settings())
        scheme = connection.schema or "http"
        url = f"{scheme}://{connection.host}" + (f":{connection.port}" if connection.port else "")
        auth = (connection.login, connection.password or "") if connection.login else None
        return Prometheus(url, auth)

    def health(self, stream: EnrichmentStream | None = None) -> StreamHealth:
        from tickflow.kafka_auth import Principal
        from tickflow.monitoring.promql import PrometheusUnavailable
        from tickflow.stream.control import STREAM_LAG_RECORDS, monitored_figures

        stream = stream or self.get_conn()
        try:
            with self.prometheus() as prometheus:
                figures = monitored_figures(prometheus)
        except PrometheusUnavailable as error:
            self.log.warning("%s The health check reads the progress file and the topic instead.", error)
            return _noting(stream.health_with_lag(Principal.AIRFLOW), f"Prometheus not answering: {WITHOUT_PROMETHEUS}")
        if figures is None:
            fallback = stream.health_with_lag(Principal.AIRFLOW)
            return _noting(fallback, f"Prometheus has no {STREAM_LAG_RECORDS}: {WITHOUT_PROMETHEUS}")
        return stream.health(monitored=figures)


def _noting(health: StreamHealth, note: str) -> StreamHealth:
    return replace(health, reason=f"{health.reason} ({note})")
