"""An independent reading of the fill contract for the stream tests: decode a topic with confluent-kafka,
drop what must be rejected, and take per field the non-null value with the greatest (event_time, offset)."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, TopicPartition

from tests.support.avro import decoder
from tests.support.kafka import as_admin
from tickflow.fill.semantics import FILL_FIELDS, InstrumentState
from tickflow.settings import Settings

LEFT_OVER = "left-over-bytes"  # a reader that stops at the record's end ignores bytes after it; the stream must not


def read_topic(settings: Settings, topic: str, start: Mapping[int, int] | None = None) -> list[Any]:
    """Every message of the topic up to its end at the call (from ``start``'s offsets per partition, else
    the beginning). A partition is done at its last offset or its end: the trades source writes in Kafka
    transactions, whose commit markers take offsets no message has, so counting offsets would wait."""
    consumer = Consumer(
        {
            **as_admin(settings),
            "group.id": f"r-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    count = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    partitions = [TopicPartition(topic, p, (start or {}).get(p, 0)) for p in range(count)]
    ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions}
    pending = {p.partition for p in partitions if ends[p.partition] > p.offset}
    consumer.assign(partitions)
    messages: list[Any] = []
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        for message in consumer.consume(5000, 1.0):
            partition, error = message.partition(), message.error()
            if error is None and message.offset() < ends[partition]:
                messages.append(message)
            if (error is None and message.offset() >= ends[partition] - 1) or (
                error is not None and error.code() == KafkaError._PARTITION_EOF
            ):
                pending.discard(partition)
    consumer.close()
    return messages


def valid_record(message: Any, deserialize: Any, now_us: int) -> dict[str, Any] | None:
    """The message's event when the stream must accept it, else None (it belongs in the DLQ)."""
    try:
        record: dict[str, Any] = deserialize(message.value(), None)
    except Exception:  # noqa: BLE001 - corrupt on purpose
        return None
    if record["event_id"] == LEFT_OVER:
        return None
    t = int(record["event_time"].timestamp() * 1_000_000 + 0.5)
    bid, ask = record.get("bid_price"), record.get("ask_price")
    if (message.key().decode() != record["instrument_id"] or t > now_us + 60_000_000
            or (bid is not None and ask is not None and bid > ask)
            or any((record.get(f) or 0) < 0 for f in ("bid_size", "ask_size", "trade_size"))):  # fmt: skip
        return None
    return record


class InputVerdict(NamedTuple):
    """What the stream must make of a topic: the final values per instrument and field, the valid (instrument,
    event time) pairs, and the messages it must send to its DLQ (their bytes, as many times as sent)."""

    final: dict[str, dict[str, Any]]
    times: set[tuple[str, int]]
    rejected: Counter[bytes]


def judge_input(
    settings: Settings,
    topic: str,
    start: Mapping[int, int] | None = None,
    initial: Mapping[str, InstrumentState] | None = None,
) -> InputVerdict:
    """One reading of the topic (from ``start``, over the registers ``initial``, e.g. a state snapshot, when
    given)."""
    deserialize = decoder(settings)
    now_us = time.time_ns() // 1000
    best: dict[str, dict[str, tuple[tuple[int, int], Any]]] = defaultdict(dict)
    for instrument_id, registers in (initial or {}).items():
        for name in registers.as_of:
            best[instrument_id][name] = ((registers.as_of[name], registers.offsets[name]), registers.values[name])
    times: set[tuple[str, int]] = set()
    rejected: Counter[bytes] = Counter()
    for message in read_topic(settings, topic, start):
        record = valid_record(message, deserialize, now_us)
        if record is None:
            rejected[message.value()] += 1
            continue
        t = int(record["event_time"].timestamp() * 1_000_000 + 0.5)
        times.add((record["instrument_id"], t))
        for name in FILL_FIELDS:
            if record.get(name) is not None:
                order = (t, message.offset())
                if name not in best[record["instrument_id"]] or order >= best[record["instrument_id"]][name][0]:
                    best[record["instrument_id"]][name] = (order, record[name])
    final = {iid: {name: value for name, (_, value) in fields.items()} for iid, fields in best.items()}
    return InputVerdict(final, times, rejected)


def rejected_values(settings: Settings, topic: str) -> Counter[bytes]:
    return judge_input(settings, topic).rejected


def expected_from_input(
    settings: Settings,
    topic: str,
    start: Mapping[int, int] | None = None,
    initial: Mapping[str, InstrumentState] | None = None,
) -> tuple[dict[str, dict[str, Any]], set[tuple[str, int]]]:
    """Final values per instrument and field, and the valid (instrument, event time) pairs (judge_input)."""
    verdict = judge_input(settings, topic, start, initial)
    return verdict.final, verdict.times
