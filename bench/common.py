"""What the benches share: per-run Kafka topics, their Kafka clients, percentiles.

Kafka clients: every bench client logs in as :data:`BENCH_PRINCIPAL` (``admin``), through
``tickflow.kafka_auth.kafka_client_config``. A bench creates and deletes topics, writes and reads its
per-run ``bench.*`` topics, which no component's ACLs cover (``tickflow.stack.kafka_acls``), and reads
the platform's topics and consumer groups under group ids of its own (``bench-*``), as an operator's
command does (``tickflow.cli`` reads as ``admin`` too). Outside secured mode the config is the bootstrap
servers alone, as before. The producers of ``tickflow.sources.feed`` (``run_feed``, ``producer_config``)
log in as the simulator, whose ACLs do not cover ``bench.*``: the benches run on a stack that is not
secured (README.md).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tickflow.kafka_auth import Principal, kafka_client_config, spark_kafka_options
from tickflow.schemas import AvroSchema, register
from tickflow.settings import Settings
from tickflow.topics import DAY_MS, TopicSpec, create_topics

BENCH_PRINCIPAL = Principal.ADMIN
PARTITIONS = 12  # of every per-run topic, as md.events
# Of every per-run topic: longer than any run (so no record a bench still reads expires), while the topics of a
# run that was killed before it could delete them empty themselves within a day.
RETENTION_MS = DAY_MS
DELETE_TIMEOUT_S = 30.0

# ---- Kafka clients ----------------------------------------------------------------------------------------


def kafka_config(settings: Settings, **options: Any) -> dict[str, Any]:
    """librdkafka config of a bench client: ``kafka_client_config`` as BENCH_PRINCIPAL, then ``options``."""
    return {**kafka_client_config(settings, BENCH_PRINCIPAL), **options}


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(kafka_config(settings))


def producer(settings: Settings, **options: Any) -> Producer:
    return Producer(kafka_config(settings, **options))


def consumer(settings: Settings, group_id: str, **options: Any) -> Consumer:
    return Consumer(kafka_config(settings, **{"group.id": group_id, **options}))


def spark_kafka(settings: Settings) -> dict[str, str]:
    """Spark's Kafka source and sink options (``kafka.``-prefixed) of a bench client."""
    return spark_kafka_options(settings, BENCH_PRINCIPAL)


# ---- per-run topics ---------------------------------------------------------------------------------------


def register_value_schema(settings: Settings, topic: str, schema: AvroSchema) -> int:
    """Register ``schema`` under ``<topic>-value`` (the subject's compatibility left as it is); its schema id."""
    return register(settings, f"{topic}-value", schema, compatibility=None).schema_id


class FreshTopics:
    """A run's topics, named ``<prefix>.<kind>.<6 hex digits>``: those of the kinds given to
    :func:`fresh_topics` (``topics["events"]``) and those made later with :meth:`new`."""

    def __init__(self, settings: Settings, prefix: str, partitions: int) -> None:
        self.settings, self.prefix, self.partitions = settings, prefix, partitions
        self.names: list[str] = []  # in the order they were made; adopted ones too
        self.by_kind: dict[str, str] = {}  # the newest of each kind

    def __getitem__(self, kind: str) -> str:
        return self.by_kind[kind]

    def create(self, kinds: Sequence[str]) -> list[str]:
        """New topics of these kinds, created together (and listed by the broker) before this returns."""
        names = [f"{self.prefix}.{kind}.{uuid.uuid4().hex[:6]}" for kind in kinds]
        if names:
            self.names += names  # before they exist: a creation that fails half-way leaves nothing behind
            create_topics(self.settings, tuple(TopicSpec(n, self.partitions, RETENTION_MS) for n in names))
            self.by_kind.update(zip(kinds, names, strict=True))
        return names

    def new(self, kind: str) -> str:
        """A new topic of ``kind`` (a kind may be made again: each gets a name of its own)."""
        return self.create([kind])[0]

    def adopt(self, name: str) -> str:
        """A topic somebody else creates for this run (a connector's dead-letter topic): deleted with the rest,
        and no error if it was never created."""
        self.names.append(name)
        return name

    def delete(self) -> None:
        """Delete the topics and wait (an unawaited delete may never be sent when the process exits), then their
        ``<topic>-value`` subjects, if any were registered."""
        if not self.names:
            return
        failures = []
        admin = admin_client(self.settings)  # kept until every future is done: a collected client cancels them
        for name, future in admin.delete_topics(self.names).items():
            try:
                future.result(DELETE_TIMEOUT_S)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    failures.append(f"{name}: {error}")
        registry = SchemaRegistryClient(self.settings.registry_client_config)
        for subject in (f"{name}-value" for name in self.names):
            try:
                registry.delete_subject(subject)
                registry.delete_subject(subject, permanent=True)
            except SchemaRegistryError:  # never registered (an output nobody registered, the run stopped early)
                pass
        if failures:
            raise RuntimeError(f"Deleting the run's topics failed: {'; '.join(failures)}")


@contextmanager
def fresh_topics(
    settings: Settings,
    *kinds: str,
    prefix: str = "bench",
    partitions: int = PARTITIONS,
) -> Iterator[FreshTopics]:
    """Per-run topics, one per ``kind`` at once (``topics[kind]`` names it) and any made with ``topics.new(kind)``
    inside the block; all of them, and their value subjects, are deleted when the block is left."""
    topics = FreshTopics(settings, prefix, partitions)
    try:
        topics.create(kinds)
        yield topics
    finally:
        topics.delete()


# ---- figures ----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 <= q <= 1) by nearest rank, rounded down: the sorted values' element at index
    ``int(q * n)`` (the last one for q = 1), no interpolation; so q = 0.5 of an even count is the upper middle
    value, not the mean of the two (``statistics.median``). NaN when there are no values (printed as ``nan``):
    a caller that wants None instead tests for an empty input itself."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
