"""State snapshots: export the forward-fill state to Hive, keep a few, and restore the stream from one.

A snapshot is read from the query's fill-state files (``tickflow.fill.state``) as of the last
micro-batch the checkpoint committed, so the running query is not disturbed, together with that
batch's end offsets from the checkpoint's offset log: the registers are exactly the fill of every
input record before those offsets. Two tables hold it (hive_ddl/V004, V005, V007):

    ops.state_snapshots        one row per instrument and field: the value (JSON), the event time it
                               was observed and the Kafka offset that set it (the fill's tie-breaker)
    ops.state_snapshot_index   one row per snapshot: the micro-batch, the input offsets, the counts

A restore moves the stream's checkpoint aside and starts a new one seeded with the snapshot's
registers (``fill-state/initial.parquet``) and told to start reading at the snapshot's offsets
(``restore.json``, read by ``build_query`` while the new checkpoint has no offset log), so the
stream goes on as if it had stopped right after that micro-batch.

Everything goes through the warehouse's HiveServer2 (the Spark Thrift Server, which reads a
Parquet file the export stages under the state directory): no Spark driver of its own, so the
hourly DAG task takes seconds. Nothing here imports pyspark.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from tickflow.errors import TickflowError
from tickflow.fill.semantics import FILL_FIELDS, InstrumentState
from tickflow.fill.state import FillState
from tickflow.runtime.location import Location
from tickflow.settings import Settings
from tickflow.warehouse import hive_cursor

SNAPSHOT_TABLE = "ops.state_snapshots"
INDEX_TABLE = "ops.state_snapshot_index"
RESTORE_FILE = "restore.json"
SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
MOVED_CHECKPOINTS_KEPT = 3
STAGING_SCHEMA = pa.schema(
    [("instrument_id", pa.string()), ("field", pa.string()), ("value_json", pa.string()),
     ("as_of_us", pa.int64()), ("source_offset", pa.int64())]
)  # fmt: skip


@dataclass(frozen=True)
class CommittedState:
    """The registers after micro-batch ``batch_id`` and the input offsets they correspond to."""

    batch_id: int
    offsets: dict[str, dict[int, int]]  # topic -> partition -> next offset to read
    states: dict[str, InstrumentState]


@dataclass(frozen=True)
class SnapshotInfo:
    snapshot_id: str
    batch_id: int
    input_topic: str
    offsets: dict[int, int]
    instruments: int
    registers: int
    taken_at: datetime

    def line(self) -> str:
        where = ", ".join(f"{p}:{o}" for p, o in sorted(self.offsets.items()))
        return (
            f"state snapshot {self.snapshot_id}: {self.instruments:,} instruments, {self.registers:,} registers "
            f"after micro-batch {self.batch_id}, taken {self.taken_at:%Y-%m-%d %H:%M:%S} UTC; "
            f"{self.input_topic} offsets {{{where}}}"
        )


def last_committed_batch(checkpoint: Location) -> int | None:
    """The newest micro-batch the query committed (Spark writes ``commits/<batch id>`` after each)."""
    ids = [int(name) for name in (checkpoint / "commits").names() if name.isdigit()]
    return max(ids) if ids else None


def batch_end_offsets(checkpoint: Location, batch_id: int) -> dict[str, dict[int, int]]:
    """The end offsets of a micro-batch, from the offset log (``v1``, the batch's metadata, then one JSON
    line per source: ``{"topic": {"partition": offset}}``)."""
    lines = (checkpoint / "offsets" / str(batch_id)).read_text().splitlines()
    offsets: dict[str, dict[int, int]] = {}
    for line in lines[2:]:
        for topic, partitions in json.loads(line).items():
            offsets[topic] = {int(p): int(o) for p, o in partitions.items()}
    return offsets


def committed(checkpoint: Location, attempts: int = 5) -> CommittedState:
    """The state after the last committed micro-batch, read while the query may be running.

    The query keeps only its newest state files, so one it commits meanwhile can prune a file being
    read: then read again at the newer batch."""
    for _ in range(attempts):
        last = last_committed_batch(checkpoint)
        if last is None:
            raise TickflowError(f"There is no stream state in {checkpoint}: run the stream first.")
        try:
            return CommittedState(
                last, batch_end_offsets(checkpoint, last), FillState(checkpoint / "fill-state").current(last)
            )
        except FileNotFoundError:
            continue
    raise TickflowError(f"The stream in {checkpoint} pruned its state faster than it could be read: try again.")


def check_snapshot_id(snapshot_id: str) -> str:
    if not SNAPSHOT_ID.match(snapshot_id):
        raise TickflowError(
            f"{snapshot_id!r} is not a usable snapshot id: use letters, digits and . _ : - (at most 100)."
        )
    return snapshot_id


def export_snapshot(
    settings: Settings, checkpoint: Location, input_topic: str, snapshot_id: str | None = None
) -> SnapshotInfo:
    """Write the checkpoint's committed state to ops.state_snapshots and its offsets to the index."""
    snapshot_id = check_snapshot_id(snapshot_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    state = committed(checkpoint)
    if input_topic not in state.offsets:
        raise TickflowError(
            f"The stream in {checkpoint} does not read {input_topic}: check TICKFLOW_STREAM_INPUT_TOPIC."
        )
    return write_snapshot(settings, state, input_topic, snapshot_id)


def write_snapshot(settings: Settings, state: CommittedState, input_topic: str, snapshot_id: str) -> SnapshotInfo:
    """Stage the registers as Parquet and insert them and the index row through HiveServer2 (replacing a
    snapshot of the same id)."""
    check_snapshot_id(snapshot_id)
    taken_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = [
        (instrument_id, name, json.dumps(registers.values[name]), registers.as_of[name], registers.offsets[name])
        for instrument_id, registers in state.states.items()
        for name in FILL_FIELDS
        if name in registers.as_of
    ]
    info = SnapshotInfo(
        snapshot_id, state.batch_id, input_topic, state.offsets[input_topic], len(state.states), len(rows), taken_at
    )
    staging = settings.root / "staging" / f"state-snapshot-{snapshot_id}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    table = pa.Table.from_pylist([dict(zip(STAGING_SCHEMA.names, row, strict=True)) for row in rows], STAGING_SCHEMA)
    pq.write_table(table, staging / "registers.parquet")
    taken = f"TIMESTAMP '{taken_at:%Y-%m-%d %H:%M:%S}'"
    partition = f"PARTITION (snapshot_id = '{snapshot_id}')"
    try:
        with hive_cursor(settings) as cursor:
            cursor.execute(
                f"INSERT OVERWRITE TABLE {SNAPSHOT_TABLE} {partition} "
                "(instrument_id, field, value_json, as_of, taken_at, source_offset) "
                f"SELECT instrument_id, field, value_json, timestamp_micros(as_of_us), {taken}, source_offset "
                f"FROM parquet.`{staging.as_uri()}`"
            )
            cursor.execute(
                f"INSERT OVERWRITE TABLE {INDEX_TABLE} {partition} "
                "(batch_id, input_topic, input_offsets, instruments, registers, taken_at) "
                f"SELECT {info.batch_id}, '{input_topic}', '{json.dumps(info.offsets)}', "
                f"{info.instruments}, {info.registers}, {taken}"
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def list_snapshots(settings: Settings) -> list[SnapshotInfo]:
    """Every snapshot in the index, newest first."""
    with hive_cursor(settings) as cursor:
        cursor.execute(
            "SELECT snapshot_id, batch_id, input_topic, input_offsets, instruments, registers, "
            f"CAST(taken_at AS STRING) FROM {INDEX_TABLE} ORDER BY taken_at DESC, snapshot_id DESC"
        )
        rows = cursor.fetchall()
    return [
        SnapshotInfo(
            str(sid),
            int(batch),
            str(topic),
            {int(p): int(o) for p, o in json.loads(offsets).items()},
            int(instruments),
            int(registers),
            datetime.fromisoformat(str(taken)),
        )
        for sid, batch, topic, offsets, instruments, registers, taken in rows
    ]


def indexed_snapshots(settings: Settings) -> list[SnapshotInfo] | None:
    """:func:`list_snapshots`, or None when the warehouse has no index table (migration V007 not applied)."""
    from pyhive.exc import OperationalError

    try:
        return list_snapshots(settings)
    except OperationalError as error:
        if "TABLE_OR_VIEW_NOT_FOUND" in str(error):
            return None
        raise


def find_snapshot(settings: Settings, snapshot_id: str) -> SnapshotInfo:
    """The index row of a snapshot; one sentence naming the newest ones when there is no such snapshot."""
    check_snapshot_id(snapshot_id)
    snapshots = list_snapshots(settings)
    for snapshot in snapshots:
        if snapshot.snapshot_id == snapshot_id:
            return snapshot
    newest = ", ".join(s.snapshot_id for s in snapshots[:5]) or "none yet"
    raise TickflowError(f"There is no state snapshot {snapshot_id!r} in {INDEX_TABLE} (newest: {newest}).")


def snapshot_state(settings: Settings, snapshot_id: str) -> dict[str, InstrumentState]:
    """A snapshot as registers by instrument, to seed a new checkpoint."""
    check_snapshot_id(snapshot_id)
    with hive_cursor(settings) as cursor:
        cursor.execute(
            "SELECT instrument_id, field, value_json, unix_micros(as_of), source_offset "
            f"FROM {SNAPSHOT_TABLE} WHERE snapshot_id = '{snapshot_id}'"
        )
        rows = cursor.fetchall()
    if not rows:
        raise TickflowError(f"There is no state snapshot {snapshot_id!r} in {SNAPSHOT_TABLE}.")
    states: dict[str, InstrumentState] = {}
    for instrument_id, name, value_json, as_of, offset in rows:
        state = states.setdefault(instrument_id, InstrumentState())
        state.values[name] = json.loads(value_json)
        state.as_of[name] = int(as_of)
        state.offsets[name] = int(offset)
    return states


def snapshots_to_drop(
    snapshots: Sequence[tuple[str, datetime]], now: datetime, keep_last: int, keep_days: int
) -> list[str]:
    """Retention: keep the newest ``keep_last``, and the newest of each of the last ``keep_days`` days
    (today included); drop the rest."""
    newest_first = sorted(snapshots, key=lambda s: (s[1], s[0]), reverse=True)
    keep = {sid for sid, _ in newest_first[:keep_last]}
    first_day = (now - timedelta(days=keep_days - 1)).date()
    days_seen: set[object] = set()
    for sid, taken_at in newest_first:
        day = taken_at.date()
        if day >= first_day and day not in days_seen:
            days_seen.add(day)
            keep.add(sid)
    return [sid for sid, _ in newest_first if sid not in keep]


def apply_retention(settings: Settings, keep_last: int, keep_days: int, now: datetime | None = None) -> list[str]:
    """Drop the snapshots retention does not keep, from both tables; returns their ids."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    drop = snapshots_to_drop([(s.snapshot_id, s.taken_at) for s in list_snapshots(settings)], now, keep_last, keep_days)
    with hive_cursor(settings) as cursor:
        for snapshot_id in drop:
            for table in (SNAPSHOT_TABLE, INDEX_TABLE):
                cursor.execute(f"ALTER TABLE {table} DROP IF EXISTS PARTITION (snapshot_id = '{snapshot_id}')")
    return drop


def install_restore(
    checkpoint: Location, snapshot: SnapshotInfo, states: dict[str, InstrumentState], now: datetime | None = None
) -> Location | None:
    """Replace the checkpoint with a new one that starts from the snapshot (the stream must be stopped).

    The old checkpoint is moved aside, not deleted (the newest few are kept); returns where it went."""
    moved = None
    if checkpoint.exists():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
        moved = checkpoint.with_name(f"{checkpoint.name}.before-restore-{stamp}")
        checkpoint.rename(moved)
        aside = sorted(
            (old for old in checkpoint.parent.iterdir() if old.name.startswith(f"{checkpoint.name}.before-restore-")),
            key=lambda old: old.name,
        )
        for old in aside[:-MOVED_CHECKPOINTS_KEPT]:
            old.rmtree()
    FillState(checkpoint / "fill-state").seed(states)
    restore = {"snapshot_id": snapshot.snapshot_id, "topic": snapshot.input_topic, "offsets": snapshot.offsets}
    (checkpoint / RESTORE_FILE).write_text(json.dumps(restore, indent=1))
    return moved


def restored_starting_offsets(checkpoint: Location, topic: str) -> str | None:
    """Spark's ``startingOffsets`` for a checkpoint a restore prepared (None for any other checkpoint)."""
    path = checkpoint / RESTORE_FILE
    if not path.exists():
        return None
    restore = json.loads(path.read_text())
    if restore["topic"] != topic:
        raise TickflowError(
            f"{checkpoint} was restored from a snapshot of {restore['topic']}, not {topic}: "
            "restore a snapshot of the topic the stream reads."
        )
    return json.dumps({topic: {str(p): int(o) for p, o in restore["offsets"].items()}})
