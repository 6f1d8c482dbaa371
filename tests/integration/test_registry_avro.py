"""Avro through Kafka with the schema registry, as confluent-kafka clients use it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.support.kafka import as_admin
from tickflow.settings import Settings

pytestmark = pytest.mark.integration

QUOTE_V1 = {
    "type": "record",
    "name": "Quote",
    "namespace": "tickflow.test",
    "fields": [
        {"name": "instrument_id", "type": "string"},
        {"name": "bid", "type": ["null", "double"], "default": None},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


def _subject() -> str:
    return f"test.{uuid.uuid4().hex[:12]}-value"


def test_avro_records_round_trip_identical(stack: Settings, tmp_topic: str) -> None:
    registry = SchemaRegistryClient(stack.registry_client_config)
    serialize = AvroSerializer(registry, json.dumps(QUOTE_V1))
    deserialize = AvroDeserializer(registry)
    context = SerializationContext(tmp_topic, MessageField.VALUE)
    now = datetime.now(UTC)
    sent = [
        {"instrument_id": f"I{i % 7}", "bid": None if i % 3 == 0 else 100 + i / 8, "event_time": now}
        for i in range(300)
    ]

    producer = Producer(as_admin(stack))
    for record in sent:
        producer.produce(tmp_topic, serialize(record, context), key=record["instrument_id"])
    assert producer.flush(30) == 0

    consumer = Consumer({**as_admin(stack), "group.id": tmp_topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([tmp_topic])
    received = []
    try:
        while len(received) < len(sent):
            message = consumer.poll(10)
            assert message is not None, f"only {len(received)} of {len(sent)} records came back"
            assert message.error() is None
            assert message.value()[0] == 0, "Confluent wire format starts with magic byte 0"
            received.append(deserialize(message.value(), context))
    finally:
        consumer.close()
    key = lambda r: (r["instrument_id"], r["bid"] is None, r["bid"] or 0)  # noqa: E731
    assert sorted(received, key=key) == sorted(sent, key=key)
    assert registry.get_latest_version(f"{tmp_topic}-value").schema.schema_str is not None


def test_incompatible_change_is_refused(stack: Settings) -> None:
    registry = SchemaRegistryClient(stack.registry_client_config)
    subject = _subject()
    first_id = registry.register_schema(subject, Schema(json.dumps(QUOTE_V1), "AVRO"))

    # A new required field without a default cannot read old records: BACKWARD forbids it.
    breaking = {**QUOTE_V1, "fields": [*QUOTE_V1["fields"], {"name": "venue", "type": "string"}]}
    assert registry.test_compatibility(subject, Schema(json.dumps(breaking), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        registry.register_schema(subject, Schema(json.dumps(breaking), "AVRO"))
    assert refused.value.http_status_code == 409

    # An optional field with a default is a compatible evolution and gets a new id.
    optional = {
        **QUOTE_V1,
        "fields": [*QUOTE_V1["fields"], {"name": "venue", "type": ["null", "string"], "default": None}],
    }
    assert registry.test_compatibility(subject, Schema(json.dumps(optional), "AVRO")) is True
    second_id = registry.register_schema(subject, Schema(json.dumps(optional), "AVRO"))
    assert second_id != first_id
    assert [v for v in registry.get_versions(subject)] == [1, 2]
