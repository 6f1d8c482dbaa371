"""From an event-time range to Kafka offsets and chunks.

Kafka indexes records by their own timestamp (when the producer sent them), not by event time, so the
backfill reads by Kafka time with a margin and selects by event time:

- the read **ends** per partition at the first record with a Kafka timestamp at or after ``end + late_s``
  (``offsets_for_times``), or the partition's end: an event reaches Kafka after it happened, by up to
  ``late_s``;
- the read **starts** where the forward-fill's registers can be known: events before ``start`` are
  filled but not written, they warm the registers up, so the first record in the range carries the
  values an instrument had at ``start``. The newest state snapshot of the topic taken before the range
  (``choose_snapshot``) already holds the fill of every record below its input offsets, so the read
  starts at those offsets with the snapshot's registers as the initial state. Without one that fits,
  it starts at the partition's earliest retained offset with empty registers. The fill's registers are
  last-writer-wins, so either way the state at ``start`` equals the stream's: from a snapshot for every
  field, from the earliest offset for every field set within the topic's retention;
- a range has **data** when some partition has records with Kafka timestamps in
  ``[start - late_s, end + late_s)``; otherwise the backfill fails before Spark starts.

Chunks split the read into Spark jobs of at most ``chunk_events`` records, the same offset slice of every
partition, in order, so the fill sees each partition's events in offset order as the stream does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tickflow.backfill.request import BackfillRequest, InvalidBackfill
from tickflow.errors import TickflowError
from tickflow.kafka_auth import BACKFILL_GROUPS, Principal, kafka_client_config
from tickflow.settings import Settings

if TYPE_CHECKING:
    from tickflow.fill.snapshot import SnapshotInfo


@dataclass(frozen=True)
class PartitionRange:
    """Offsets of one partition: ``first`` retained, ``range_first`` (first record at or after the range's
    start minus the margin, by Kafka time), ``last`` (exclusive end of the read) and ``warm_from``, where
    a state snapshot lets the read start (None: at ``first``)."""

    partition: int
    first: int
    range_first: int
    last: int
    warm_from: int | None = None

    @property
    def read_from(self) -> int:
        return self.first if self.warm_from is None else self.warm_from

    @property
    def in_range(self) -> int:
        return max(0, self.last - max(self.range_first, self.read_from))


Chunk = dict[int, tuple[int, int]]  # partition -> [from, to) offsets


def has_data(ranges: list[PartitionRange]) -> bool:
    return any(r.in_range > 0 for r in ranges)


def plan_chunks(ranges: list[PartitionRange], chunk_events: int) -> list[Chunk]:
    """Consecutive offset slices of every partition, at most ``chunk_events`` records per chunk in all. Every
    chunk names every partition (Spark's Kafka source wants them all); one with nothing left reads an empty
    slice at its end."""
    active = [r for r in ranges if r.last > r.read_from]
    if not active:
        return []
    step = max(1, chunk_events // len(active))
    chunks: list[Chunk] = []
    position = {r.partition: min(r.read_from, r.last) for r in ranges}
    while any(position[r.partition] < r.last for r in active):
        chunk: Chunk = {}
        for r in ranges:
            begin = position[r.partition]
            chunk[r.partition] = (begin, max(begin, min(r.last, begin + step)))
            position[r.partition] = chunk[r.partition][1]
        chunks.append(chunk)
    return chunks


def fits(snapshot: SnapshotInfo, topic: str, ranges: Sequence[PartitionRange]) -> bool:
    """Whether the read can start at the snapshot's offsets: a snapshot of this topic, with an offset for
    every partition that has records, taken before the range (at or below ``range_first``) and after what
    retention deleted (at or above ``first``: the records between it and the range are all still there).

    A partition without records needs no offset (there is nothing to read, so its registers are never
    used), but one beyond its end, or a partition the topic does not have, means the snapshot is of an
    earlier topic of that name."""
    if snapshot.input_topic != topic or not set(snapshot.offsets) <= {r.partition for r in ranges}:
        return False
    for r in ranges:
        offset = snapshot.offsets.get(r.partition)
        if r.last <= r.first:
            if offset is not None and offset > r.last:
                return False
        elif offset is None or not r.first <= offset <= r.range_first:
            return False
    return True


def choose_snapshot(
    snapshots: Sequence[SnapshotInfo], topic: str, ranges: Sequence[PartitionRange]
) -> SnapshotInfo | None:
    """The newest snapshot (``snapshots`` come newest first) the read can start from, or None."""
    return next((s for s in snapshots if fits(s, topic, ranges)), None)


def warm_from(ranges: Sequence[PartitionRange], snapshot: SnapshotInfo) -> list[PartitionRange]:
    """The ranges read from the snapshot's offsets (a partition without records from its ``first``)."""
    return [
        replace(r, warm_from=snapshot.offsets[r.partition]) if r.last > r.first else replace(r, warm_from=None)
        for r in ranges
    ]


def offsets_json(topic: str, chunk: Chunk) -> tuple[str, str]:
    """Spark's Kafka source ``startingOffsets`` / ``endingOffsets`` for one chunk."""
    starting = {topic: {str(p): bounds[0] for p, bounds in chunk.items()}}
    ending = {topic: {str(p): bounds[1] for p, bounds in chunk.items()}}
    return json.dumps(starting), json.dumps(ending)


def resolve(found: int, high: int) -> int:
    """``offsets_for_times`` answers -1 (OFFSET_END) when no record is that late: the partition's end."""
    return high if found < 0 else found


def partition_ranges(settings: Settings, topic: str, request: BackfillRequest, late_s: float) -> list[PartitionRange]:
    """Look the range up in Kafka (watermarks and ``offsets_for_times``), one call per question."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            **kafka_client_config(settings, Principal.BACKFILL),
            "group.id": f"{BACKFILL_GROUPS}-plan-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise InvalidBackfill(
                f"There is no topic {topic} to backfill from: create it with `tickflow topics create`."
            )
        partitions = sorted(described.partitions)
        margin = timedelta(seconds=late_s)

        def at(moment: datetime) -> list[int]:
            ms = int(moment.timestamp() * 1000)
            found = consumer.offsets_for_times([TopicPartition(topic, p, ms) for p in partitions], timeout=15)
            return [tp.offset for tp in found]

        watermarks = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15) for p in partitions]
        starts, ends = at(request.start - margin), at(request.end + margin)
    except KafkaException as error:
        raise TickflowError(
            f"Kafka at {settings.bootstrap_servers} did not answer ({error}): start it with `tickflow stack up kafka`."
        ) from error
    finally:
        consumer.close()
    return [
        PartitionRange(p, low, resolve(s, high), resolve(e, high))
        for p, (low, high), s, e in zip(partitions, watermarks, starts, ends, strict=True)
    ]


def describe(ranges: list[PartitionRange]) -> dict[str, Any]:
    """Totals for the log: records to read, of which in the range (by Kafka time)."""
    return {
        "partitions": len(ranges),
        "records": sum(max(0, r.last - r.read_from) for r in ranges),
        "in_range": sum(r.in_range for r in ranges),
    }
