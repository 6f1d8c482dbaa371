"""Runs the source simulators against Kafka: rate control, fault injection, progress.

Hot path per event: build a dict, encode it with the compiled Avro encoder, prepend
the 5-byte Confluent prefix, ``produce``. librdkafka batches (``linger.ms``),
compresses (lz4) and sends on its own threads, on the other core.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Producer

from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.errors import TickflowError
from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.schemas import TOPIC_SCHEMAS, load, register
from tickflow.settings import Settings
from tickflow.sources.simulator import Event, Source, generators, interleave, split_rate
from tickflow.sources.universe import build_universe
from tickflow.topics import EVENTS, SHOWCASE, TOPICS, create_topics

CORRUPTIONS = ("garbage", "unknown_schema_id", "truncated")
UNKNOWN_SCHEMA_ID = 0x7FFFFFFF


@dataclass(frozen=True)
class FeedConfig:
    """What to simulate; every knob of ``tickflow simulate``."""

    rate: float = 100_000.0
    source_rates: dict[Source, float | None] = field(default_factory=dict)
    duration_s: float | None = None
    count: int | None = None
    seed: int = 7
    instruments: int = 500
    out_of_order: float = 0.0
    duplicates: float = 0.0
    corrupt: float = 0.0
    max_lateness_ms: int = 2_000
    start_us: int | None = None
    topic: str = EVENTS.name

    def __post_init__(self) -> None:
        for name in ("out_of_order", "duplicates", "corrupt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise TickflowError(f"--{name.replace('_', '-')} is a fraction between 0 and 1, got {value}.")
        if self.rate <= 0:
            raise TickflowError(f"--rate must be positive, got {self.rate}.")
        for source, rate in self.source_rates.items():
            if rate is not None and rate < 0:
                raise TickflowError(f"--{source.value}-rate must be positive (or 0 for none), got {rate}.")
        if self.instruments < 1:
            raise TickflowError(f"--instruments must be at least 1, got {self.instruments}.")
        for name, limit in (("duration", self.duration_s), ("count", self.count)):
            if limit is not None and limit < 0:
                raise TickflowError(f"--{name} must not be negative, got {limit}.")


@dataclass
class FeedStats:
    sent: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    late: int = 0
    duplicates: int = 0
    corrupt: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def messages(self) -> int:
        """Kafka messages produced: events, their duplicates (corrupt ones replace events)."""
        return self.sent + self.duplicates

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def producer_config(settings: Settings) -> dict[str, Any]:
    return {
        **kafka_client_config(settings, Principal.SIMULATOR),
        "enable.idempotence": True,  # retries never duplicate or reorder within a partition
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "log_level": 3,
        "delivery.report.only.error": True,
    }


def prepare_feed(settings: Settings, topic: str) -> int:
    """The platform's topics (and ``md.showcase`` when that is the target) exist, and MarketEvent is registered
    under ``<topic>-value``; returns the schema id to frame the events with."""
    schema = load(TOPIC_SCHEMAS[EVENTS.name], settings.schemas_dir)
    create_topics(settings, (*TOPICS, SHOWCASE) if topic == SHOWCASE.name else TOPICS)
    return register(settings, f"{topic}-value", schema, compatibility=None).schema_id


def run_feed(
    settings: Settings,
    config: FeedConfig,
    schema_id: int,
    report: Callable[[FeedStats, float], None] | None = None,
    report_every_s: float = 1.0,
    producer_overrides: dict[str, Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> FeedStats:
    """Produce events until ``count`` or ``duration_s`` is reached, or ``stop`` says so (or forever)."""
    schema = load(TOPIC_SCHEMAS[EVENTS.name], settings.schemas_dir)
    encode = compile_encoder(schema.definition, ("instrument_id",), confluent_prefix(schema_id))
    start_us = config.start_us if config.start_us is not None else time.time_ns() // 1000
    rates = split_rate(config.rate, config.source_rates)
    faults = random.Random(config.seed * 7919 + 1)
    stats = FeedStats()

    def delivered(error: KafkaError | None, _message: object) -> None:
        stats.failed += 1  # only failures are reported (delivery.report.only.error)

    producer = Producer({**producer_config(settings), "on_delivery": delivered, **(producer_overrides or {})})
    produce, poll, topic = producer.produce, producer.poll, config.topic
    late, dup, bad = config.out_of_order, config.duplicates, config.corrupt
    lateness_us = config.max_lateness_ms * 1000
    total_rate = sum(rates.values())
    slice_s = min(0.01, 2_000 / total_rate)  # ~10 ms of events, and never huge batches when unthrottled
    started = time.monotonic()
    next_report = started + report_every_s
    slices = 0
    for batches in event_slices(config, start_us, slice_s):
        for source, events in batches:
            if config.count is not None and stats.sent + len(events) > config.count:
                events = events[: config.count - stats.sent]
            for event in events:
                if late and faults.random() < late:
                    event["event_time"] -= faults.randint(1000, lateness_us)
                    stats.late += 1
                value = encode(event)
                if bad and faults.random() < bad:
                    kind = CORRUPTIONS[faults.randrange(len(CORRUPTIONS))]
                    value = _corrupt(value, kind, faults)
                    stats.corrupt[kind] += 1
                key = event["instrument_id"]
                try:
                    produce(topic, value, key)
                except BufferError:
                    _produce_when_room(producer, topic, value, key)
                stats.bytes += len(value)
                if dup and faults.random() < dup:
                    _produce_when_room(producer, topic, value, key)
                    stats.duplicates += 1
            stats.sent += len(events)
            stats.by_source[source.value] += len(events)
        poll(0)
        slices += 1
        now = time.monotonic()
        stats.seconds = now - started
        if report and now >= next_report:
            report(stats, total_rate)
            next_report = now + report_every_s
        if config.count is not None and stats.sent >= config.count:
            break
        if config.duration_s is not None and stats.seconds >= config.duration_s:
            break
        if stop is not None and stop():
            break
        ahead = slices * slice_s - (now - started)
        if ahead > 0:
            time.sleep(ahead)
    remaining = producer.flush(60)
    stats.seconds = time.monotonic() - started
    stats.failed += remaining
    if report:
        report(stats, total_rate)
    if stats.failed:
        raise TickflowError(
            f"{stats.failed} of {stats.messages} messages were not delivered to {topic}: "
            f"read the kafka log (`tickflow stack logs kafka`)."
        )
    return stats


def event_slices(
    config: FeedConfig, start_us: int, slice_s: float = 0.01
) -> Iterator[list[tuple[Source, list[Event]]]]:
    """The events ``run_feed`` sends for this config, before faults are injected: the same
    config and start time give the same slices (the random draws are made per slice)."""
    rates = split_rate(config.rate, config.source_rates)
    universe = build_universe(config.instruments, config.seed)
    return interleave(generators(universe, rates, start_us, config.seed), slice_s)


def _produce_when_room(producer: Producer, topic: str, value: bytes, key: str) -> None:
    """Produce, waiting for librdkafka to drain its local queue while it is full (back-pressure)."""
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def _corrupt(value: bytes, kind: str, rng: random.Random) -> bytes:
    """Bytes the stream must reject: not Avro at all, an unknown schema id, or a cut-off body."""
    if kind == "garbage":
        return b"\xff" + rng.randbytes(len(value) - 1)
    if kind == "unknown_schema_id":
        return confluent_prefix(UNKNOWN_SCHEMA_ID) + value[5:]
    return value[: 5 + (len(value) - 5) // 2]
