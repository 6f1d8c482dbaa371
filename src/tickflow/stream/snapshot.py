"""Export the forward-fill state to Hive, and read a snapshot back to start a query from it.

The state is read from the query's checkpoint with Spark's state data source (a batch
read; the running query is not disturbed) and stored long-form in ``ops.state_snapshots``:
one row per instrument and field with the value (JSON), the event time it was observed
and the Kafka offset that set it, so a restore rebuilds the registers exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tickflow.errors import TickflowError
from tickflow.stream.fill import FILL_FIELDS
from tickflow.stream.processor import STATE_SCHEMA, plain

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SNAPSHOT_TABLE = "ops.state_snapshots"


def read_state(spark: SparkSession, checkpoint: Path) -> DataFrame:
    """The current per-instrument state in the checkpoint: instrument_id + STATE_SCHEMA columns."""
    from pyspark.sql import functions as F

    if not (checkpoint / "state").exists():
        raise TickflowError(f"There is no stream state in {checkpoint}: run the stream first.")
    raw = spark.read.format("statestore").option("operatorId", 0).option("stateVarName", "fill").load(str(checkpoint))
    return raw.select(F.col("user_map_key.instrument_id").alias("instrument_id"), "user_map_value.*")


def export_snapshot(spark: SparkSession, checkpoint: Path, snapshot_id: str | None = None) -> tuple[str, int]:
    """Write the checkpoint's state to ops.state_snapshots; returns (snapshot id, instruments)."""
    snapshot_id = snapshot_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    state: pd.DataFrame = read_state(spark, checkpoint).toPandas()
    taken_at = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "instrument_id": row["instrument_id"],
            "field": name,
            "value_json": json.dumps(plain(row[name], name)),
            "as_of": pd.Timestamp(int(row[f"{name}_as_of"]), unit="us").to_pydatetime(),
            "source_offset": int(row[f"{name}_offset"]),
            "taken_at": taken_at,
            "snapshot_id": snapshot_id,
        }
        for _, row in state.iterrows()
        for name in FILL_FIELDS
        if not pd.isna(row[f"{name}_as_of"])
    ]
    table = spark.table(SNAPSHOT_TABLE)
    frame = pd.DataFrame(rows, columns=table.columns)
    spark.createDataFrame(frame, schema=table.schema).createOrReplaceTempView("snapshot_rows")
    columns = ", ".join(c for c in table.columns if c != "snapshot_id")
    partition = f"PARTITION (snapshot_id = '{snapshot_id}')"
    spark.sql(f"INSERT OVERWRITE {SNAPSHOT_TABLE} {partition} SELECT {columns} FROM snapshot_rows")
    return snapshot_id, len(state)


def snapshot_state(spark: SparkSession, snapshot_id: str) -> DataFrame:
    """A snapshot as the stream's initial state: instrument_id + STATE_SCHEMA columns."""
    from pyspark.sql.types import StringType, StructField, StructType

    rows: pd.DataFrame = spark.table(SNAPSHOT_TABLE).where(f"snapshot_id = '{snapshot_id}'").toPandas()
    if rows.empty:
        raise TickflowError(f"There is no state snapshot {snapshot_id!r} in {SNAPSHOT_TABLE}.")
    wide: dict[str, dict[str, Any]] = {}
    for row in rows.itertuples(index=False):
        registers = wide.setdefault(row.instrument_id, {})
        registers[row.field] = plain(json.loads(row.value_json), row.field)
        registers[f"{row.field}_as_of"] = int(pd.Timestamp(row.as_of).value // 1000)
        registers[f"{row.field}_offset"] = int(row.source_offset)
    schema = StructType([StructField("instrument_id", StringType()), *STATE_SCHEMA.fields])
    data = [(iid, *(registers.get(c) for c in STATE_SCHEMA.fieldNames())) for iid, registers in wide.items()]
    return spark.createDataFrame(data, schema)
