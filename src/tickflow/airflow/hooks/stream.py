"""The enrichment stream as Airflow sees it: Spark master from ``spark_default``, Kafka from ``kafka_default``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from tickflow.streamapp import EnrichmentStream, StreamHealth


class EnrichmentStreamHook(BaseHook):
    """Builds the managed enrichment stream and measures its health, from Connections.

    :param spark_conn_id: a ``spark`` connection; its host is the master (``local[2]``).
    :param kafka_conn_id: a ``kafka`` connection; used to read the input topic's high
        watermarks, so the health check can tell "idle" from "stalled".
    """

    conn_name_attr = "spark_conn_id"
    default_conn_name = "spark_default"
    hook_name = "tickflow enrichment stream"

    def __init__(self, spark_conn_id: str = "spark_default", kafka_conn_id: str = "kafka_default") -> None:
        super().__init__()
        self.spark_conn_id = spark_conn_id
        self.kafka_conn_id = kafka_conn_id

    def get_conn(self) -> EnrichmentStream:
        from tickflow.settings import Settings
        from tickflow.streamapp import EnrichmentStream

        master = self.get_connection(self.spark_conn_id).host or "local[2]"
        return EnrichmentStream(Settings(), master=master)

    def _consumer(self) -> Any:
        from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook

        return KafkaConsumerHook(topics=[], kafka_config_id=self.kafka_conn_id).get_conn

    def health(self, stream: EnrichmentStream | None = None) -> StreamHealth:
        stream = stream or self.get_conn()
        consumer = self._consumer()
        try:
            return stream.health(consumer)
        finally:
            consumer.close()
