"""Reconcile ``md:latest`` with the latest state snapshot and the last record per instrument in md.enriched;
report one row per run to ``ops.hbase_reconciliation``; optionally repair from the topic.

The comparison itself is pure (tickflow.reconcile.compare); this module does the reading and writing:

- **HBase**: every md:latest row (one per instrument) with cell timestamps, through Thrift.
- **Snapshot**: ``ops.state_snapshots`` through HiveServer2 (the stack's Spark Thrift Server): a query of
  a few thousand rows, where a Spark session would cost a JVM start and ~1 GB on the worker for the same.
  The report row goes the same way (a one-row INSERT into a parquet table).
- **Topic**: each partition read backwards in windows from its end, keeping per key (the instrument id,
  no decoding needed) the value of its last record; only those values are decoded (fastavro, writer
  schema from the registry). A partition stops early once every instrument of the snapshot was found and
  its window is older than the snapshot: an instrument first seen after the snapshot was published after
  it. Without a snapshot, it reads back to the start of the retention.
- **Settling**: records published in the last ``settle_s`` are not expected yet (the sink writes within a
  second; a record in flight would look missing), nor snapshot registers observed after that cut-off.

Repair re-puts the topic's last record of each missing or stale instrument, as the sink writes it (its
Kafka value as it is into md:history); a re-put only adds cells at their own timestamps, so running it
twice changes nothing. A cell deleted in HBase stays hidden after the re-put: a delete marker masks every
put at or before its time until a major compaction drops it, after the memstore holding it is flushed
(HBase does so within an hour; Thrift cannot ask it to). Such instruments remain, and the report says so.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tickflow.errors import TickflowError
from tickflow.fill.semantics import InstrumentState
from tickflow.fill.snapshot import SnapshotInfo, find_snapshot, list_snapshots, snapshot_state
from tickflow.hbase.layout import UndecodableCell, read_framed
from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.reconcile.compare import (
    REPORT_TABLE,
    Report,
    Status,
    build_report,
    classify,
    classify_all,
    last_per_key,
    record_cells,
    snapshot_cells,
    to_repair,
)
from tickflow.settings import Settings
from tickflow.topics import ENRICHED, EVENTS

log = logging.getLogger(__name__)


class MismatchesRemain(TickflowError):
    """md:latest still differs from the topic or the snapshot after the run (and its repair, if asked)."""


def read_snapshot(
    settings: Settings, snapshot_id: str | None = None, prefix: str | None = None
) -> tuple[SnapshotInfo | None, dict[str, InstrumentState]]:
    """The snapshot (default: the live stream's, md.events', taken last; tests snapshot topics of their own)
    and its registers by instrument; (None, {}) when there is none."""
    if snapshot_id:
        info: SnapshotInfo | None = find_snapshot(settings, snapshot_id)
    else:
        info = next((s for s in list_snapshots(settings) if s.input_topic == EVENTS.name), None)
    if info is None:
        return None, {}
    states = snapshot_state(settings, info.snapshot_id)
    if prefix:
        states = {i: state for i, state in states.items() if i.startswith(prefix)}
    return info, states


def last_records(
    settings: Settings,
    topic: str,
    until_ms: int | None = None,
    wanted: frozenset[str] = frozenset(),
    since_ms: int | None = None,
    prefix: str | None = None,
    window: int = 10_000,
    idle_s: float = 30.0,
) -> dict[str, tuple[int, bytes]]:
    """The last record (offset, raw value) per key of the topic among those published before ``until_ms``;
    see the module's doc for the backward scan and when it stops early."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({
        **kafka_client_config(settings, Principal.AIRFLOW),  # a check that reads md.enriched, run by Airflow
        "group.id": f"tickflow-reconciliation-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "enable.partition.eof": True, "log_level": 3,
    })  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise TickflowError(
                f"Kafka at {settings.bootstrap_servers} has no topic {topic}: create it with `tickflow topics create`."
            )
        ends: dict[int, tuple[int, int]] = {}  # partition -> (low, end)
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            end = high
            if until_ms is not None:
                (at,) = consumer.offsets_for_times([TopicPartition(topic, partition, until_ms)], timeout=10)
                end = at.offset if at.offset >= 0 else high  # the first record at or after the cut-off
            if end > low:
                ends[partition] = (low, end)
        found: dict[str, tuple[int, bytes]] = {}
        while ends:  # one window of each partition per round, newest first
            for partition, (low, end) in list(ends.items()):
                start = max(low, end - window)
                records, oldest_ms = _read_window(consumer, topic, partition, start, end, idle_s)
                if prefix:
                    records = [(k, o, v) for k, o, v in records if (k or "").startswith(prefix)]
                last_per_key(found, records)
                done = wanted <= found.keys() and since_ms is not None and oldest_ms < since_ms
                if start <= low or done:
                    del ends[partition]
                else:
                    ends[partition] = (low, start)
        return found
    finally:
        consumer.close()


