"""The enrichment stream as Airflow sees it, configured by the same ``TICKFLOW_*`` settings as the app.

The Spark master and the Kafka cluster whose lag health measures come from those settings, so the
health check always looks at the topic the app reads (the ``spark_default`` and ``kafka_default``
connections are written from the same settings, for Airflow's own providers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from tickflow.stream.control import EnrichmentStream, StreamHealth


class EnrichmentStreamHook(BaseHook):
    """Builds the managed enrichment stream and measures its health (lag read from the input topic's
    high watermarks, so the health check can tell "idle" from "stalled")."""

    hook_name = "tickflow enrichment stream"

    def get_conn(self) -> EnrichmentStream:
        from tickflow.settings import Settings
        from tickflow.stream.control import EnrichmentStream

        return EnrichmentStream(Settings())

    def health(self, stream: EnrichmentStream | None = None) -> StreamHealth:
        from tickflow.kafka_auth import Principal

        return (stream or self.get_conn()).health_with_lag(Principal.AIRFLOW)
