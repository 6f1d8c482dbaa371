"""Ingestion against the real stack: simulators -> Kafka (Avro, registry) -> consumers."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.support.kafka import as_admin
from tests.support.stack import tickflow
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, event_slices, run_feed
from tickflow.sources.simulator import Source, generators
from tickflow.sources.universe import build_universe
from tickflow.topics import TOPICS

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parents[1] / "fixtures" / "schemas"
START = 1_795_793_405_000_000


def register(settings: Settings, subject: str, text: str) -> int:
    client = SchemaRegistryClient(settings.registry_client_config)
    return int(client.register_schema(subject, Schema(text, "AVRO")))


def consume_all(settings: Settings, topic: str, expected: int, timeout_s: float = 60) -> list[Any]:
    consumer = Consumer(
        {
            **as_admin(settings),
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    try:
        idle = 0
        while len(messages) < expected and idle < timeout_s:
            batch = consumer.consume(10_000, 1.0)
            idle = 0 if batch else idle + 1
            messages.extend(m for m in batch if m.error() is None)
    finally:
        consumer.close()
    return messages


def test_three_sources_flow_decodable_keyed_and_with_injected_faults(stack: Settings, tmp_topic: str) -> None:
    schema = load("tickflow.md.MarketEvent", stack.schemas_dir)
    schema_id = register(stack, f"{tmp_topic}-value", schema.text)
    config = FeedConfig(rate=50_000, count=20_000, seed=21, instruments=100, out_of_order=0.1,
                        duplicates=0.02, corrupt=0.05, start_us=START, topic=tmp_topic)  # fmt: skip
    stats = run_feed(stack, config, schema_id)
    assert stats.sent == 20_000 and stats.failed == 0

    messages = consume_all(stack, tmp_topic, stats.messages)
    assert len(messages) == stats.messages

    deserialize = AvroDeserializer(SchemaRegistryClient(stack.registry_client_config))
    context = SerializationContext(tmp_topic, MessageField.VALUE)
    decoded, undecodable = [], 0
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for message in messages:
        partitions_of[message.key().decode()].add(message.partition())
        try:
            decoded.append(deserialize(message.value(), context))
        except Exception:  # noqa: BLE001 - a corrupt message, counted below
            undecodable += 1

    assert all(len(p) == 1 for p in partitions_of.values()), "an instrument spans partitions"
    corrupt = sum(stats.corrupt.values())
    # Every corrupt message fails to decode (a re-sent corrupt message fails twice), nothing else does.
    assert corrupt <= undecodable <= corrupt + stats.duplicates
    assert 0.03 < corrupt / stats.sent < 0.07
    # Nothing valid is lost: every event that was not corrupted arrived at least once.
    assert len({r["event_id"] for r in decoded}) == stats.sent - corrupt
    assert set(stats.corrupt) == {"garbage", "unknown_schema_id", "truncated"}

    assert {r["source"] for r in decoded} == {"quotes", "prices", "trades"}
    ids = Counter(r["event_id"] for r in decoded)
    assert sum(n - 1 for n in ids.values()) > 0.01 * stats.sent  # duplicates re-sent with the same id

    # What arrived is what the seed generates: same events, only event_time moved for late ones.
    expected: dict[str, dict[str, Any]] = {}
    for slices in event_slices(config, START):
        expected.update((e["event_id"], e) for _, events in slices for e in events)
        if len(expected) >= config.count:
            break
    late = 0
    for record in decoded:
        truth = expected[record["event_id"]]
        for field, value in truth.items():
            if field != "event_time":
                assert record[field] == value, (field, record, truth)
        event_time_us = int(record["event_time"].timestamp() * 1_000_000)
        late += event_time_us < truth["event_time"]
    assert 0.05 < late / len(decoded) < 0.15


def test_v2_of_market_event_flows_while_a_v1_producer_still_writes(stack: Settings, tmp_topic: str) -> None:
    """The released v1 and the repository's v2 (trade cancels) under one subject, written at once; a v2 reader
    reads both, v1 records with no cancel."""
    released = stack.model_copy(update={"schemas_dir": FIXTURES / "released"})
    v1 = load("tickflow.md.MarketEvent", released.schemas_dir)
    v2 = load("tickflow.md.MarketEvent", stack.schemas_dir)
    v1_id = register(stack, f"{tmp_topic}-value", v1.text)
    v2_id = register(stack, f"{tmp_topic}-value", v2.text)  # refused with 409 if not BACKWARD compatible
    assert v2_id != v1_id

    v1_feed = threading.Thread(
        target=run_feed,
        args=(released, FeedConfig(rate=20_000, count=3_000, seed=1, start_us=START, topic=tmp_topic), v1_id),
    )
    v1_feed.start()
    encode_v2 = compile_encoder(v2.definition, prefix=confluent_prefix(v2_id))
    (trades,) = generators(build_universe(100, 2), {Source.TRADES: 1000.0}, START, 2)
    producer = Producer(as_admin(stack))
    booked = set()
    for event in trades.batch(1_000):
        booked.add(event["trade_id"])
        producer.produce(tmp_topic, encode_v2(event), event["instrument_id"])
        cancel = {**event, "event_id": f"{event['trade_id']}#cancel", "cancelled_trade_id": event["trade_id"]}
        for name in ("trade_id", "trade_price", "trade_size", "trade_side"):
            cancel[name] = None
        producer.produce(tmp_topic, encode_v2(cancel), event["instrument_id"])
    assert producer.flush(30) == 0
    v1_feed.join(60)

    messages = consume_all(stack, tmp_topic, 5_000)
    assert len(messages) == 5_000
    reader = AvroDeserializer(SchemaRegistryClient(stack.registry_client_config), schema_str=v2.text)
    context = SerializationContext(tmp_topic, MessageField.VALUE)
    records = [reader(m.value(), context) for m in messages]
    cancels = Counter(r["cancelled_trade_id"] is not None for r in records)
    assert cancels == {False: 4_000, True: 1_000}
    assert {r["cancelled_trade_id"] for r in records if r["cancelled_trade_id"]} == booked


def test_schemas_register_is_idempotent_and_current_is_compatible_with_release(stack: Settings) -> None:
    first = tickflow("schemas", "register", check=False)
    second = tickflow("schemas", "register", check=False)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout and "md.events-value" in first.stdout  # same ids, same versions
    client = SchemaRegistryClient(stack.registry_client_config)
    for released in sorted((FIXTURES / "released").glob("*.avsc")):
        subject = f"test.release.{released.stem}-{id(client)}"
        client.register_schema(subject, Schema(released.read_text(), "AVRO"))
        current = load(released.stem, stack.schemas_dir)
        assert client.test_compatibility(subject, Schema(current.text, "AVRO")) is True
    for subject in ("md.events-value", "md.enriched-value"):
        assert client.get_compatibility(subject) == "BACKWARD"


def test_a_schema_that_is_not_backward_compatible_is_refused_in_one_sentence(stack: Settings, tmp_path: Path) -> None:
    """A v3 of MarketEvent whose new field has no default cannot read v1/v2 records: the registry refuses it and
    ``tickflow schemas register`` says so in one sentence, registering nothing."""
    schemas = tmp_path / "schemas"
    shutil.copytree(stack.schemas_dir, schemas)
    path = schemas / "tickflow.md.MarketEvent.avsc"
    definition = json.loads(path.read_text())
    definition["fields"].append({"name": "venue", "type": "string"})  # required, no default
    path.write_text(json.dumps(definition))
    client = SchemaRegistryClient(stack.registry_client_config)
    assert tickflow("schemas", "register", check=False).returncode == 0  # v2 there, whatever ran before
    versions = client.get_versions("md.events-value")

    env = {**os.environ, "TICKFLOW_SCHEMAS_DIR": str(schemas)}
    result = tickflow("schemas", "register", check=False, env=env)
    assert result.returncode != 0
    said = " ".join(result.stderr.split())
    assert "refused tickflow.md.MarketEvent under md.events-value: it is not BACKWARD compatible" in said, said
    assert "add a new field with a default" in said
    assert client.get_versions("md.events-value") == versions


def test_topics_are_created_with_their_partitions_and_retention(stack: Settings) -> None:
    result = tickflow("topics", "create", check=False)
    assert result.returncode == 0, result.stderr
    admin = AdminClient(as_admin(stack))
    topics = admin.list_topics(timeout=10).topics
    for spec in TOPICS:
        assert len(topics[spec.name].partitions) == spec.partitions
        resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name)
        config = admin.describe_configs([resource])[resource].result(10)
        assert config["retention.ms"].value == str(spec.retention_ms)
        assert config["cleanup.policy"].value == spec.config.get("cleanup.policy", "delete")


def test_simulate_command_shows_target_and_achieved_rate(stack: Settings, tmp_topic: str) -> None:
    result = tickflow("simulate", "--count", "5000", "--rate", "20000", "--topic", tmp_topic, check=False)
    assert result.returncode == 0, result.stderr
    assert "target 20,000/s" in result.stderr and "achieved" in result.stderr
    partitions = {TopicPartition(tmp_topic, p) for p in range(3)}
    consumer = Consumer({**as_admin(stack), "group.id": tmp_topic})
    total = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)
    consumer.close()
    assert total == 5000
