"""The platform's Kafka topics, with the partitioning and retention they are created with.

- ``md.events``: 12 partitions. Key = instrument id, so an instrument's events keep
  their order on one partition; 12 lets the stream run 12 tasks on a larger cluster
  (and divides evenly over 1, 2, 3, 4 or 6 consumers) while costing little on one
  broker. 7 days of retention: the backfill DAG reprocesses from Kafka by timestamp,
  so a week is the window in which a backfill needs no other archive.
  ``cleanup.policy=delete``: every event counts, compaction would drop history.
- ``md.enriched``: 12 partitions (same key, same partition number as the input: the stream chooses
  it as librdkafka does, ``stream.publish.framed``), 3 days; HBase
  holds the history consumers query, the topic is for live consumers and replays.
- ``md.dlq``: 3 partitions (low volume), 30 days, so a person has time to look at
  rejected input and replay it after a fix.
- ``md.enriched.dlq``: what the HBase sink (Kafka Connect) could not write: the original bytes,
  with Connect's error context (reason, source topic/partition/offset) in headers. Its own topic,
  not ``md.dlq``: a record here was valid input that the stream published, so it is replayed into
  HBase (not into the stream) after a fix, and Connect's headers differ from the stream's.
  3 partitions, 30 days, like ``md.dlq``.
- ``tickflow.stream.commits``: the exactly-once sink's markers: per transactional id of the stream (one per
  partition of a micro-batch) the last batch it committed, written in the same Kafka transaction as the batch's
  records (``jvm/stream``'s ``TransactionalKafka``). One partition, compacted: only each id's newest counts.
- ``md.showcase``: the simulators at their full rate (``make demo``'s first 30 s at 100k events/s), shaped
  like ``md.events`` but read by nothing: a flood into md.events would bury the live pipeline under
  minutes of backlog. One hour of retention. Created by ``tickflow simulate --topic md.showcase``, not
  by ``tickflow topics create``: it is not one of the platform's topics.
All of them use ``compression.type=producer`` (keep what the producer chose, lz4) and
``message.timestamp.type=CreateTime`` (producers' timestamps, used for latency).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tickflow.errors import TickflowError
from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.retry import wait_for
from tickflow.settings import Settings

DAY_MS = 24 * 3600 * 1000
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # the broker's message.max.bytes: no record is larger


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    config: dict[str, str] = field(default_factory=dict)
    schema: str | None = None  # the Avro record of its values (schemas/), registered as <name>-value

    def new_topic(self, replication: int) -> NewTopic:
        config = {
            "cleanup.policy": "delete",
            "retention.ms": str(self.retention_ms),
            "compression.type": "producer",
            "message.timestamp.type": "CreateTime",
            **self.config,
        }
        return NewTopic(self.name, self.partitions, replication, config=config)


EVENTS = TopicSpec("md.events", 12, 7 * DAY_MS, schema="tickflow.md.MarketEvent")
ENRICHED = TopicSpec("md.enriched", 12, 3 * DAY_MS, schema="tickflow.md.EnrichedEvent")
DLQ = TopicSpec("md.dlq", 3, 30 * DAY_MS)
SINK_DLQ = TopicSpec("md.enriched.dlq", 3, 30 * DAY_MS)
STREAM_COMMITS = TopicSpec("tickflow.stream.commits", 1, 30 * DAY_MS, config={"cleanup.policy": "compact"})
TOPICS = (EVENTS, ENRICHED, DLQ, SINK_DLQ, STREAM_COMMITS)
SHOWCASE = TopicSpec("md.showcase", EVENTS.partitions, 3600 * 1000)


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    created: bool


def _admin(settings: Settings) -> AdminClient:
    return AdminClient({**kafka_client_config(settings, Principal.ADMIN), "log_level": 0})


def _existing(admin: AdminClient, settings: Settings) -> dict[str, Any]:
    try:
        topics: dict[str, Any] = admin.list_topics(timeout=10).topics
    except KafkaException as error:
        raise TickflowError(
            f"Kafka at {settings.bootstrap_servers} did not answer ({error}): start it with `tickflow stack up`."
        ) from error
    return topics


def require_topics(settings: Settings, names: Iterable[str]) -> None:
    """Fail with one sentence when any of these topics does not exist (say, before a Spark app starts on them)."""
    existing = _existing(_admin(settings), settings)
    if absent := [name for name in names if name not in existing]:
        raise TickflowError(
            f"Kafka at {settings.bootstrap_servers} has no topic {', '.join(absent)}: create the platform's topics "
            "with `tickflow topics create`, or point the settings at existing ones."
        )


def topic_partitions(settings: Settings, name: str) -> int:
    """How many partitions topic ``name`` has; one sentence when it does not exist."""
    existing = _existing(_admin(settings), settings)
    if name not in existing:
        raise TickflowError(f"Kafka at {settings.bootstrap_servers} has no topic {name}: create it first.")
    return len(existing[name].partitions)


def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS) -> list[TopicState]:
    """Create the topics that do not exist yet, each partition on ``settings.kafka_replication`` brokers; leave
    existing ones alone (idempotent)."""
    admin = _admin(settings)
    existing = _existing(admin, settings)
    missing = [spec for spec in specs if spec.name not in existing]
    created = set()
    if missing:
        new = [spec.new_topic(settings.kafka_replication) for spec in missing]
        futures = admin.create_topics(new, operation_timeout=30)
        for name, future in futures.items():
            try:
                future.result(30)
                created.add(name)
            except KafkaException as error:
                if "TOPIC_ALREADY_EXISTS" not in str(error):
                    raise TickflowError(f"Creating topic {name} failed: {error}.") from error

        # The controller acknowledges a creation before every broker's metadata has it: list until it does.
        def listed() -> dict[str, Any] | None:
            found = admin.list_topics(timeout=10).topics
            return found if all(spec.name in found for spec in specs) else None

        def unlisted(_: Exception | None) -> Exception:
            found = admin.list_topics(timeout=10).topics
            absent = ", ".join(spec.name for spec in specs if spec.name not in found)
            return TickflowError(f"Kafka created {absent} but does not list it after 30 s: see its log.")

        existing = wait_for(listed, 30, interval_s=0.2, timed_out=unlisted)
    return [TopicState(spec.name, len(existing[spec.name].partitions), spec.name in created) for spec in specs]
