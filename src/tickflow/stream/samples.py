"""The newest records of the stream's output topic, for a person watching ``tickflow stream --samples N``."""

from __future__ import annotations

from typing import Any

from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.settings import Settings

SAMPLE_FIELDS = ("instrument_id", "event_time", "bid_price", "ask_price", "last_price", "trade_price", "sector",
                 "currency", "mid_usd", "enriched")  # fmt: skip


class OutputSamples:
    """A consumer at the end of ``topic`` (commits nothing) and the registry's Avro deserializer."""

    def __init__(self, settings: Settings, topic: str) -> None:
        from confluent_kafka import Consumer
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        self.consumer = Consumer(
            {**kafka_client_config(settings, Principal.ADMIN), "group.id": "tickflow-cli-samples",
             "auto.offset.reset": "latest", "enable.auto.commit": False}
        )  # fmt: skip
        self.consumer.subscribe([topic])
        self.deserialize = AvroDeserializer(SchemaRegistryClient(settings.registry_client_config))

    def latest(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` of the records that arrived since the last call, newest last, with SAMPLE_FIELDS set."""
        messages = [m for m in self.consumer.consume(10_000, 0.2) if m.error() is None]
        records = [self.deserialize(m.value(), None) for m in messages[-count:]]
        return [{k: r[k] for k in SAMPLE_FIELDS if r.get(k) is not None} for r in records]

    def close(self) -> None:
        self.consumer.close()
