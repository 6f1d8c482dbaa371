"""Live = replay: the backfill's check of what the stream published against its recomputation of the same range,
clean, then with one altered record on the live topic."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from tests.support.fill import read_topic
from tests.support.kafka import as_admin
from tests.support.stack import hive_query
from tests.support.stream import progress_offsets, published, stream_settings, wait_until_caught_up
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.backfill.job import ReplayDiffers, run_backfill
from tickflow.backfill.replay_check import REPORT_TABLE, Kind
from tickflow.backfill.request import BackfillRequest, BackfillSettings
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.stream.app import build_query

pytestmark = pytest.mark.integration


def test_the_live_output_equals_its_replay_and_an_altered_record_is_named(
    reference_data: Settings, spark: Any, topics: dict[str, str], tmp_path: Path
) -> None:
    settings = reference_data
    schema = load("tickflow.md.MarketEvent", settings.schemas_dir)
    registry = SchemaRegistryClient(settings.registry_client_config)
    schema_id = int(registry.register_schema(f"{topics['events']}-value", Schema(schema.text, "AVRO")))
    # Late events make rows that legitimately differ with batch boundaries (counted apart); in order, none do.
    run_feed(settings, FeedConfig(rate=20_000, count=3_000, seed=17, instruments=10, topic=topics["events"]),
             schema_id)  # fmt: skip
    stream = stream_settings(topics, tmp_path)
    query, _ = build_query(spark, settings, stream)
    try:
        wait_until_caught_up(settings, topics["events"], lambda: progress_offsets(query, topics["events"]))
    finally:
        query.stop()
    _, times, records = published(settings, topics["enriched"])
    start = min(r["event_time"] for r in records).replace(microsecond=0)
    end = max(r["event_time"] for r in records) + timedelta(seconds=1)
    options = BackfillSettings(input_topic=topics["events"], live_topic=topics["enriched"],
                               output_subject_topic=topics["enriched"], chunk_events=1_000)  # fmt: skip
    request = BackfillRequest.parse(start, end, None, "check")

    check = run_backfill(spark, settings, request, options).check
    assert check is not None
    assert check.failures == 0, check.examples_json()
    assert check.live_rows == check.replay_rows == len(times)
    assert check.counts[Kind.MATCH] + check.counts.get(Kind.BATCHING, 0) == len(times)
    (row,) = hive_query(settings, f"SELECT live_rows, matched, different FROM {REPORT_TABLE} "
                                  f"WHERE run_id = '{check.run_id}'")  # fmt: skip
    assert [int(v) for v in row] == [len(times), check.counts[Kind.MATCH], 0]

    # One record published again with another bid: the live topic's last word on that event differs.
    message = next(m for m in reversed(read_topic(settings, topics["enriched"])) if m.value())
    deserialize = AvroDeserializer(registry)
    record = deserialize(message.value(), None)
    assert record["bid_price"] is not None
    enriched = load("tickflow.md.EnrichedEvent", settings.schemas_dir)
    encode = compile_encoder(enriched.definition, prefix=confluent_prefix(int.from_bytes(message.value()[1:5], "big")))
    producer = Producer(as_admin(settings))
    producer.produce(topics["enriched"], encode({**record, "bid_price": record["bid_price"] + 1.0}), message.key(),
                     partition=message.partition())  # fmt: skip
    producer.flush(30)

    with pytest.raises(ReplayDiffers) as failure:
        run_backfill(spark, settings, request, options)
    sentence = str(failure.value)
    assert "differs from its replay in 1 (instrument, event time)" in sentence, sentence
    assert record["instrument_id"] in sentence and "bid_price" in sentence, sentence
