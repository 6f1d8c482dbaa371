"""A smoke round trip: Avro records through the registry and Kafka, read back identical.

This is what ``tickflow smoke`` (and the demo) runs to prove the stack carries data,
not only that its ports answer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tickflow.errors import TickflowError
from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.settings import Settings

TOPIC = "_tickflow.smoke"
PING_SCHEMA = """
{
  "type": "record",
  "name": "Ping",
  "namespace": "tickflow.smoke",
  "doc": "A record sent through the stack to prove it carries Avro end to end.",
  "fields": [
    {"name": "run_id", "type": "string"},
    {"name": "seq", "type": "long"},
    {"name": "sent_at", "type": {"type": "long", "logicalType": "timestamp-micros"}}
  ]
}
"""


@dataclass(frozen=True)
class SmokeResult:
    topic: str
    count: int
    schema_id: int
    seconds: float


def avro_round_trip(settings: Settings, count: int = 1000, timeout_s: float = 30.0) -> SmokeResult:
    started = time.monotonic()
    registry = SchemaRegistryClient(settings.registry_client_config)
    serializer = AvroSerializer(registry, PING_SCHEMA)
    deserializer = AvroDeserializer(registry)
    run_id = uuid.uuid4().hex
    context = SerializationContext(TOPIC, MessageField.VALUE)
    sent = [{"run_id": run_id, "seq": seq, "sent_at": datetime.now(UTC)} for seq in range(count)]
    first_offset: dict[int, int] = {}

    def remember(err: object, msg: object) -> None:
        if err is None:
            partition, offset = msg.partition(), msg.offset()  # type: ignore[attr-defined]
            first_offset[partition] = min(offset, first_offset.get(partition, offset))

    client = kafka_client_config(settings, Principal.ADMIN)  # the stack's own topic, like its health check
    producer = Producer({**client, "linger.ms": 5, "enable.idempotence": True})
    for record in sent:
        producer.produce(TOPIC, serializer(record, context), key=run_id, on_delivery=remember)
    if producer.flush(timeout_s) or not first_offset:
        raise TickflowError(f"Kafka at {settings.bootstrap_servers} did not take the smoke records: is the stack up?")

    consumer = Consumer(
        {
            **client,
            "group.id": f"tickflow-smoke-{run_id}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, o) for p, o in first_offset.items()])
    received: list[dict[str, object]] = []
    schema_id = -1
    deadline = time.monotonic() + timeout_s
    try:
        while len(received) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            value = message.value() or b""
            schema_id = int.from_bytes(value[1:5], "big")
            record = deserializer(value, context)
            if record["run_id"] == run_id:
                received.append(record)
    finally:
        consumer.close()
    if received != sent:
        raise TickflowError(
            f"The smoke round trip read back {len(received)} of {count} records, or different ones: "
            "run `tickflow stack status` and read the kafka and registry logs."
        )
    return SmokeResult(TOPIC, count, schema_id, time.monotonic() - started)
