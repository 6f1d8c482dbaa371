"""The enrichment stream as the tests run it: settings on a test's own topics, the environment that makes
``tickflow stream`` use them, waiting until it caught up, and what it published."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.support.avro import decoder
from tests.support.fill import read_topic
from tests.support.kafka import as_admin
from tickflow.fill.semantics import FILL_FIELDS
from tickflow.settings import Settings
from tickflow.stream.settings import SPARK_APP_NAME, StreamSettings


def published(
    settings: Settings, topic: str
) -> tuple[dict[str, dict[str, Any]], set[tuple[str, int]], list[dict[str, Any]]]:
    deserialize = decoder(settings)
    records = [deserialize(m.value(), None) for m in read_topic(settings, topic)]
    latest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r["batch_id"], r["event_time"])):
        latest[record["instrument_id"]] = record  # last batch that touched it, its newest event time
    final = {iid: {n: r[n] for n in FILL_FIELDS if r[n] is not None} for iid, r in latest.items()}
    times = {(r["instrument_id"], int(r["event_time"].timestamp() * 1_000_000 + 0.5)) for r in records}
    return final, times, records


def progress_offsets(query: Any, topic: str) -> dict[str, int]:
    """The offsets per partition of ``topic`` a query in this process has processed, from its last progress;
    fails at once when the query failed."""
    if not query.isActive and query.exception() is not None:
        pytest.fail(f"the stream failed: {query.exception()}")
    progress = query.lastProgress
    if not progress:
        return {}
    offsets = progress["sources"][0]["endOffset"]
    return dict((json.loads(offsets) if isinstance(offsets, str) else offsets)[topic])


def read_ends(settings: Settings, topic: str) -> dict[str, int]:
    consumer = Consumer({**as_admin(settings), "group.id": "ends"})
    ends = {str(p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)}
    consumer.close()
    return ends


def wait_until_caught_up(settings: Settings, events_topic: str, progress: Any, timeout_s: float = 240) -> None:
    ends = read_ends(settings, events_topic)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        offsets = progress()
        if offsets and all(offsets.get(p, -1) >= end for p, end in ends.items()):
            return
        time.sleep(1)
    pytest.fail(f"the stream did not catch up with {events_topic} in {timeout_s}s")


def stream_settings(topics: dict[str, str], tmp_path: Path) -> StreamSettings:
    """A test stream's own topics, files and consumer group; the group starts like the stream's own, which is
    what the stream's principal may use in secured mode."""
    hdfs = Settings().hdfs_uri  # the cluster profile: state where every executor reaches it, as the stream's own
    return StreamSettings(
        input_topic=topics["events"], output_topic=topics["enriched"], dlq_topic=topics["dlq"],
        checkpoint_dir=f"{hdfs}/tests/{topics['events']}/checkpoint" if hdfs else tmp_path / "checkpoint",
        progress_file=tmp_path / "progress.json",
        trigger_interval="1 second", max_offsets_per_trigger=4000,
        consumer_group=f"{SPARK_APP_NAME}-{topics['events']}",
    )  # fmt: skip


def stream_env(stream: StreamSettings) -> dict[str, str]:
    """The environment that makes ``tickflow stream`` run with these settings."""
    settings = {f"TICKFLOW_STREAM_{k.upper()}": str(v) for k, v in stream.model_dump().items() if v is not None}
    return {**os.environ, **settings}
