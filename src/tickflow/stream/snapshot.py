"""Export the forward-fill state to Hive, and read a snapshot back to start a query from it.

The state is read from the query's fill-state files (``tickflow.stream.state``) as of the last
micro-batch the checkpoint committed (the running query is not disturbed) and stored long-form
in ``ops.state_snapshots``: one row per instrument and field with the value (JSON), the event
time it was observed and the Kafka offset that set it, so a restore rebuilds the registers exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tickflow.errors import TickflowError
from tickflow.stream.fill import FILL_FIELDS, InstrumentState
from tickflow.stream.state import FillState, to_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SNAPSHOT_TABLE = "ops.state_snapshots"


def last_committed_batch(checkpoint: Path) -> int | None:
    """The newest micro-batch the query committed (Spark writes ``commits/<batch id>`` after each)."""
    commits = checkpoint / "commits"
    ids = [int(p.name) for p in commits.iterdir() if p.name.isdigit()] if commits.exists() else []
    return max(ids) if ids else None


def committed_state(checkpoint: Path) -> dict[str, InstrumentState]:
    """Every instrument's registers after the last committed micro-batch."""
    last = last_committed_batch(checkpoint)
    if last is None:
        raise TickflowError(f"There is no stream state in {checkpoint}: run the stream first.")
    return FillState(checkpoint / "fill-state").current(up_to_batch=last)


def read_state(spark: SparkSession, checkpoint: Path) -> DataFrame:
    """The committed per-instrument state: instrument_id + value, _as_of and _offset per field."""
    return spark.createDataFrame(to_table(committed_state(checkpoint)).to_pandas())


def export_snapshot(spark: SparkSession, checkpoint: Path, snapshot_id: str | None = None) -> tuple[str, int]:
    """Write the checkpoint's committed state to ops.state_snapshots; returns (snapshot id, instruments)."""
    snapshot_id = snapshot_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    state = committed_state(checkpoint)
    taken_at = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "instrument_id": instrument_id,
            "field": name,
            "value_json": json.dumps(registers.values[name]),
            "as_of": pd.Timestamp(registers.as_of[name], unit="us").to_pydatetime(),
            "source_offset": registers.offsets[name],
            "taken_at": taken_at,
            "snapshot_id": snapshot_id,
        }
        for instrument_id, registers in state.items()
        for name in FILL_FIELDS
        if name in registers.as_of
    ]
    table = spark.table(SNAPSHOT_TABLE)
    frame = pd.DataFrame(rows, columns=table.columns)
    spark.createDataFrame(frame, schema=table.schema).createOrReplaceTempView("snapshot_rows")
    columns = ", ".join(c for c in table.columns if c != "snapshot_id")
    partition = f"PARTITION (snapshot_id = '{snapshot_id}')"
    spark.sql(f"INSERT OVERWRITE {SNAPSHOT_TABLE} {partition} SELECT {columns} FROM snapshot_rows")
    return snapshot_id, len(state)


def snapshot_state(spark: SparkSession, snapshot_id: str) -> dict[str, InstrumentState]:
    """A snapshot as registers by instrument, to seed a new checkpoint."""
    rows: pd.DataFrame = spark.table(SNAPSHOT_TABLE).where(f"snapshot_id = '{snapshot_id}'").toPandas()
    if rows.empty:
        raise TickflowError(f"There is no state snapshot {snapshot_id!r} in {SNAPSHOT_TABLE}.")
    states: dict[str, InstrumentState] = {}
    for row in rows.itertuples(index=False):
        state = states.setdefault(row.instrument_id, InstrumentState())
        state.values[row.field] = json.loads(row.value_json)
        state.as_of[row.field] = int(pd.Timestamp(row.as_of).value // 1000)
        state.offsets[row.field] = int(row.source_offset)
    return states


def latest_snapshot_id(spark: SparkSession) -> str | None:
    """The snapshot taken last (by ``taken_at``), or None when there is none."""
    rows = spark.sql(
        f"SELECT snapshot_id FROM {SNAPSHOT_TABLE} GROUP BY snapshot_id ORDER BY max(taken_at) DESC LIMIT 1"
    ).collect()
    return str(rows[0].snapshot_id) if rows else None
