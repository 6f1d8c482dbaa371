"""The enrichment stream end to end through Kafka, against an independent reading of the fill contract."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.support.fill import LEFT_OVER, expected_from_input, read_topic, rejected_values
from tests.support.kafka import as_admin
from tests.support.stack import hive_query
from tests.support.stream import (
    progress_offsets,
    published,
    read_ends,
    stream_env,
    stream_settings,
    wait_until_caught_up,
)
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.errors import TickflowError
from tickflow.fill.semantics import FILL_FIELDS
from tickflow.fill.snapshot import committed, export_snapshot, install_restore, snapshot_state
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.stream.app import build_query
from tickflow.stream.progress import attach_progress

pytestmark = pytest.mark.integration


def feed(settings: Settings, topic: str, count: int, seed: int) -> int:
    """Simulated events with late, duplicate and corrupt ones, plus decodable but invalid events;
    returns how many messages must be rejected."""
    schema = load("tickflow.md.MarketEvent", settings.schemas_dir)
    schema_id = int(
        SchemaRegistryClient(settings.registry_client_config).register_schema(
            f"{topic}-value", Schema(schema.text, "AVRO")
        )
    )
    config = FeedConfig(
        rate=20_000,
        count=count,
        seed=seed,
        instruments=25,
        out_of_order=0.1,
        duplicates=0.02,
        corrupt=0.01,
        topic=topic,
    )
    stats = run_feed(settings, config, schema_id)
    encode = compile_encoder(schema.definition, prefix=confluent_prefix(schema_id))
    now = time.time_ns() // 1000
    base = {"event_id": "bad", "instrument_id": "XNAS:AAPL", "source": "quotes", "event_time": now, "sequence": 0}
    invalid = [
        ("XNAS:AAPL", {**base, "event_id": "crossed", "bid_price": 10.0, "ask_price": 9.0}),
        ("XNAS:AAPL", {**base, "event_id": "negative", "trade_size": -5, "source": "trades"}),
        ("XNAS:AAPL", {**base, "event_id": "future", "event_time": now + 3_600_000_000, "last_price": 1.0}),
        ("XNAS:MSFT", {**base, "event_id": "wrong-key", "last_price": 1.0}),
    ]
    producer = Producer(as_admin(settings))
    for key, record in invalid:
        producer.produce(topic, encode(record), key)
    # A whole record followed by bytes that belong to nothing (from_avro alone would accept it).
    producer.produce(topic, encode({**base, "event_id": LEFT_OVER, "last_price": 1.0}) + b"\x02\x04", "XNAS:AAPL")
    # An instrument the reference data does not know: published, flagged, never dropped.
    producer.produce(
        topic, encode({**base, "event_id": "unknown", "instrument_id": "XXXX:NOPE", "last_price": 2.5}), "XXXX:NOPE"
    )
    producer.flush(30)
    return sum(stats.corrupt.values()) + len(invalid) + 1


def test_output_equals_an_independent_computation_and_bad_input_goes_to_the_dlq(
    stack, reference_data, spark, topics, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    rejected = feed(stack, topics["events"], 8_000, seed=5)
    stream = stream_settings(topics, tmp_path)
    query, batch = build_query(spark, stack, stream)
    reporter = attach_progress(query, stack, stream, batch.counters)
    try:

        def processed() -> dict[str, int]:
            return progress_offsets(query, topics["events"])

        wait_until_caught_up(stack, topics["events"], processed)
        assert query.exception() is None
    finally:
        query.stop()

    # Offsets are committed to the app's consumer group, so standard lag tools see its lag.
    # The reporter polls the query's progress: allow it a moment to commit the last batch.
    def committed() -> dict[str, int]:
        partitions = [TopicPartition(topics["events"], p) for p in range(3)]
        return {str(tp.partition): tp.offset for tp in reporter.consumer.committed(partitions, timeout=10)}

    def health() -> dict[str, Any]:
        return dict(json.loads(stream.progress(stack).read_text()))

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        committed() != processed() or health()["end_offsets"][topics["events"]] != processed()
    ):
        time.sleep(0.5)
    assert committed() == processed()
    reporter.close()
    latest = health()
    assert latest["state_rows"] == len({iid for iid, _ in expected_from_input(stack, topics["events"])[1]})
    assert latest["dlq_total"] >= rejected

    expected_final, expected_times = expected_from_input(stack, topics["events"])
    final, times, records = published(stack, topics["enriched"])
    assert times == expected_times  # one record per (instrument, event time) seen, nothing invented
    differences = {
        (iid, name): (final.get(iid, {}).get(name), expected_final[iid].get(name))
        for iid in expected_final
        for name in FILL_FIELDS
        if final.get(iid, {}).get(name) != expected_final[iid].get(name)
    }
    assert not differences  # the state after everything equals the independent computation
    assert len(records) >= len(expected_times)

    known = {row[0] for row in hive_query(stack, "SELECT instrument_id FROM ref.instruments")}
    assert all(r["enriched"] == (r["instrument_id"] in known) for r in records)
    assert [r["enriched"] for r in records if r["instrument_id"] == "XXXX:NOPE"] == [False]
    for record in records:
        if record["enriched"] and record["bid_price"] is not None and record["ask_price"] is not None:
            assert record["mid"] == pytest.approx((record["bid_price"] + record["ask_price"]) / 2)

    # An instrument keeps its partition number from md.events to md.enriched (the sink's tasks share it evenly).
    inputs: dict[bytes, set[int]] = {}
    for message in read_topic(stack, topics["events"]):
        inputs.setdefault(message.key(), set()).add(message.partition())
    outputs = {(m.key(), m.partition()) for m in read_topic(stack, topics["enriched"])}
    assert outputs and all(partition in inputs[key] for key, partition in outputs)

    dlq = read_topic(stack, topics["dlq"])
    assert len(dlq) >= rejected  # a re-sent corrupt message is rejected twice
    reasons = [dict(m.headers())["reason"].decode() for m in dlq]
    assert any("not positive" in r or "negative" in r for r in reasons)
    assert any("above ask" in r for r in reasons)
    assert any("in the future" in r for r in reasons)
    assert any("is not the instrument_id" in r for r in reasons)
    assert any("2 bytes left over after the record" in r for r in reasons)
    assert any("Confluent wire format" in r or "unknown schema id" in r or "undecodable" in r for r in reasons)
    for message in dlq:
        headers = dict(message.headers())
        assert headers["source.topic"].decode() == topics["events"]
        assert int(headers["source.offset"]) >= 0


def test_a_stream_on_a_topic_that_does_not_exist_fails_at_once_in_one_sentence(stack, topics, tmp_path) -> None:  # type: ignore[no-untyped-def]
    absent = f"test.absent.{uuid.uuid4().hex[:8]}"
    stream = stream_settings(topics, tmp_path).model_copy(update={"input_topic": absent})
    result = subprocess.run(
        [sys.executable, "-m", "tickflow.cli", "stream"], env=stream_env(stream), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"has no topic {absent}" in result.stderr and "tickflow topics create" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_enrichment_query_fails_at_start_up_with_the_sql_error(stack, spark, topics, tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.sql"
    broken.write_text("SELECT f.instrument_id, f.no_such_column FROM filled_events f")
    stream = stream_settings(topics, tmp_path).model_copy(update={"enrichment_sql": broken})
    with pytest.raises(TickflowError, match=r"enrichment SQL does not run.*no_such_column"):
        build_query(spark, stack, stream)
    assert not spark.streams.active


def test_state_exported_to_a_snapshot_starts_a_new_checkpoint_where_the_old_one_was(
    stack, spark, topics, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Export after part one (the snapshot records part one's end offsets), then a new checkpoint restored
    from the snapshot reads only part two: the end state must equal an independent computation over both."""
    result = subprocess.run([sys.executable, "-m", "tickflow.cli", "hive", "migrate"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    feed(stack, topics["events"], 4_000, seed=11)
    first = stream_settings(topics, tmp_path / "first")
    query, _ = build_query(spark, stack, first)
    part_one = read_ends(stack, topics["events"])
    try:
        wait_until_caught_up(stack, topics["events"], lambda: progress_offsets(query, topics["events"]))
    finally:
        query.stop()
    snapshot = export_snapshot(stack, first.checkpoint(stack), topics["events"], f"test-{topics['events']}")
    assert {str(p): o for p, o in snapshot.offsets.items()} == part_one
    assert snapshot.instruments == len(committed(first.checkpoint(stack)).states)

    feed(stack, topics["events"], 4_000, seed=12)
    second = stream_settings(topics, tmp_path / "second")
    install_restore(second.checkpoint(stack), snapshot, snapshot_state(stack, snapshot.snapshot_id))
    query, _ = build_query(spark, stack, second)
    try:
        wait_until_caught_up(stack, topics["events"], lambda: progress_offsets(query, topics["events"]))
        first_batch = json.loads((second.checkpoint(stack) / "sources" / "0" / "0").read_text().splitlines()[-1])
    finally:
        query.stop()
    assert first_batch == {topics["events"]: {p: int(o) for p, o in part_one.items()}}, "restarted at part two"
    expected_final, _ = expected_from_input(stack, topics["events"])
    restored = committed(second.checkpoint(stack)).states
    for instrument_id, fields in expected_final.items():
        assert {n: restored[instrument_id].values[n] for n in fields} == fields


def test_every_registered_version_of_the_event_schema_flows_through(stack, spark, topics, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """v1 and v2 producers at once. A version registered after the query started is read from the registry
    by the tasks (no restart needed); after a restart it is among the writers the query starts with. Nothing goes
    to the DLQ."""
    registry = SchemaRegistryClient(stack.registry_client_config)
    subject = f"{topics['events']}-value"
    v1 = load("tickflow.md.MarketEvent", stack.schemas_dir)
    v2_text = (Path(__file__).parents[1] / "fixtures" / "schemas" / "tickflow.md.MarketEvent.venue.avsc").read_text()
    encode_v1 = compile_encoder(
        v1.definition, prefix=confluent_prefix(registry.register_schema(subject, Schema(v1.text, "AVRO")))
    )
    producer = Producer(as_admin(stack))
    sent = 0

    def produce(encode: Any, extra: dict[str, Any]) -> None:
        nonlocal sent
        now = time.time_ns() // 1000
        for i in range(40):
            iid = f"XTST:V{i % 4}"
            event = {"event_id": f"e{sent}", "instrument_id": iid, "source": "prices", "sequence": sent,
                     "event_time": now + i, "last_price": 1.0 + sent, **extra}  # fmt: skip
            producer.produce(topics["events"], encode(event), iid)
            sent += 1
        producer.flush(10)

    stream = stream_settings(topics, tmp_path)
    query, _ = build_query(spark, stack, stream)
    try:
        produce(encode_v1, {})
        wait_until_caught_up(stack, topics["events"], lambda: progress_offsets(query, topics["events"]))
        v2_id = registry.register_schema(subject, Schema(v2_text, "AVRO"))  # after the query started
        encode_v2 = compile_encoder(json.loads(v2_text), prefix=confluent_prefix(v2_id))
        produce(encode_v2, {"venue": "XBOS"})
        produce(encode_v1, {})
        wait_until_caught_up(stack, topics["events"], lambda: progress_offsets(query, topics["events"]))
    finally:
        query.stop()
    query, _ = build_query(spark, stack, stream)  # the restarted query starts with v2 among its writers
    try:
        produce(encode_v2, {"venue": "XBOS"})
        wait_until_caught_up(stack, topics["events"], lambda: progress_offsets(query, topics["events"]))
        assert query.exception() is None
    finally:
        query.stop()

    assert read_topic(stack, topics["dlq"]) == []
    expected_final, expected_times = expected_from_input(stack, topics["events"])
    final, times, _ = published(stack, topics["enriched"])
    assert times == expected_times and len(times) == sent
    assert {iid: fields["last_price"] for iid, fields in final.items()} == {
        iid: fields["last_price"] for iid, fields in expected_final.items()
    }


def test_a_batch_replayed_after_it_was_published_is_not_published_again(stack, spark, topics, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The moment at-least-once sinks duplicate: every task of a batch committed, then the process died before the
    checkpoint's commit log had the batch, so the next start runs it again. Here that moment is made exactly (the
    batch's commit log entry removed after a clean stop); the replay must publish nothing a read_committed reader
    sees twice, neither on the output nor on the DLQ."""
    rejected = feed(stack, topics["events"], 3_000, seed=8)
    stream = stream_settings(topics, tmp_path)
    assert stream.exactly_once

    def run_until_caught_up() -> Any:
        query, _ = build_query(spark, stack, stream)
        try:
            wait_until_caught_up(stack, topics["events"], lambda: progress_offsets(query, topics["events"]))
        finally:
            query.stop()
        return query

    run_until_caught_up()
    checkpoint = stream.checkpoint(stack)
    last = max(int(name) for name in (checkpoint / "commits").names() if name.isdigit())
    for name in (str(last), f".{last}.crc"):
        if (checkpoint / "commits" / name).exists():
            (checkpoint / "commits" / name).unlink()
    before = len(read_topic(stack, topics["enriched"])), len(read_topic(stack, topics["dlq"]))
    # The restarted query runs the batch again (Spark's offset log has it, its commit log not).
    replay = run_until_caught_up()
    assert any(p["batchId"] == last and p["numInputRows"] > 0 for p in replay.recentProgress), "the batch ran again"

    _, times, records = published(stack, topics["enriched"])
    assert (len(records), len(read_topic(stack, topics["dlq"]))) == before
    assert len(records) == len(times), f"{len(records) - len(times)} records published twice"
    dlq = Counter(m.value() for m in read_topic(stack, topics["dlq"]))
    assert dlq == rejected_values(stack, topics["events"])
    assert dlq.total() >= rejected