def _read_window(
    consumer: Any, topic: str, partition: int, start: int, end: int, idle_s: float
) -> tuple[list[tuple[str | None, int, bytes | None]], int]:
    """Records with offsets in [start, end) of one partition, and the oldest timestamp (ms) among them."""
    from confluent_kafka import KafkaError, TopicPartition

    consumer.assign([TopicPartition(topic, partition, start)])
    records: list[tuple[str | None, int, bytes | None]] = []
    oldest = 2**63 - 1
    quiet_since = time.monotonic()
    while True:
        messages = consumer.consume(num_messages=min(5000, end - start), timeout=1.0)
        if not messages and time.monotonic() - quiet_since > idle_s:
            raise TickflowError(
                f"{topic} partition {partition} returned nothing for {idle_s:.0f}s while reading offsets "
                f"{start}-{end}: check Kafka with `tickflow stack status`."
            )
        for message in messages:
            quiet_since = time.monotonic()
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    return records, oldest
                raise TickflowError(f"Reading {topic} partition {partition} failed: {message.error()}.")
            offset = message.offset()
            if offset >= end:
                return records, oldest
            key = message.key()
            records.append((key.decode(errors="replace") if key is not None else None, offset, message.value()))
            oldest = min(oldest, message.timestamp()[1])
            if offset == end - 1:
                return records, oldest


def reconcile(
    settings: Settings,
    repair: bool = False,
    topic: str = ENRICHED.name,
    snapshot_id: str | None = None,
    prefix: str | None = None,
    settle_s: float = 30.0,
    write_report: bool = True,
    store: Any = None,
) -> Report:
    """Compare, optionally repair, and write the report row; returns the report (``Report.failure`` says
    whether mismatches remain). ``prefix`` limits the run to instruments whose id starts with it."""
    from tickflow.hbase.store import MarketDataStore, RegistrySchemas

    started = time.monotonic()
    checked_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    run_id = f"{checked_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    store = store or MarketDataStore(settings, pool_size=1)
    layout = store.layout
    until_ms = int(time.time() * 1000 - settle_s * 1000)

    snapshot, states = read_snapshot(settings, snapshot_id, prefix)
    rows = store.latest_cells(prefix=prefix)
    scope = f" starting {prefix!r}" if prefix else ""
    chosen = snapshot.snapshot_id if snapshot else "(none)"
    log.info("md:latest holds %d rows%s; snapshot %s holds %d instruments", len(rows), scope, chosen, len(states))
    # The snapshot's instruments are all the stream had seen when it was taken, so once they are found and the
    # scan is older than the snapshot, no other instrument can come up (without one, it reads everything).
    last = last_records(
        settings, topic, until_ms, frozenset(states), _epoch_ms(snapshot.taken_at) if snapshot else None, prefix
    )
    records = _decode(last, RegistrySchemas(settings).writer_schema, topic)
    elapsed = time.monotonic() - started
    log.info("%s: the last record of %d instruments read (%.0fs so far)", topic, len(records), elapsed)

    topic_cells = {i: record_cells(layout, record) for i, (record, _) in records.items()}
    snap_cells = {i: snapshot_cells(layout, state, until_ms * 1000) for i, state in states.items()}
    found = classify_all(rows, topic_cells, snap_cells)
    after = None
    if repair:
        ids = to_repair(found, records)
        store.write_framed([records[i] for i in ids])
        again = store.latest_cells(ids) if ids else {}
        after = {i: classify(i, again.get(i), topic_cells.get(i), snap_cells.get(i)) for i in ids}
        log.info("repair: re-put the last record of %d instruments from %s", len(ids), topic)
    report = build_report(run_id, checked_at, snapshot.snapshot_id if snapshot else None, topic, found, after)
    if write_report:
        write_report_row(settings, report)
    log.info("%s in %.0fs", report.line(), time.monotonic() - started)
    return report


def _epoch_ms(naive_utc: datetime) -> int:
    return int(naive_utc.replace(tzinfo=UTC).timestamp() * 1000)


def _decode(
    last: Mapping[str, tuple[int, bytes]], writer_schema: Any, topic: str
) -> dict[str, tuple[dict[str, Any], bytes]]:
    records = {}
    for key, (offset, value) in last.items():
        try:
            records[key] = (read_framed(value, writer_schema), value)
        except UndecodableCell as error:  # the sink sent it to its DLQ too; nothing to expect of HBase
            log.warning("%s: the last record of %s (offset %d) does not decode, skipped: %s", topic, key, offset, error)
    return records


def write_report_row(settings: Settings, report: Report) -> None:
    from tickflow.warehouse import run_statements, sql_string

    counts = report.counts
    values = ", ".join([
        sql_string(report.run_id), f"TIMESTAMP '{report.checked_at:%Y-%m-%d %H:%M:%S}'",
        sql_string(report.snapshot_id) if report.snapshot_id else "NULL", sql_string(report.topic),
        "true" if report.repair else "false", str(report.instruments_checked),
        *(str(counts.get(status, 0)) for status in Status),
        str(report.repaired), str(report.remaining), sql_string(report.examples_json()),
    ])  # fmt: skip
    run_statements(settings, [
        f"INSERT INTO {REPORT_TABLE} PARTITION (run_date = DATE '{report.checked_at:%Y-%m-%d}') VALUES ({values})"
    ])  # fmt: skip
