"""Consumer-group lag from offsets and record times, pure: what tickflow-exporter makes of Kafka's answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tickflow.sinks.hbase import HBaseSinkSettings
from tickflow.stream.settings import StreamSettings

WATCHED_TOPICS = "md."  # the platform's topics: the tests' own (test.*) would add series without end


@dataclass(frozen=True)
class Stage:
    """A consumer group whose lag is watched, the topic it reads and the ``stage`` label the rules select it by."""

    group: str
    topic: str
    stage: str


def watched_stages(stream: StreamSettings, sink: HBaseSinkSettings) -> list[Stage]:
    """The stream's group (it commits each micro-batch's end offsets there for lag tools) and the HBase sink's
    (Connect names a sink connector's group ``connect-<connector>``), on the platform's topics only."""
    stages = [
        Stage(stream.consumer_group, stream.input_topic, "stream"),
        Stage(f"connect-{sink.name}", sink.topic, "hbase_sink"),
    ]
    return [stage for stage in stages if stage.topic.startswith(WATCHED_TOPICS)]


@dataclass(frozen=True)
class PartitionOffsets:
    """One partition of a stage's topic: its earliest offset, its last stable offset (the end a read_committed
    reader can reach: records of open transactions are not there yet) and the group's committed offset (None when
    the group committed none for it)."""

    topic: str
    partition: int
    earliest: int
    stable: int
    committed: int | None

    @property
    def next_offset(self) -> int:
        """Where the group reads next: its committed offset, or the earliest where it has none or retention deleted
        it (the stream and the sink both start from the earliest)."""
        return self.earliest if self.committed is None else max(self.committed, self.earliest)

    @property
    def lag(self) -> int:
        """Offsets the group has not consumed: records, and the markers of transactions (they take an offset each)."""
        return max(0, self.stable - self.next_offset)


@dataclass(frozen=True)
class TopicLag:
    """A stage's lag on one topic: records summed over partitions, and the age of the oldest record not consumed
    (None when it could not be read in time)."""

    stage: Stage
    topic: str
    records: int
    seconds: float | None


def record_age_s(now_s: float, timestamp_ms: int) -> float:
    """How old a record is, from its Kafka timestamp (never below 0: the producer's clock may be ahead)."""
    return max(0.0, now_s - timestamp_ms / 1000)


def topic_lags(
    stage: Stage, partitions: Iterable[PartitionOffsets], ages_s: Mapping[tuple[str, int], float | None]
) -> list[TopicLag]:
    """Per topic: the records behind and the age of the oldest of them, the greatest of the lagging partitions'
    ages (``ages_s``, by topic and partition). An age of None means the reader found nothing committed to read up to
    the last stable offset, only transaction markers or aborted records: that partition is caught up, whatever its
    offsets say. A lagging topic without any age read in time has no age; with some, the greatest of those, a lower
    bound."""
    caught_up = {key for key, age in ages_s.items() if age is None}
    by_topic: dict[str, list[PartitionOffsets]] = {}
    for partition in partitions:
        by_topic.setdefault(partition.topic, []).append(partition)
    lags = []
    for topic, offsets in sorted(by_topic.items()):
        behind = [p for p in offsets if p.lag > 0 and (topic, p.partition) not in caught_up]
        records = sum(p.lag for p in behind)
        ages = [age for p in behind if (age := ages_s.get((topic, p.partition))) is not None]
        seconds = 0.0 if records == 0 else max(ages, default=None)
        lags.append(TopicLag(stage, topic, records, seconds))
    return lags
